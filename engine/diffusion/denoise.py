"""The generic denoising loop: a `Denoiser` (network -> epsilon) driven by a `Solver`
(engine.diffusion.solvers) over its timestep schedule, and the same loop run backwards (inversion).

Classifier-free guidance is folded into the network callable by the family, so this stays generic.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.diffusion.solvers import Solver
from engine.family.progress import Cancel, Progress, check_cancel

PREDICTIONS = ("eps", "x0", "v")

class Denoiser:
    """Wraps a network `fn(x, t) -> output` ((B, C, H, W), (B,) long -> (B, C, H, W)) trained to
    predict `prediction` ("eps", "x0" or "v"), and returns the epsilon prediction the solvers take.

    alphas_cumprod: (T,) the training schedule's cumulative alpha-bar.
    """

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], alphas_cumprod: torch.Tensor,
                 *, prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        self.fn = fn
        self.prediction = prediction
        self.alphas_cumprod = alphas_cumprod.detach().to(torch.float32)
        self._ac_cache: dict[torch.device, torch.Tensor] = {}

    def _ac(self, device: torch.device) -> torch.Tensor:
        if device not in self._ac_cache:
            self._ac_cache[device] = self.alphas_cumprod.to(device)
        return self._ac_cache[device]

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Epsilon (B, C, H, W) float32 for x (B, C, H, W) at integer timestep t."""
        out = self.fn(x, torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)).float()
        if self.prediction == "eps":
            return out
        # Other parameterisations (EDM's preconditioned D(x; sigma), flow-matching velocities) plug
        # in here later: each is one more conversion to epsilon.
        ab = self._ac(x.device)[int(t)]
        x = x.float()
        if self.prediction == "x0":
            return (x - ab.sqrt() * out) / (1 - ab).sqrt()
        return ab.sqrt() * out + (1 - ab).sqrt() * x  # v = sqrt(ab) eps - sqrt(1-ab) x0


@torch.no_grad()
def denoise(denoiser: Callable[[torch.Tensor, int], torch.Tensor], solver: Solver, x_T: torch.Tensor,
            steps: int, *, generator: torch.Generator | None = None, progress: Progress | None = None,
            cancel: Cancel | None = None,
            callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Denoise x_T (B, C, H, W), pure noise, to images (B, C, H, W) over solver.timesteps(steps).

    cancel() is checked before every step (raises Cancelled); callback(i, t, x, x0) sees each step's
    new x and x0 prediction (a trajectory); progress(i + 1, n) follows every step.
    """
    ts = solver.timesteps(steps)
    x = x_T
    for i, t in enumerate(ts):
        check_cancel(cancel)
        eps = denoiser(x, t)
        x, x0 = solver.step(eps, t, x, generator=generator)
        if callback is not None:
            callback(i, t, x, x0)
        if progress is not None:
            progress(i + 1, len(ts))
    return x


@torch.no_grad()
def invert(denoiser: Callable[[torch.Tensor, int], torch.Tensor], solver: Solver, x0: torch.Tensor, steps: int,
           *, progress: Progress | None = None, cancel: Cancel | None = None) -> torch.Tensor:
    """Run an invertible solver backwards: images x0 (B, C, H, W) -> noise x_T (B, C, H, W) over the
    ascending schedule, so `denoise` with the same solver and steps comes back close to x0."""
    if not solver.invertible:
        raise ValueError(f"solver {solver.name} is not invertible")
    ts = solver.timesteps(steps)[::-1]  # ascending
    x = x0
    for i in range(len(ts) - 1):
        check_cancel(cancel)
        t, t_next = ts[i], ts[i + 1]
        x = solver.inverse_step(denoiser(x, t), t, t_next, x)
        if progress is not None:
            progress(i + 1, len(ts) - 1)
    return x
