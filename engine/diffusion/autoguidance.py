"""Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"):
D(x; σ) = D_guide(x; σ) + w·(D_main(x; σ) − D_guide(x; σ)), the guide an earlier or smaller
checkpoint of the same run. It needs no labels, so unconditional models are guided too.

The guide's denoiser is the one its own family builds for the same call (labels, options, EMA):
`autoguided` runs the call on the guide just until its denoising loop starts, keeps the denoiser
it was handed, and runs the call on the main model with each denoiser wrapped. Any family that
samples through engine.diffusion.denoise is guided this way, with no code of its own."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch

from engine.diffusion.denoise import Prediction, as_denoiser, wrapping_denoiser
from engine.diffusion.levels import Level

T = TypeVar("T")


class AutoGuided:
    """A denoiser: the guide's prediction moved `scale` times towards the main one's. Both x̂0 and ε̂
    are combined with the same weights, so x = alpha·x̂0 + sigma·ε̂ still holds. scale 1 is the main
    model, 0 the guide."""

    def __init__(self, main: Any, guide: Any, scale: float):
        self.main, self.guide, self.scale = as_denoiser(main), as_denoiser(guide), float(scale)

    def __repr__(self) -> str:
        return f"AutoGuided({self.main!r}, guide={self.guide!r}, scale={self.scale})"

    def predict(self, x: torch.Tensor, level: Level) -> Prediction:
        m = self.main.predict(x, level)
        g = self.guide.predict(x, level)
        w = self.scale
        return Prediction(g.x0 + w * (m.x0 - g.x0), g.eps + w * (m.eps - g.eps))


class _Captured(Exception):
    def __init__(self, denoiser):
        super().__init__("captured")
        self.denoiser = denoiser


def capture_denoiser(call: Callable[[], Any], what: str) -> Any:
    """The denoiser that call()'s first denoising loop is handed; the loop itself never runs.
    `what` names the model in the error when call() samples without the loop."""
    def grab(den):
        raise _Captured(den)
    with wrapping_denoiser(grab):
        try:
            call()
        except _Captured as c:
            return c.denoiser
    raise ValueError(f"{what} does not sample through the denoising loop, so it cannot guide")


def autoguided(main, guide, scale: float, call: Callable[[Any], T]) -> T:
    """call(main) with every denoiser guided by the one call(guide) would use (see the module)."""
    guide_den = capture_denoiser(lambda: call(guide), f"the guide (a {guide.name} model)")
    with wrapping_denoiser(lambda den: AutoGuided(den, guide_den, scale)):
        return call(main)


def guide_mismatch(main, guide, options=None) -> str:
    """Why `guide` cannot guide `main` ("" when it can): another family, another data shape or
    classes, or other noise levels (checked where the family builds its solver from options)."""
    if guide.name != main.name:
        return f"it is a {guide.name} model, the main model a {main.name}"
    shape = lambda f: (f.channels, f.resolution, f.resolution)  # noqa: E731
    if shape(guide) != shape(main):
        return f"its images are {_shape_text(shape(guide))}, the main model's {_shape_text(shape(main))}"
    if getattr(guide, "num_classes", 0) != getattr(main, "num_classes", 0):
        return (f"it has {getattr(guide, 'num_classes', 0)} classes, the main model "
                f"{getattr(main, 'num_classes', 0)}")
    if hasattr(main, "solver") and hasattr(guide, "solver"):
        m_opts = main.sample_options(options)
        g_opts = guide.sample_options(m_opts)
        m_lv = main.solver(m_opts).levels(int(m_opts.steps), torch.device("cpu"))
        g_lv = guide.solver(g_opts).levels(int(g_opts.steps), torch.device("cpu"))
        same = len(m_lv) == len(g_lv) and all(
            _cond(a.cond) == _cond(b.cond) and torch.allclose(a.alpha.cpu(), b.alpha.cpu())
            and torch.allclose(a.sigma.cpu(), b.sigma.cpu()) for a, b in zip(m_lv, g_lv))
        if not same:
            return "its noise schedule differs from the main model's"
    return ""


def _cond(c):
    return c.tolist() if isinstance(c, torch.Tensor) else c


def _shape_text(shape) -> str:
    c, h, w = shape
    return f"{c}×{h}×{w}"
