"""The `watermark` op's Tree-Ring half (engine/detect/watermark/treering.py): a mark that lives in
a diffusion sample's starting noise, so it cannot be written into an existing image. Embed samples
`count` new images from the checkpoint with the key's rings in their x_T, one at a time (progress
per image; each PNG is written as soon as it is sampled, so Cancel keeps those done); verify inverts
one image by DDIM with the same checkpoint (progress per step) and tests the rings."""
from __future__ import annotations

from pathlib import Path

from engine.family.progress import Cancel, StageProgress


def _model(req):
    """(family, ring) of the request's checkpoint and key; a ValueError naming the checkpoint."""
    from engine.detect.watermark.treering import ring_for
    from engine.diffusion.inversion import require_invertible
    from engine.training.checkpoint import family_from_checkpoint
    ckpt = req.diffusion_checkpoint
    if not Path(ckpt).exists():
        raise ValueError(f"{ckpt}: no such checkpoint")
    try:
        fam, _ = family_from_checkpoint(ckpt, "auto")
        require_invertible(fam, ckpt)
        return fam, ring_for(fam, req.key)
    except ValueError as e:
        raise ValueError(str(e) if ckpt in str(e) else f"{ckpt}: {e}") from None


def _ring_info(req, ring) -> dict:
    return {**ring.describe(), "steps": int(req.steps), "checkpoint": req.diffusion_checkpoint}


def run_treering(req, progress: StageProgress, cancel: Cancel):
    from engine.ops.watermark import TREERING, WatermarkResult
    fam, ring = _model(req)
    if req.action == "embed":
        written = _sample(req, fam, ring, progress, cancel)
        return WatermarkResult("embed", "", req.samples, method=TREERING, samples=written, ring=_ring_info(req, ring))
    return _verify(req, fam, ring, progress, cancel)


def _sample(req, fam, ring, progress: StageProgress, cancel: Cancel) -> list[str]:
    from engine.detect.watermark.treering import write_marked_samples
    progress("sampling", 0, req.count)
    done = []
    return write_marked_samples(fam, ring, list(range(req.seed, req.seed + req.count)), req.steps, req.samples,
                                cancel=cancel,
                                written=lambda p: (done.append(p), progress("sampling", len(done), req.count)))


def _verify(req, fam, ring, progress: StageProgress, cancel: Cancel):
    import torch

    from engine.detect.image import load_rgb
    from engine.detect.model_input import model_input, resize_rule
    from engine.detect.watermark.treering import verify_images
    from engine.ops.watermark import TREERING, WatermarkResult
    try:
        image = load_rgb(req.image)
    except FileNotFoundError:
        raise ValueError(f"{req.image}: no such file") from None
    x = model_input(image, fam.channels, fam.resolution)
    with torch.no_grad():
        t = verify_images(fam, ring, x, req.steps, progress=lambda d, n: progress("inverting", d, n),
                          cancel=cancel)[0]
    rule = resize_rule(image, fam.resolution)
    warnings = [] if rule == "as is" else [f"{Path(req.image).name}: the model saw it {rule}"]
    return WatermarkResult("verify", req.image, method=TREERING, p_value=t.p_value, distance=t.distance,
                           verdict="marked" if t.marked else "absent", warnings=warnings,
                           ring={**_ring_info(req, ring), "chi2": t.chi2, "df": t.df})
