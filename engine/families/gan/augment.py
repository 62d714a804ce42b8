"""Differentiable augmentations for GANs on small data, applied to real and fake images alike in
both the discriminator and generator steps so D never sees an un-augmented distribution.

- DiffAugment (Zhao et al. 2020): colour, translation and cutout on every image.
- ADA (Karras et al. 2020): each transform applied with probability p; p is adapted from the sign
  of D on reals, E[sign D(x_real)], moving toward a target (0.6): when D is over-confident on reals
  (overfitting), p rises; otherwise it falls. p lives in buffers, so it is checkpointed and resumed.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _rand(shape, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=x.device, dtype=x.dtype)


def translate(x: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, pad: int, mode: str = "constant") -> torch.Tensor:
    """Shift each image by integer (tx, ty) pixels (|t| <= pad), filling from `mode` padding."""
    b, c, h, w = x.shape
    xp = F.pad(x, [pad, pad, pad, pad], mode=mode)
    gy = torch.arange(h, device=x.device).view(1, h, 1) + pad - ty.view(b, 1, 1)
    gx = torch.arange(w, device=x.device).view(1, 1, w) + pad - tx.view(b, 1, 1)
    flat = (gy * (w + 2 * pad) + gx).view(b, 1, h * w).expand(b, c, h * w)
    return xp.flatten(2).gather(2, flat).view(b, c, h, w)


def _randint(lo: int, hi: int, n: int, x: torch.Tensor, g) -> torch.Tensor:
    return torch.randint(lo, hi, (n,), generator=g, device=x.device)


def diff_augment(x: torch.Tensor, policy: list[str], g: torch.Generator | None = None) -> torch.Tensor:
    b, c, h, w = x.shape
    for p in policy:
        if p == "color":
            x = x + (_rand((b, 1, 1, 1), x, g) - 0.5)                      # brightness
            if c > 1:
                m = x.mean(1, keepdim=True)
                x = (x - m) * (_rand((b, 1, 1, 1), x, g) * 2) + m          # saturation
            m = x.mean((1, 2, 3), keepdim=True)
            x = (x - m) * (_rand((b, 1, 1, 1), x, g) + 0.5) + m            # contrast
        elif p == "translation":
            s = int(h * 0.125 + 0.5)
            x = translate(x, _randint(-s, s + 1, b, x, g), _randint(-s, s + 1, b, x, g), s)
        elif p == "cutout":
            sh, sw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
            cy, cx = _randint(0, h, b, x, g).view(b, 1, 1), _randint(0, w, b, x, g).view(b, 1, 1)
            yy = torch.arange(h, device=x.device).view(1, h, 1)
            xx = torch.arange(w, device=x.device).view(1, 1, w)
            y0, x0 = cy - sh // 2, cx - sw // 2
            hole = (yy >= y0) & (yy < y0 + sh) & (xx >= x0) & (xx < x0 + sw)
            x = x * (~hole).unsqueeze(1).to(x.dtype)
        elif p:
            raise ValueError(f"unknown DiffAugment transform {p!r}")
    return x


class AdaptiveAugment(nn.Module):
    """ADA's pipeline (x-flip, 90-degree rotation, integer translation, brightness, contrast,
    saturation; each with probability p per image) and its p controller."""

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 20.0):
        super().__init__()
        self.target, self.interval, self.kimg = target, interval, kimg
        self.register_buffer("p", torch.zeros(()))
        self.register_buffer("sign_sum", torch.zeros(()))
        self.register_buffer("sign_count", torch.zeros(()))

    def forward(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.p.to(x.dtype)

        def chosen():
            return (_rand((b,), x, g) < p).view(b, 1, 1, 1)
        x = torch.where(chosen(), x.flip(3), x)
        k = _randint(0, 4, b, x, g).view(b, 1, 1, 1)
        rots = [x] + [torch.rot90(x, i, (2, 3)) for i in (1, 2, 3)] if h == w else [x]
        rotated = x
        for i in range(1, len(rots)):
            rotated = torch.where(k == i, rots[i], rotated)
        x = torch.where(chosen(), rotated, x)
        s = max(1, int(h * 0.125 + 0.5))
        on = chosen().view(b)
        tx = _randint(-s, s + 1, b, x, g) * on
        ty = _randint(-s, s + 1, b, x, g) * on
        x = translate(x, tx, ty, s, mode="reflect" if s < h else "replicate")
        x = x + torch.randn((b, 1, 1, 1), generator=g, device=x.device, dtype=x.dtype) * 0.2 * chosen()
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * torch.exp2(torch.randn((b, 1, 1, 1), generator=g, device=x.device, dtype=x.dtype)
                                 * 0.5 * chosen()) + m
        if c > 1:
            m = x.mean(1, keepdim=True)
            x = (x - m) * torch.exp2(torch.randn((b, 1, 1, 1), generator=g, device=x.device, dtype=x.dtype)
                                     * chosen()) + m
        return x

    @torch.no_grad()
    def observe(self, real_scores: torch.Tensor) -> None:
        """Accumulate sign(D(real)); no host sync."""
        self.sign_sum += torch.sign(real_scores.detach().float()).sum()
        self.sign_count += real_scores.numel()

    @torch.no_grad()
    def adjust(self, batch_size: int) -> None:
        """Move p by sign(r_t - target) * (images seen since the last adjustment) / (kimg * 1000)."""
        rt = self.sign_sum / self.sign_count.clamp(min=1)
        step = batch_size * self.interval / (self.kimg * 1000)
        moved = (self.p + torch.sign(rt - self.target) * step).clamp(0, 1)
        self.p.copy_(torch.where(self.sign_count > 0, moved, self.p))
        self.sign_sum.zero_()
        self.sign_count.zero_()

    def rt(self) -> torch.Tensor:
        return self.sign_sum / self.sign_count.clamp(min=1)
