"""The denoising trajectory of one seed: the chosen solver run over the chosen steps, and for every
step x_t (the state after it) and x̂0 (the model's guess of the clean image there) written as small
PNGs with the step's noise level, for the Sampling canvas's trajectory strip. Works on any family
with the IterativeSampler capability (IterativeSampler.trajectory); with `guide_checkpoint`, the
trajectory of autoguided sampling."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from engine.core.flags import request_field, result_field
from engine.family.progress import Cancel, StageProgress, stage
from engine.ops.base import ModelSession, check_scale
from engine.ops.guide import check_autoguidance_scale, guide_field, scale_field


@dataclass
class TrajectoryRequest:
    out: str = request_field(output="folder", cli_default="trajectory")   # the folder of the step PNGs
    seed: int = 0
    cls: int | None = request_field(None, "class (default: the model's for image 0 of a batch)", flag="--class",
                                    metavar="CLS")
    ema: bool = request_field(True, cli=False)
    options: dict = request_field(factory=dict, help="any sample option of the checkpoint's family",
                                  sample_options=("sampler", "steps", "eta", "guidance_scale"))
    scale: int = request_field(1, "upscale the step images by this factor (nearest)")
    guide_checkpoint: str = guide_field()
    autoguidance_scale: float = scale_field()

    def check(self) -> None:
        check_scale(self.scale)
        check_autoguidance_scale(self.autoguidance_scale)


@dataclass
class TrajectoryResult:
    out: str = result_field(report="out")
    steps: int = result_field()
    x_images: list = result_field(factory=list, report=False)    # step i's x_t, noisiest first
    x0_images: list = result_field(factory=list, report=False)   # step i's x̂0
    sigmas: list = result_field(factory=list, report=False)      # step i's sigma/alpha (None where infinite)
    ts: list = result_field(factory=list, report=False)          # what the network was conditioned on at step i
    image: str = result_field("", report=False)                  # the sample itself (seed `seed`)
    strip: str = result_field("", report="strip")                # every x_t above every x̂0, one picture
    seed: int = result_field(0, report=False)
    cls: int | None = result_field(default=None, report=False)


def picture(t, image):
    """A step's tensor as an image in [-1, 1]: itself where it has the image's shape; a latent (a
    family that samples in a latent space steps through latents) laid out as a square grey image,
    scaled by its largest magnitude."""
    import torch
    if t.shape == image.shape:
        return t.clamp(-1, 1)
    flat = t.flatten().float()
    side = math.ceil(math.sqrt(flat.numel()))
    flat = torch.cat([flat, flat.new_zeros(side * side - flat.numel())])
    return (flat / flat.abs().max().clamp(min=1e-8)).view(1, side, side)


def run(session: ModelSession, req: TrajectoryRequest, progress: StageProgress, cancel: Cancel) -> TrajectoryResult:
    from engine.core.pnginfo import write_png
    from engine.family.grid import make_grid
    from engine.family.interfaces import IterativeSampler
    from engine.ops.guide import with_guide
    session.require(IterativeSampler, "has no denoising trajectory: it does not sample in steps")
    fam = session.family
    options = fam.sample_options(req.options)
    labels = fam.labels_for(1, req.cls)
    cls = None if labels is None or labels[0] is None or labels[0] < 0 else int(labels[0])
    steps, image = with_guide(fam, req.guide_checkpoint, req.autoguidance_scale, options, lambda f: f.trajectory(
        req.seed, labels=labels, use_ema=req.ema, options=options, progress=stage(progress, "trajectory"),
        cancel=cancel))
    folder = Path(req.out)
    folder.mkdir(parents=True, exist_ok=True)
    png = lambda t: make_grid(picture(t, image).unsqueeze(0), 1, pad=0, scale=req.scale)  # noqa: E731
    xs, x0s = [], []
    for s in steps:
        xs.append(str(folder / f"x_{s.index:04d}.png"))
        x0s.append(str(folder / f"x0_{s.index:04d}.png"))
        write_png(xs[-1], png(s.x))
        write_png(x0s[-1], png(s.x0))
    final = str(folder / "sample.png")
    write_png(final, png(image))
    # the whole trajectory as one picture (the command line's view): x_t above x̂0, noisiest on the left
    import torch
    row = [picture(s.x, image) for s in steps] + [picture(s.x0, image) for s in steps]
    strip = str(folder / "strip.png")
    write_png(strip, make_grid(torch.stack(row), max(len(steps), 1), pad=1, scale=req.scale))
    return TrajectoryResult(str(folder), len(steps), xs, x0s, [s.sigma if math.isfinite(s.sigma) else None
                                                              for s in steps],
                            [s.t for s in steps], image=final, strip=strip, seed=req.seed, cls=cls)
