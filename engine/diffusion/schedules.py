"""Noise schedules: beta_t for t = 0..T-1 and the cumulative alpha-bar."""
from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "cosine", "sigmoid")


def linear_betas(T: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    scale = 1000.0 / T  # keep the same total noise for T != 1000 (Improved DDPM, sec. 3)
    return torch.linspace(start * scale, min(end * scale, 0.999), T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal (2021): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), betas capped at 0.999."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    ab = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - ab[1:] / ab[:-1]).clamp(max=0.999)


def sigmoid_betas(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Chen (2023), "On the importance of noise scheduling for diffusion models": alpha-bar(t) =
    (sigmoid(end/tau) - sigmoid((t·(end - start) + start)/tau)) / (sigmoid(end/tau) - sigmoid(start/tau))
    over t in [0, 1], normalised to 1 at t = 0, betas capped at 0.999 (as lucidrains'
    denoising-diffusion-pytorch `sigmoid_beta_schedule`, which it recommends above 64 pixels)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    v_start, v_end = torch.tensor(start / tau).sigmoid(), torch.tensor(end / tau).sigmoid()
    ab = (v_end - ((t * (end - start) + start) / tau).sigmoid()) / (v_end - v_start)
    ab = ab / ab[0]
    return (1 - ab[1:] / ab[:-1]).clamp(0, 0.999)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1
    (diffusers' rescale_zero_terminal_snr): sqrt(alpha-bar) shifted so that its last value is 0 and
    scaled so that its first is unchanged, so the last timestep is pure noise (SNR 0)."""
    ab_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = ab_sqrt[0].clone(), ab_sqrt[-1].clone()
    ab_sqrt = (ab_sqrt - last) * (first / (first - last))
    ab = ab_sqrt ** 2
    alphas = torch.cat([ab[0:1], ab[1:] / ab[:-1]])
    return 1 - alphas


def make_schedule(kind: str, T: int, *, zero_terminal_snr: bool = False) -> dict[str, torch.Tensor]:
    if kind not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    betas = {"linear": linear_betas, "cosine": cosine_betas, "sigmoid": sigmoid_betas}[kind](T)
    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return {"betas": betas.float(), "alphas_cumprod": alphas_cumprod.float()}
