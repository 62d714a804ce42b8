"""Layers shared by the GAN networks: equalized-learning-rate linear and conv (StyleGAN's runtime
weight scaling), weight modulation/demodulation, minibatch standard deviation, channel plans."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def channel_plan(resolution: int, base: int, max_channels: int) -> dict[int, int]:
    """Channels per feature-map size, from 4x4 up to `resolution`: `base` at full resolution,
    doubling at each coarser level, capped."""
    plan, r = {}, resolution
    while r >= 4:
        plan[r] = min(max_channels, base * (resolution // r))
        r //= 2
    return plan


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with StyleGAN's gain, keeping activations at unit scale."""
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    def __init__(self, in_f: int, out_f: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_f,), float(bias_init))) if bias else None
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(in_f), lr_mul, act

    def forward(self, x):
        b = self.bias * self.lr_mul if self.bias is not None else None
        x = F.linear(x, self.weight * self.scale, b)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    def __init__(self, in_c: int, out_c: int, k: int, bias: bool = True, down: bool = False, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_c, in_c, k, k))
        self.bias = nn.Parameter(torch.zeros(out_c)) if bias else None
        self.scale, self.pad, self.down, self.act = 1 / math.sqrt(in_c * k * k), k // 2, down, act

    def forward(self, x):
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return lrelu(x) if self.act else x


def modulated_weight(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     eps: float = 1e-8) -> torch.Tensor:
    """StyleGAN2's per-sample weights: scale input channels by the style, then (demodulate)
    rescale each output channel's filter to unit L2 norm. (B, out, in, k, k)."""
    w = weight.unsqueeze(0) * styles[:, None, :, None, None]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + eps)
    return w


class ModulatedConv2d(nn.Module):
    """Modulated convolution. Computed as modulate-activations / shared conv / demodulate-outputs,
    which equals the grouped conv with modulated_weight() but runs as one ordinary batched conv."""

    def __init__(self, in_c: int, out_c: int, k: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_c, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_c, in_c, k, k))
        self.scale, self.pad, self.demodulate, self.up = 1 / math.sqrt(in_c * k * k), k // 2, demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight * self.scale
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.pad)
        if self.demodulate:
            d = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)
            x = x * d[:, :, None, None]
        return x

    def grouped_forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The textbook grouped-convolution form (for tests and reference)."""
        b = x.shape[0]
        wt = modulated_weight(self.weight * self.scale, self.affine(w), self.demodulate)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(x.reshape(1, -1, *x.shape[2:]), wt.reshape(-1, *wt.shape[2:]), padding=self.pad, groups=b)
        return out.reshape(b, -1, *out.shape[2:])


class MinibatchStd(nn.Module):
    """Appends the average standard deviation across groups of samples as one more feature map,
    so D can see a lack of variety (Karras et al. 2018)."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x):
        b, c, h, w = x.shape
        g = math.gcd(b, self.group_size) or 1
        y = x.float().reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (b // g,)
        y = y.to(x.dtype).view(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)
