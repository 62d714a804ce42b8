"""Projection: find the latent (w+ for StyleGAN, z for DCGAN) whose image reproduces a given real
image, by gradient descent on a pixel loss plus a feature loss. The features come from the run's
own discriminator (a learned perceptual space that needs no download)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from engine.family.progress import Cancelled


@dataclass
class Projection:
    latent: torch.Tensor                 # (1, ...) in the family's latent space
    losses: list[float] = field(default_factory=list)
    image: torch.Tensor | None = None    # the reconstruction, (1, C, H, W) in [-1, 1]


def project(family, target: torch.Tensor, *, labels=None, steps: int = 200, lr: float = 0.05,
            feature_weight: float = 1.0, progress: Callable[[int, int], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> Projection:
    """target: (C, H, W) in [-1, 1]. Adam on the latent with a cosine learning-rate ramp-down."""
    dev = family.device
    target = target.to(dev).float().unsqueeze(0)
    D = family.networks["D"]
    opts = family.projection_options()
    was = D.training
    D.eval()
    try:
        with torch.no_grad():
            target_feats = D.features(target)
        def loss_of(img):
            loss = F.mse_loss(img, target.expand_as(img), reduction="none").flatten(1).mean(1)
            if feature_weight:
                feats = D.features(img)
                loss = loss + feature_weight * sum(
                    F.mse_loss(f, t.expand_as(f), reduction="none").flatten(1).mean(1)
                    for f, t in zip(feats, target_feats)) / len(feats)
            return loss

        with torch.no_grad():
            starts = family.start_latents(labels)
            lab = None if labels is None else list(labels) * len(starts)
            best = int(loss_of(family.decode_latents(starts, lab, options=opts, differentiable=True)).argmin())
        latent = starts[best:best + 1].detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([latent], lr=lr, betas=(0.9, 0.999))
        losses = []
        for i in range(steps):
            if cancel is not None and cancel():
                raise Cancelled()
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, 0.5 * (1 + math.cos(math.pi * i / steps)) + 0.05)
            loss = loss_of(family.decode_latents(latent, labels, options=opts, differentiable=True))[0]
            (grad,) = torch.autograd.grad(loss, [latent])  # only the latent moves: no parameter grads
            latent.grad = grad
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(i + 1, steps)
        final = family.decode_latents(latent.detach(), labels, options=opts)
    finally:
        D.train(was)
    return Projection(latent.detach(), losses, final)
