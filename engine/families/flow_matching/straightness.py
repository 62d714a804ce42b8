"""Straightness of a flow (Liu et al. 2022, eq. 5): S = ∫ E ||(z - x0) - v(x_t, t)||² dt along the
flow's own ODE paths from noise z (t = 1) to their end x0 (t = 0). A field whose paths are straight
lines has a constant velocity along each path, equal to z - x0: S = 0, and one Euler step is exact.

Estimated on a few noises with a handful of Euler steps: the velocities v_k met at the steps and the
path's end x0 = z - Σ dt_k v_k, so z - x0 is the steps' mean velocity and S their spread around it
(mean over steps, images and pixels)."""
from __future__ import annotations

from typing import Callable

import torch


@torch.no_grad()
def straightness(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z: torch.Tensor,
                 steps: int = 8) -> float:
    """S of the field velocity(x, t) (x (B, C, H, W), t (B,) in [0, 1]) on the Euler paths from
    noises z (B, C, H, W), with `steps` uniform steps from t = 1 to 0."""
    if steps < 1:
        raise ValueError(f"straightness needs at least one step, got {steps}")
    times = torch.linspace(1.0, 0.0, steps + 1, device=z.device)
    x, vs, dts = z.float(), [], []
    for k in range(steps):
        t, dt = times[k], float(times[k] - times[k + 1])
        v = velocity(x, t.expand(x.shape[0])).float()
        vs.append(v)
        dts.append(dt)
        x = x - dt * v
    chord = z.float() - x   # z - x0 of each path
    return float(sum(dt * ((chord - v) ** 2).mean() for dt, v in zip(dts, vs)))
