"""The probability path flow matching trains on, with t = 0 the data and t = 1 the noise (the
convention of engine/diffusion/levels.py's FlowLevel: alpha = 1 - t, sigma = t):

    x_t = (1 - (1 - sigma_min)·t)·x0 + t·eps,   velocity u = dx_t/dt = eps - (1 - sigma_min)·x0

sigma_min = 0 is rectified flow's straight line (Liu et al. 2022) and the conditional OT path of
Lipman et al. 2023 in the limit; sigma_min > 0 is their OT path read backwards in time with the
trace of the data kept at the noise end rather than noise at the data end, so that sigma stays t
and every level keeps FlowLevel's time. At any t, x0 = x_t - t·u whatever sigma_min is."""
from __future__ import annotations

import torch

from engine.diffusion.levels import ContinuousLevel, FlowTimes


def sample_times(n: int, *, kind: str, generator: torch.Generator, device, mean: float = 0.0,
                 std: float = 1.0) -> torch.Tensor:
    """n training times in [0, 1]: uniform, or logit-normal (sigmoid of N(mean, std²); Esser et al. 2024)."""
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if kind == "logit-normal":
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))
    raise ValueError(f"unknown time sampling {kind!r}; choose uniform or logit-normal")


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, sigma_min: float = 0.0) -> torch.Tensor:
    """x_t for images x0 and noise eps (B, C, H, W) at times t (B,)."""
    t = t.view(-1, 1, 1, 1)
    return (1 - (1 - sigma_min) * t) * x0 + t * eps


def velocity(x0: torch.Tensor, eps: torch.Tensor, sigma_min: float = 0.0) -> torch.Tensor:
    """The regression target dx_t/dt (B, C, H, W)."""
    return eps - (1 - sigma_min) * x0


class OTFlowLevel(ContinuousLevel):
    """A time t of the path with sigma_min > 0: alpha = 1 - (1 - sigma_min)·t, sigma = t, the ODE
    in t itself with slope eps - (1 - sigma_min)·x0."""

    def __init__(self, t: float, sigma_min: float, device=None):
        super().__init__(1.0 - (1.0 - sigma_min) * t, t, float(t), device, ode_scale=1.0, ode_time=t)
        self.t, self.sigma_min = float(t), float(sigma_min)

    def ode_direction(self, x0, eps):
        return eps - (1 - self.sigma_min) * x0


class OTFlowTimes(FlowTimes):
    """FlowTimes' spacing (evenly from t = 1 to 1/n, then 0) on the sigma_min path."""

    name = "flow-ot"

    def __init__(self, sigma_min: float):
        if not 0 <= sigma_min < 1:
            raise ValueError(f"sigma_min = {sigma_min} must be in [0, 1)")
        self.sigma_min = float(sigma_min)

    def __repr__(self) -> str:
        return f"OTFlowTimes(sigma_min={self.sigma_min})"

    def schedule(self, n, device=None):
        return [OTFlowLevel(t, self.sigma_min, device) for t in self.times(n)] + [OTFlowLevel(0.0, self.sigma_min, device)]

    def midpoint(self, a, b, device=None):
        return OTFlowLevel((a.t + b.t) / 2, self.sigma_min, device)


def flow_levels(sigma_min: float) -> FlowTimes:
    """The levels sampling walks: FlowTimes itself on the straight path."""
    return FlowTimes() if sigma_min == 0 else OTFlowTimes(sigma_min)

