"""Noise schedules: beta_t for t = 0..T-1 and the cumulative alpha-bar."""
from __future__ import annotations

import math

import torch


def linear_betas(T: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    scale = 1000.0 / T  # keep the same total noise for T != 1000 (Improved DDPM, sec. 3)
    return torch.linspace(start * scale, min(end * scale, 0.999), T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal (2021): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), betas capped at 0.999."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    ab = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - ab[1:] / ab[:-1]).clamp(max=0.999)


def make_schedule(kind: str, T: int) -> dict[str, torch.Tensor]:
    betas = {"linear": linear_betas, "cosine": cosine_betas}[kind](T)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return {"betas": betas.float(), "alphas_cumprod": alphas_cumprod.float()}
