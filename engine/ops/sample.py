"""Sample a batch of images from the loaded model: a grid PNG, and one PNG per image in a folder
next to it (the gallery's images). Every PNG carries how it was made (engine/core/pnginfo.py): the
grid the batch's parameters, each image its own seed and class, so that image alone can be made
again (image i depends on seed + i alone: Family.generate's contract, engine/family/noise.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.family.progress import Cancel, StageProgress, stage
from engine.ops.base import ModelSession, check_scale
from engine.ops.guide import check_autoguidance_scale, guide_field, scale_field
from engine.core.flags import Flag, request_field, result_field
from engine.core.schema import check_like
from engine.core.sections import SamplingSection
from engine.core.solvers import solvers_help


@dataclass
class SampleRequest:
    out: str = request_field(output="file", cli_default="grid.png")
    n: int = request_field(16, cli_default=64)
    seed: int = 0
    cls: int | None = request_field(None, "class index for every image (default: all classes)", flag="--class",
                                    metavar="CLS")   # every image of this class; None: one class per column
    ema: bool = request_field(True, cli=False)
    options: dict = request_field(   # the family's sample options (its section.py)
        factory=dict, help="any sample option of the checkpoint's family, e.g. spacing=trailing (repeatable)",
        sample_options=(Flag(key="sampler", help=lambda: f"diffusion solver (default: the run's): {solvers_help()}"),
                        "steps", "eta", "guidance_scale", "truncation_psi", "temperature", "top_k", "top_p"))
    scale: int = request_field(1, "upscale the grid by this factor (nearest)")
    images_dir: str = request_field("", cli=False)   # the per-image PNGs; "": a folder named after `out`, next to it
    guide_checkpoint: str = guide_field()
    autoguidance_scale: float = scale_field()

    def check(self) -> None:
        check_like(self.n, SamplingSection, "grid_size", "n", "sampling.grid_size")  # 1..1024 images
        check_scale(self.scale)
        check_autoguidance_scale(self.autoguidance_scale)


@dataclass
class SampleResult:
    path: str = result_field(report="out")             # the grid
    n: int = result_field()
    images: list = result_field(factory=list, report=False)    # one PNG per image, in grid order
    seeds: list = result_field(factory=list, report=False)     # image i's own seed (seed + i)
    classes: list = result_field(factory=list, report=False)   # image i's class index (None: unconditional)


def images_dir_for(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f"{out.stem}_images"


def run(session: ModelSession, req: SampleRequest, progress: StageProgress, cancel: Cancel) -> SampleResult:
    from engine.core.pnginfo import write_png
    from engine.family.grid import grid_classes, grid_columns, make_grid, sample_images
    from engine.ops.guide import with_guide
    fam = session.family
    options = fam.sample_options(req.options)
    imgs, labels = with_guide(fam, req.guide_checkpoint, req.autoguidance_scale, options, lambda f: sample_images(
        f, req.n, seed=req.seed, cls=req.cls, use_ema=req.ema, options=options, progress=stage(progress, "sampling"),
        cancel=cancel))
    batch = batch_meta(session, req, options)
    grid = make_grid(imgs, grid_columns(req.n, grid_classes(fam, req.cls)), scale=req.scale)
    write_png(req.out, grid, batch, parameters(batch, fam))
    folder = Path(req.images_dir) if req.images_dir else images_dir_for(req.out)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = [req.seed + i for i in range(req.n)]
    classes = [None if labels is None or labels[i] < 0 else int(labels[i]) for i in range(req.n)]
    paths = []
    for i in range(req.n):
        meta = {**batch, "seed": seeds[i], "cls": classes[i], "n": 1, "n_index": i,
                "batch_seed": req.seed, "batch_n": req.n}
        path = folder / f"{i:04d}_seed{seeds[i]}.png"
        write_png(path, make_grid(imgs[i:i + 1], 1, pad=0, scale=req.scale), meta, parameters(meta, fam))
        paths.append(str(path))
    return SampleResult(str(req.out), req.n, paths, seeds, classes)


def batch_meta(session: ModelSession, req: SampleRequest, options) -> dict:
    """What made this batch: the checkpoint, its family, the seed, the class and every sample option
    (the run's values where the request set none)."""
    from engine.core.sections import option_values
    fam = session.family
    return {"kind": "sample", "checkpoint": str(session.checkpoint), "step": session.step, "family": fam.name,
            "resolution": fam.resolution, "seed": req.seed, "n": req.n, "cls": req.cls,
            "options": option_values(options), "ema": req.ema,
            **({"guide_checkpoint": req.guide_checkpoint, "autoguidance_scale": req.autoguidance_scale}
               if req.guide_checkpoint else {})}


def parameters(meta: dict, fam) -> str:
    from engine.core.pnginfo import parameters_line
    cls = meta.get("cls")
    names = list(getattr(fam, "class_names", []) or [])
    named = cls is not None and 0 <= cls < len(names) and names[cls] != str(cls)   # digits are named "0".."9"
    cls_text = None if cls is None else (f"{cls} ({names[cls]})" if named else str(cls))
    images = None if meta.get("n", 1) == 1 else meta["n"]
    return parameters_line({"Seed": meta["seed"], "Images": images, "Class": cls_text, **meta["options"],
                            "EMA": meta["ema"]}, meta)
