"""The generic denoising loop: a `Denoiser` (network -> x̂0 and ε̂ at a noise level) driven by a
`Solver` (engine.diffusion.solvers) over its schedule of levels (engine.diffusion.levels), and the
same loop run backwards (inversion).

Classifier-free guidance is folded into the network callable by the family, so this stays generic.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, NamedTuple

import torch

from engine.diffusion.levels import Level
from engine.diffusion.solvers import Solver
from engine.family.progress import Cancel, Progress, check_cancel
from engine.family.trajectory import observing, report_step

#   eps   the noise
#   x0    the clean image
#   v     alpha·eps - sigma·x0 (Salimans & Ho 2022)
#   flow  the flow-matching velocity eps - x0 (dx/dt for x = (1 - t)·x0 + t·eps)
#   edm   EDM's raw network F (Karras et al. 2022, sec. 5): D = c_skip·x + c_out·F(c_in·x; c_noise)
PREDICTIONS = ("eps", "x0", "v", "flow", "edm")


class Prediction(NamedTuple):
    x0: torch.Tensor    # (B, C, H, W) the denoised estimate x̂0
    eps: torch.Tensor   # (B, C, H, W) the noise estimate ε̂, with x = alpha·x̂0 + sigma·ε̂


class Denoiser:
    """Wraps a network `fn(x, cond)` ((B, C, H, W), (B,) -> (B, C, H, W)) trained to predict
    `prediction` (one of PREDICTIONS), and returns x̂0 and ε̂ at a level (float32).

    The network gets the level's `cond` (DDPM's integer timestep as a long tensor, EDM's c_noise or
    flow's t as float32); with scalar_cond=True it gets the cond itself, a plain number (for
    functions of the level rather than networks). sigma_data: EDM's data standard deviation, for
    the "edm" preconditioning.
    """

    def __init__(self, fn: Callable[[torch.Tensor, Any], torch.Tensor], *, prediction: str = "eps",
                 sigma_data: float = 0.5, scalar_cond: bool = False):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        self.fn = fn
        self.prediction = prediction
        self.sigma_data = float(sigma_data)
        self.scalar_cond = scalar_cond

    def __repr__(self) -> str:
        return f"Denoiser(prediction={self.prediction!r})"

    def _net(self, x: torch.Tensor, level: Level) -> torch.Tensor:
        cond = level.cond
        if not self.scalar_cond:
            dtype = torch.long if isinstance(cond, int) else torch.float32
            cond = torch.full((x.shape[0],), cond, device=x.device, dtype=dtype)
        return self.fn(x, cond).float()

    def predict(self, x: torch.Tensor, level: Level) -> Prediction:
        """x̂0 and ε̂ for x (B, C, H, W) at a noisy level."""
        x = x.float()
        a, s = level.alpha, level.sigma
        p = self.prediction
        if p == "edm":
            # in the variance-exploding frame x/alpha, sigma/alpha (EDM's own frame when alpha = 1)
            x_ve, s_ve, sd = x / a, s / a, self.sigma_data
            norm = s_ve * s_ve + sd * sd
            f = self._net(x_ve * norm.rsqrt(), level)
            x0 = (sd * sd / norm) * x_ve + (s_ve * sd * norm.rsqrt()) * f
            return Prediction(x0, (x - a * x0) / s)
        out = self._net(x, level)
        if p == "eps":
            return Prediction((x - s * out) / a, out)
        if p == "x0":
            return Prediction(out, (x - a * out) / s)
        if p == "v":    # x = a·x0 + s·eps and v = a·eps - s·x0, solved for x0 and eps
            norm = a * a + level.sigma2
            return Prediction((a * x - s * out) / norm, (s * x + a * out) / norm)
        norm = a + s    # flow: u = eps - x0
        return Prediction((x - s * out) / norm, (x + a * out) / norm)


def as_denoiser(denoiser: Any) -> Any:
    """`denoiser` itself if it predicts at levels (has `predict(x, level)`); any other callable is
    `eps(x, t)` of the level's cond as a plain number (DDPM's integer t), the loop's contract
    before levels, and is wrapped as an epsilon Denoiser."""
    return denoiser if hasattr(denoiser, "predict") else Denoiser(denoiser, scalar_cond=True)


@torch.no_grad()
def denoise(denoiser: Any, solver: Solver, x_T: torch.Tensor, steps: int, *,
            generator: torch.Generator | None = None, progress: Progress | None = None,
            cancel: Cancel | None = None,
            callback: Callable[[int, Level, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Denoise x_T (B, C, H, W), noise at the solver's first level, to images (B, C, H, W) over
    solver.levels(steps). `denoiser`: a Denoiser, or see as_denoiser.

    cancel() is checked before every step (raises Cancelled); callback(i, level, x, x0) sees each
    step's level, its new x and its x̂0 (a trajectory), and so does an observer of
    engine.family.trajectory; progress(i + 1, n) follows every step. Within `wrapping_denoiser`
    the denoiser is wrapped first (autoguidance).
    """
    den = as_denoiser(denoiser)
    wrap = _WRAP.get()
    if wrap is not None:
        den = wrap(den)
    levels = solver.levels(steps, x_T.device)
    n = len(levels) - 1
    x = x_T
    for i, level in enumerate(levels[:-1]):
        check_cancel(cancel)
        x, x0 = solver.step(den, level, x, generator=generator)
        if callback is not None:
            callback(i, level, x, x0)
        if observing():   # only then: float() of a level syncs with the device
            report_step(i, float(level.sigma / level.alpha), _cond_value(level.cond), x, x0)
        if progress is not None:
            progress(i + 1, n)
    return x


def _cond_value(cond: Any) -> float:
    return float(cond.float().mean()) if isinstance(cond, torch.Tensor) else float(cond)


# a function den -> den that every `denoise` applies to its denoiser (None: none); a context
# variable, as the trajectory's observer, so a wrapper reaches any family's loop unchanged
_WRAP: contextvars.ContextVar[Callable[[Any], Any] | None] = contextvars.ContextVar("denoiser_wrap", default=None)


@contextlib.contextmanager
def wrapping_denoiser(wrap: Callable[[Any], Any]) -> Iterator[None]:
    """Within the block, every `denoise` runs with wrap(its denoiser)."""
    token = _WRAP.set(wrap)
    try:
        yield
    finally:
        _WRAP.reset(token)


@torch.no_grad()
def invert(denoiser: Any, solver: Solver, x0: torch.Tensor, steps: int, *, progress: Progress | None = None,
           cancel: Cancel | None = None) -> torch.Tensor:
    """Run an invertible solver backwards: images x0 (B, C, H, W), taken as x at the least noisy
    level, -> noise (B, C, H, W) at the noisiest, so `denoise` with the same solver and steps comes
    back close to x0."""
    if not solver.invertible:
        raise ValueError(f"solver {solver.name} is not invertible")
    den = as_denoiser(denoiser)
    levels = solver.levels(steps, x0.device)[:-1][::-1]  # noisy levels, least noisy first
    x = x0
    for i in range(len(levels) - 1):
        check_cancel(cancel)
        x = solver.inverse_step(den, levels[i], levels[i + 1], x)
        if progress is not None:
            progress(i + 1, len(levels) - 1)
    return x
