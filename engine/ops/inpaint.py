"""Inpaint an image file with a mask file: with the loaded model's own methods (its Inpainter:
RePaint or blending for diffusion, raster completion for PixelCNN) or with OpenCV's classical
fills, which need no model. The model works at its resolution on a region of the image (the
whole image, its central square, or a square around the mask: engine/inpainting/geometry.py);
its result is pasted back into the full-size image with a feathered edge, so pixels away from
the mask come back bit for bit, in the image's own colour mode (a greyscale model's fill in a
colour photo takes its colour from around the hole: composite.in_image_channels). One PNG per
seed, with the method and its parameters in the PNG's text metadata (engine/core/pnginfo.py)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.inpainting import CLASSICAL_METHODS, MASK_CONVENTION, channels_note
from engine.inpainting.composite import (colour_guide, cut, feather, in_image_channels, paste, resize, to_channels,
                                         to_uint8)
from engine.inpainting.geometry import mask_outside, work_region
from engine.family.progress import Cancel, StageProgress, stage
from engine.ops.base import ModelSession
from engine.core.flags import Flag, request_field, result_field, seeds as seed_list
from engine.core.pnginfo import parameters_line, write_png
from engine.core.schema import section_from_dict, validate_section
from engine.inpainting.geometry import FITS
from engine.inpainting.options import STARTS, InpaintSettings

MAX_SEEDS = 64


@dataclass
class InpaintRequest:
    image: str
    mask: str = request_field(help="PNG of the image's size; white = regenerate, black = keep")
    out_dir: str = request_field(help="folder for the results (default ./inpainted)", flag="--out", output="folder",
                                 cli_default="inpainted")
    method: str = request_field(   # "" = the model's first method, or telea without a model
        "", "repaint or blend (diffusion), raster completion (PixelCNN), or telea / ns (OpenCV, no model); "
            "default: the model's first, or telea without one")
    seeds: list = request_field(factory=lambda: [0], help="comma-separated seeds: one result each (default 0)",
                                parse=seed_list, cli_default="0")
    cls: int | None = request_field(None, "class for a conditional model", flag="--class", metavar="CLS")
    options: dict = request_field(   # the family's sample options (steps, solver, …)
        factory=dict, sample_options=(
            "steps", "sampler", Flag(key="guidance_scale", help="classifier-free guidance scale (with --class)")))
    inpaint: dict = request_field(factory=dict, flags=(   # the family's inpainting options (jump, resample, …)
        Flag("--jump", "RePaint: jump length (default 10)", parse=int, key="jump"),
        Flag("--resample", "RePaint: resampling count (default 10; 1 = none)", parse=int, key="resample"),
        Flag("--strength", "1 = the masked part starts from noise; less keeps its shapes", parse=float,
             key="strength"),
        Flag("--start", "what the masked part starts from", choices=STARTS, key="start")))
    settings: dict = request_field(factory=dict, flags=(   # InpaintSettings: fit, padding, feather, radius
        Flag("--fit", "how the image meets the model's resolution (default resize; masked: only around the mask)",
             choices=FITS, key="fit"),
        Flag("--padding", "--fit masked: context pixels around the mask (default 8)", parse=int, key="padding"),
        Flag("--feather", "mask blur in model pixels (default 1; 0 = hard edge)", parse=float, key="feather"),
        Flag("--radius", "telea/ns: neighbourhood radius in pixels (default 3)", parse=float, key="radius")))
    # a mask of another size is resized to the image's instead of refused
    resize_mask: bool = request_field(False, "resize a mask of another size to the image's")

    @classmethod
    def command_line(cls, fields: dict, checkpoint: str | None) -> tuple[dict, str | None, list[str]]:
        """The command line's rules (fields, the checkpoint to load, notes): a classical fill needs
        no model (a checkpoint given is not loaded); the model's methods and their options need one;
        without one there is one result."""
        notes = []
        method = fields.get("method", "")
        if method in CLASSICAL_METHODS and checkpoint:
            notes.append(f"{method} needs no model; --checkpoint is not used")
            checkpoint = None
        if not checkpoint and method not in ("", *CLASSICAL_METHODS):
            raise ValueError(f"--method {method} needs --checkpoint (only {', '.join(CLASSICAL_METHODS)} work "
                             f"without one)")
        if not checkpoint and fields.get("inpaint"):
            raise ValueError("--jump/--resample/--strength/--start are options of a model's method: give --checkpoint")
        return ({**fields, "seeds": [0]} if not checkpoint else fields), checkpoint, notes

    def check(self) -> None:
        if not self.seeds or len(self.seeds) > MAX_SEEDS:
            raise ValueError(f"inpaint: give 1 to {MAX_SEEDS} seeds (got {len(self.seeds)})")
        if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.seeds):
            raise ValueError(f"inpaint: seeds must be whole numbers >= 0, got {self.seeds}")


@dataclass
class InpaintResult:
    paths: list = result_field(report="out")
    method: str = result_field()
    seeds: list = result_field()
    region: list = result_field()            # x0, y0, x1, y1 of the image the model worked on
    note: str = result_field("", note=True)


def load_image(path: str) -> np.ndarray:
    """An image file as float32 H×W×C in [0, 1] at its own size (C = 1 for a greyscale file)."""
    from engine.data.folder import decode_image
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{path}: no such image file")
    try:
        arr, gray = decode_image(p)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    img = arr[..., :1] if gray else arr
    return img.astype(np.float32) / 255.0


def load_mask(path: str, size: tuple[int, int], resize_ok: bool) -> tuple[np.ndarray, str]:
    """A mask file as float32 H×W in [0, 1] (white = regenerate) at size = (width, height); and a
    note when it was resized."""
    arr = load_image(path)
    mask = arr.mean(axis=2) if arr.shape[2] > 1 else arr[..., 0]
    h, w = mask.shape
    note = ""
    if (w, h) != tuple(size):
        if not resize_ok:
            raise ValueError(f"{path}: the mask is {w}×{h} but the image is {size[0]}×{size[1]}; "
                             f"give a mask of the image's size, or allow resizing (--resize-mask)")
        mask = resize(mask, size)
        note = f"mask resized from {w}×{h} to {size[0]}×{size[1]}"
    if not (mask > 0).any():
        raise ValueError(f"{path}: the mask is empty (all black); {MASK_CONVENTION}")
    return mask.astype(np.float32), note


def run(session: ModelSession | None, req: InpaintRequest, progress: StageProgress, cancel: Cancel) -> InpaintResult:
    settings = section_from_dict(InpaintSettings, req.settings, "settings")
    validate_section(settings, "settings")
    method = req.method or (session.family.check_inpaint_method(None) if _inpaints(session) else CLASSICAL_METHODS[0])
    image = load_image(req.image)
    h, w = image.shape[:2]
    mask, note = load_mask(req.mask, (w, h), req.resize_mask)
    t0 = time.perf_counter()
    if method in CLASSICAL_METHODS:
        outs, region, params = _classical(image, mask, method, settings), (0, 0, w, h), {"radius": settings.radius}
        seeds: list = []
    else:
        outs, region, more = _with_model(session, image, mask, method, settings, req, progress, cancel)
        seeds, params = list(req.seeds), more
        note = "; ".join(filter(None, [note, channels_note(image.shape[2], session.family.channels)]))
        if mask_outside(mask, region):
            note = "; ".join(filter(None, [note, "part of the mask lies outside the frame and is left unchanged"]))
    meta = {"kind": "inpaint", "method": method, "image": str(req.image), "mask": str(req.mask),
            "settings": asdict(settings), "params": params, "elapsed_s": round(time.perf_counter() - t0, 3)}
    if session is not None and method not in CLASSICAL_METHODS:
        meta.update(checkpoint=str(session.checkpoint), step=session.step, family=session.family.name)
    out_dir = Path(req.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(req.image).stem
    paths = []
    for i, out in enumerate(outs):
        suffix = f"_seed{seeds[i]}" if seeds else ""
        path = out_dir / f"{stem}_{method.replace(' ', '-')}{suffix}.png"
        seed = seeds[i] if seeds else None
        write_png(path, to_uint8(out), {**meta, **({"seed": seed} if seeds else {})}, _parameters_line(meta, seed))
        paths.append(str(path))
    return InpaintResult(paths, method, seeds, list(region), note)


def _inpaints(session: ModelSession | None) -> bool:
    from engine.family.interfaces import Inpainter
    return session is not None and isinstance(session.family, Inpainter)


def _classical(image: np.ndarray, mask: np.ndarray, method: str, settings: InpaintSettings) -> list[np.ndarray]:
    from engine.inpainting.classical import classical_fill
    filled = classical_fill(to_uint8(image), mask, method, settings.radius).astype(np.float32) / 255.0
    h, w = mask.shape
    return [paste(image, filled, feather(mask, settings.feather), (0, 0, w, h))]


def _with_model(session, image, mask, method, settings, req, progress, cancel):
    """The model's fill of the region, pasted back: a list of full-size images (one per seed), the
    region and the parameters used."""
    import torch
    from engine.core.sections import option_values
    if session is None:
        raise ValueError(f"no checkpoint loaded: {method!r} needs a model; "
                         f"{' and '.join(CLASSICAL_METHODS)} work without one")
    if not _inpaints(session):
        raise ValueError(f"a {session.family.name} model cannot inpaint; "
                         f"the classical methods ({', '.join(CLASSICAL_METHODS)}) work with any image")
    fam = session.family
    method = fam.check_inpaint_method(method)
    options = fam.sample_options(req.options)
    inpaint_options = fam.inpaint_options_for(req.inpaint)
    # the model sees the image in its own channels; the result keeps the image's (an RGB photo
    # through a greyscale model stays RGB, and every pixel away from the mask is the original's)
    seen = to_channels(image, fam.channels)
    region = work_region(mask, settings.fit, settings.padding)
    res = fam.resolution
    x0, y0, x1, y1 = region
    scale = max(x1 - x0, y1 - y0) / res          # image pixels per model pixel
    small = resize(cut(seen, region), (res, res))
    small_mask = feather(resize(cut(mask, region), (res, res)), settings.feather)
    n = len(req.seeds)
    x = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))).float().mul(2).sub(1)
    labels = fam.labels_for(n, req.cls) if req.cls is not None else None
    out = fam.inpaint(x.unsqueeze(0).repeat(n, 1, 1, 1), torch.from_numpy(small_mask)[None, None],
                      seeds=list(req.seeds), labels=labels, options=options, inpaint_options=inpaint_options,
                      method=method, progress=stage(progress, f"inpainting ({method})"), cancel=cancel)
    gen = (out.permute(0, 2, 3, 1).numpy() + 1) / 2
    weight = np.zeros_like(mask)
    weight[y0:y1, x0:x1] = feather(cut(mask, region), settings.feather * scale)
    params = {"options": option_values(options), "class": req.cls}
    if inpaint_options is not None:
        params["inpaint"] = asdict(inpaint_options)
    # a grey fill takes its colour from around the hole (composite.in_image_channels)
    guide = cut(image, region)
    if image.shape[2] > fam.channels:   # the colours around the hole, carried in (within the region)
        guide = colour_guide(guide, cut(mask, region))
    fills = [in_image_channels(resize(g, (x1 - x0, y1 - y0)), guide) for g in gen]
    return [paste(image, f, weight, region) for f in fills], region, params


def _parameters_line(meta: dict, seed: int | None) -> str:
    """The readable 'parameters' line: the method, the seed, its options, the checkpoint."""
    params = meta["params"]
    return parameters_line({"Method": meta["method"], "Seed": seed, **params.get("options", {}),
                            **params.get("inpaint", {})}, meta)
