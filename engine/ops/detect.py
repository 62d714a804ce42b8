"""The detection lab's checks over image files, for the Detection canvas: each image is read once,
each chosen check runs on it (engine/detect/run.py), and per image x check comes back the score,
which way is suspicious, the sentence, the map as a small PNG in `out` and the plot's curves (the
spectrum profile against the real mean). Progress per (image, check) with Cancel between them; a
file that cannot be read, or a check that cannot run on it, is one line in `failures` and the rest go on.
Needs no loaded model: the worker runs it with or without a checkpoint loaded (the zeroshot and
aeroblade checks load the checkpoints the request names, once per request)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.core.flags import request_field, result_field
from engine.family.progress import Cancel, StageProgress, check_cancel


@dataclass
class DetectRequest:
    images: list = request_field(help="image files, or folders of them (not recursed)")
    out: str = request_field("", "folder for the previews and maps", output="folder")
    checks: list = request_field(factory=list, help="check keys (engine/core/detect_checks.py); empty: the "
                                                    "training-free ones")
    real_data: str = request_field("textures", "built-in dataset the spectrum check compares against")
    noise_reference: str = request_field("", "a folder of one source's images, or a saved pattern (noise check)")
    spectrum_detector: str = request_field("", "a trained spectrum detector file (spectrum-lr check)")
    likelihood_model: str = request_field("", "a pixel-likelihood checkpoint trained on real images (zeroshot check)")
    autoencoder: str = request_field("", "an autoencoder checkpoint: vae, hvae or vqvae (aeroblade check)")
    diffusion_checkpoint: str = request_field("", "a diffusion checkpoint (dire check: DDIM inversion and "
                                                  "reconstruction with it)")
    detector: str = request_field("", "a trained NPR or CNN detector file (npr-cnn, cnn checks)")

    def check(self) -> None:
        from engine.core.detect_checks import parse_checks
        if not self.images:
            raise ValueError("detect: give at least one image or folder")
        self.checks = parse_checks(self.checks)   # an unknown check is refused before any image is read
        if not self.out:
            raise ValueError("detect: the request is missing 'out' (a folder for the maps)")


@dataclass
class DetectResult:
    out: str = result_field()
    rows: list = result_field(factory=list)       # one per image: path, preview, size, results[...]
    failures: list = result_field(factory=list)   # one line per unreadable file or failing check
    checks: list = result_field(factory=list)


def _context(req: DetectRequest):
    from engine.detect.context import DetectContext
    ctx = DetectContext(real_data=req.real_data, spectrum_detector=req.spectrum_detector or None,
                        noise_reference=req.noise_reference or None, detector=req.detector or None,
                        likelihood_model=req.likelihood_model or None, autoencoder=req.autoencoder or None,
                        diffusion_model=req.diffusion_checkpoint or None)
    ctx.spectrum_detector_model()   # a bad reference is one error for the request, not one per image
    ctx.trained_detector()
    ctx.noise_pattern()
    if "zeroshot" in req.checks:    # a checkpoint loads only for the check that looks through it
        ctx.likelihood_family()
    if "aeroblade" in req.checks:
        ctx.autoencoder_family()
    if "dire" in req.checks:
        ctx.diffusion_family()
    return ctx


SPECTRUM_Z = 2.0    # RMS z-score of the high frequencies past which a spectrum is called unlike real photos
NPR_FLAT = 0.5      # levels: the NPR check's own bound for "each 2x2 cell repeats one pixel" (npr.py)


def suspicious(check: str, score, details: dict) -> bool | None:
    """Whether a result points to "generated or manipulated", by the bound its check's sentence
    uses; None where the score alone says nothing (no reference, no mark to read, a check without one)."""
    from engine.detect.noise_residual import MATCH_Z
    from engine.detect.watermark.check import WEAK_P
    from engine.detect.zero_shot import EASY_Z
    if score is None:
        return None
    if check == "spectrum":
        return score > SPECTRUM_Z
    if check == "spectrum-lr":
        return score >= 0.5
    if check == "npr":
        return score < NPR_FLAT or details.get("grid_ratio", 1.0) < 0.5
    if check == "noise":
        return details.get("z", MATCH_Z) < MATCH_Z
    if check == "copymove":
        return details.get("shift") is not None
    if check == "watermark":
        return details.get("p_value", 1.0) < WEAK_P
    if check == "zeroshot":
        return score < EASY_Z
    return None


def result_entry(res, image, out: Path, stem: str) -> dict:
    """A CheckResult as the canvas reads it: its JSON fields, the map written as a PNG."""
    from engine.core.detect_checks import CHECKS
    from engine.ops.detect_pictures import map_rgb, write_png
    entry = res.to_json()
    entry["title"] = CHECKS.get(res.check).title
    entry["suspicious"] = suspicious(res.check, entry["score"], res.details)
    if res.map is not None:
        entry["map"] = {**entry.get("map", {}),
                        "png": write_png(out / f"{stem}_{res.check}.png", map_rgb(res.check, res.map, image))}
    return entry


def run(session, req: DetectRequest, progress: StageProgress, cancel: Cancel) -> DetectResult:
    from engine.detect.image import load_rgb
    from engine.detect.run import Failure, image_paths, run_check
    from engine.ops.detect_pictures import write_png
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _context(req)
    items = list(image_paths(req.images))
    failures = [f.line() for f in items if isinstance(f, Failure)]
    paths = [p for p in items if not isinstance(p, Failure)]
    total, done = len(paths) * len(req.checks), 0
    rows = []
    for i, path in enumerate(paths):
        check_cancel(cancel)
        try:
            image = load_rgb(path)
        except (ValueError, OSError) as e:
            failures.append(Failure(str(path), None, str(e) or type(e).__name__).line())
            done += len(req.checks)
            progress("checking", done, total)
            continue
        stem = f"{i:04d}_{path.stem[:40]}"
        row = {"image": str(path), "size": [int(image.shape[1]), int(image.shape[0])],
               "preview": write_png(out / f"{stem}.png", image), "results": []}
        for key in req.checks:
            check_cancel(cancel)
            progress(key, done, total)   # the check now running: the spectrum's first builds its reference
            try:
                row["results"].append(result_entry(run_check(key, image, ctx), image, out, stem))
            except (ValueError, OSError) as e:
                failures.append(Failure(str(path), key, str(e)).line())
            done += 1
            progress(key, done, total)
        rows.append(row)
    return DetectResult(str(out), rows, failures, list(req.checks))
