"""GAN objectives and regularizers: non-saturating, hinge and Wasserstein losses; WGAN-GP's
gradient penalty; R1; StyleGAN2's path-length penalty. Each takes raw discriminator scores."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x critic(x)|| - 1)^2] on random interpolates of
    real and fake images."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device=real.device)
    x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def r1_penalty(real_scores: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] on real images; `real` must require grad and
    `real_scores` must come from it."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def path_length_penalty(ws: torch.Tensor, images: torch.Tensor, pl_mean: torch.Tensor,
                        generator: torch.Generator | None = None, decay: float = 0.01) -> torch.Tensor:
    """StyleGAN2's path-length regularizer: the Jacobian of image w.r.t. w, probed with random image
    directions, should have a constant norm (tracked in pl_mean, updated in place)."""
    h, w = images.shape[-2:]
    noise = torch.randn(images.shape, generator=generator, device=images.device) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(-1).mean(-1).sqrt() if grad.dim() == 3 else grad.square().sum(-1).sqrt()
    with torch.no_grad():
        pl_mean.lerp_(lengths.mean().detach(), decay)
    return (lengths - pl_mean).square().mean()
