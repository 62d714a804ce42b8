"""EDM's preconditioning and loss weighting (Karras et al. 2022, Table 1 and eq. 8), the ten lines
of their training/loss.py::EDMLoss, written for a batch of per-image sigmas:

    D(x; sigma) = c_skip(sigma)·x + c_out(sigma)·F(c_in(sigma)·x; c_noise(sigma))
    c_skip = sigma_d² / (sigma² + sigma_d²)      c_out = sigma·sigma_d / sqrt(sigma² + sigma_d²)
    c_in   = 1 / sqrt(sigma² + sigma_d²)         c_noise = ln(sigma) / 4
    loss   = lambda(sigma)·||D(x0 + sigma·n; sigma) - x0||²,  lambda = (sigma² + sigma_d²) / (sigma·sigma_d)²
    ln(sigma) ~ N(P_mean, P_std²)

Sampling uses the same D through engine/diffusion/denoise.py's "edm" prediction (with c_noise from
EDMLevel's cond); tests/engine/test_edm.py checks the two agree."""
from __future__ import annotations

from typing import NamedTuple

import torch


class Preconditioning(NamedTuple):
    c_skip: torch.Tensor
    c_out: torch.Tensor
    c_in: torch.Tensor
    c_noise: torch.Tensor


def preconditioning(sigma: torch.Tensor, sigma_data: float) -> Preconditioning:
    """The four coefficients at sigma (any shape, same shape out)."""
    norm = sigma ** 2 + sigma_data ** 2
    return Preconditioning(sigma_data ** 2 / norm, sigma * sigma_data / norm.sqrt(), norm.rsqrt(), sigma.log() / 4)


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma² + sigma_d²) / (sigma·sigma_d)²: the effective target c_out⁻²."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def sample_sigmas(n: int, *, p_mean: float, p_std: float, generator: torch.Generator, device) -> torch.Tensor:
    """n training noise levels, log-normal: exp(P_mean + P_std·N(0, 1))."""
    return (p_mean + p_std * torch.randn(n, generator=generator, device=device)).exp()
