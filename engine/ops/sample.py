"""Sample a grid of images from the loaded model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.ops.base import Cancel, ModelSession, StageProgress, check_scale, stage
from engine.schema import check_like
from engine.sections.common import SamplingSection


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
        check_like(self.n, SamplingSection, "grid_size", "n", "sampling.grid_size")  # 1..1024 images
        check_scale(self.scale)


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
