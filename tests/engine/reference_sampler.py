"""The sampling loop GenLab 0.1 shipped (engine/sampling/samplers.py), frozen here as the reference
the solver objects must match bit for bit (tests/engine/test_solvers.py). Not used by the engine.

Samplers for epsilon-prediction diffusion models: ancestral DDPM and DDIM (Song et al. 2021),
both over a respaced subset of the T training timesteps.

`eps_fn(x, t)` predicts the noise in x at integer timesteps t (B,). Classifier-free guidance is
folded into eps_fn by the family, so the samplers stay generic.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


from engine.family.progress import Cancelled


def respaced_timesteps(T: int, steps: int) -> list[int]:
    """`steps` timesteps from T-1 down to 0, evenly spaced (always including T-1 and 0)."""
    steps = max(1, min(steps, T))
    ts = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(int))[::-1]
    return [int(t) for t in ts]


@torch.no_grad()
def sample_loop(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x_T: torch.Tensor,
                alphas_cumprod: torch.Tensor, *, sampler: str = "ddim", steps: int = 50, eta: float = 0.0,
                generator: torch.Generator | None = None, clip_x0: bool = True,
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """Denoise x_T (pure noise) to an image in [-1, 1]."""
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"unknown sampler {sampler!r}; choose ddim or ddpm")
    ac = alphas_cumprod.to(device=x_T.device, dtype=torch.float32)
    ts = respaced_timesteps(len(ac), steps)
    x = x_T
    for i, t in enumerate(ts):
        if cancel is not None and cancel():
            raise Cancelled()
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        ab = ac[t]
        ab_prev = ac[t_prev] if t_prev >= 0 else torch.ones((), device=x.device)
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).float()
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if t_prev < 0:
            x = x0
        elif sampler == "ddim":
            sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
            if eta > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        else:  # ancestral: sample the posterior q(x_prev | x_t, x0) of the respaced chain
            beta = 1 - ab / ab_prev
            mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)) * x
            var = beta * (1 - ab_prev) / (1 - ab)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if progress is not None:
            progress(i + 1, len(ts))
    return x


@torch.no_grad()
def ddim_invert(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                alphas_cumprod: torch.Tensor, *, steps: int = 50,
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """DDIM inversion: run the deterministic DDIM update backwards, from an image up to x_T, over
    the same respaced timesteps sample_loop uses, so DDIM (eta 0) from the result comes back close
    to the image."""
    ac = alphas_cumprod.to(device=x0.device, dtype=torch.float32)
    ts = respaced_timesteps(len(ac), steps)[::-1]  # ascending
    x = x0
    for i in range(len(ts) - 1):
        if cancel is not None and cancel():
            raise Cancelled()
        t, t_next = ts[i], ts[i + 1]
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).float()
        pred_x0 = (x - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
        x = ac[t_next].sqrt() * pred_x0 + (1 - ac[t_next]).sqrt() * eps
        if progress is not None:
            progress(i + 1, len(ts) - 1)
    return x
