"""Sample a grid of images from the loaded model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.ops.base import Cancel, ModelSession, StageProgress, stage

MAX_IMAGES = 1024


@dataclass
class SampleRequest:
    out: str
    n: int = 16
    seed: int = 0
    cls: int | None = None           # every image of this class; None: one class per column
    ema: bool = True
    options: dict = field(default_factory=dict)   # the family's sample options (engine/sections/)
    scale: int = 1

    def check(self) -> None:
        if not 1 <= self.n <= MAX_IMAGES:
            raise ValueError(f"n = {self.n} must be between 1 and {MAX_IMAGES}")
        if not 1 <= self.scale <= 16:
            raise ValueError(f"scale = {self.scale} must be between 1 and 16")


@dataclass
class SampleResult:
    path: str
    n: int


def run(session: ModelSession, req: SampleRequest, progress: StageProgress, cancel: Cancel) -> SampleResult:
    from engine.training.grid import sample_grid_image, save_png
    fam = session.family
    options = fam.sample_options(req.options)
    img = sample_grid_image(fam, req.n, seed=req.seed, cls=req.cls, scale=req.scale, use_ema=req.ema,
                            options=options, progress=stage(progress, "sampling"), cancel=cancel)
    save_png(img, Path(req.out))
    return SampleResult(req.out, req.n)
