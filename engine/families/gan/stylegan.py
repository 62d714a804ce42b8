"""StyleGAN-lite generator (after Karras et al. 2019, 2020): a mapping network z -> w, a learned
constant input, per-layer styles through modulated convolutions with weight demodulation, per-layer
noise with learned strength, and a skip (sum of upsampled RGB outputs) architecture.

Style (w) inputs, in order: the 4x4 conv, then for each finer level its two convs, with each ToRGB
sharing the index of the next level's first conv (as StyleGAN2). num_ws = 2 * levels."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.families.gan.layers import EqualLinear, ModulatedConv2d, channel_plan, lrelu, normalize_2nd_moment



class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, layers: int, num_classes: int = 0, lr_mul: float = 0.01):
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.embed = nn.Embedding(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims, dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))  # tracked while training: truncation's centre

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed(labels))], dim=1)
        return self.net(x)


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick: w' = w_avg + psi (w - w_avg)."""
    return w if psi == 1 else w_avg.to(w.dtype).lerp(w, psi)


def mix_styles(w1: torch.Tensor, w2: torch.Tensor, crossover: torch.Tensor, num_ws: int) -> torch.Tensor:
    """Per-layer styles (B, num_ws, w_dim): layers before each sample's crossover index take w1,
    the rest w2."""
    later = torch.arange(num_ws, device=w1.device).view(1, -1, 1) >= crossover.view(-1, 1, 1)
    return torch.where(later, w2.unsqueeze(1), w1.unsqueeze(1))


class StyleLayer(nn.Module):
    def __init__(self, in_c: int, out_c: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_c, out_c, 3, w_dim, demodulate=True, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_c))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.resolution = resolution

    def forward(self, x, w, noise_mode: str = "random", generator: torch.Generator | None = None):
        x = self.conv(x, w)
        if noise_mode == "random":
            noise = torch.randn((x.shape[0], 1, self.resolution, self.resolution), generator=generator,
                                device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return lrelu(x + self.bias.view(1, -1, 1, 1))


class ToRGB(nn.Module):
    def __init__(self, in_c: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_c, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_channels: int, resolution: int, base: int, max_channels: int):
        super().__init__()
        ch = channel_plan(resolution, base, max_channels)
        self.const = nn.Parameter(torch.randn(ch[4], 4, 4))
        self.convs = nn.ModuleList([StyleLayer(ch[4], ch[4], w_dim, 4)])
        self.to_rgbs = nn.ModuleList([ToRGB(ch[4], img_channels, w_dim)])
        # the feature-map size each style input drives (a level's ToRGB shares the next conv's index)
        self.style_resolutions = [4]
        r = 8
        while r <= resolution:
            self.convs.append(StyleLayer(ch[r // 2], ch[r], w_dim, r, up=True))
            self.convs.append(StyleLayer(ch[r], ch[r], w_dim, r))
            self.to_rgbs.append(ToRGB(ch[r], img_channels, w_dim))
            self.style_resolutions += [r, r]
            r *= 2
        self.style_resolutions.append(resolution)  # the last ToRGB
        self.num_ws = len(self.style_resolutions)  # 2 * levels

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", generator: torch.Generator | None = None):
        """ws: (B, num_ws, w_dim) -> images in about [-1, 1] (not clamped while training)."""
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, ws[:, 0], noise_mode, generator)
        img = self.to_rgbs[0](x, ws[:, 1])
        for i in range(1, len(self.to_rgbs)):
            x = self.convs[2 * i - 1](x, ws[:, 2 * i - 1], noise_mode, generator)
            x = self.convs[2 * i](x, ws[:, 2 * i], noise_mode, generator)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + \
                self.to_rgbs[i](x, ws[:, 2 * i + 1])
        return img


class StyleGenerator(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, mapping_layers: int, img_channels: int, resolution: int,
                 base: int, max_channels: int, num_classes: int = 0, mapping_lr_mul: float = 0.01):
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, num_classes, mapping_lr_mul)
        self.synthesis = SynthesisNetwork(w_dim, img_channels, resolution, base, max_channels)
        self.num_ws, self.z_dim, self.w_dim = self.synthesis.num_ws, z_dim, w_dim

    def forward(self, z, labels=None, psi: float = 1.0, noise_mode: str = "random", generator=None):
        w = truncate(self.mapping(z, labels), self.mapping.w_avg, psi)
        return self.synthesis(w.unsqueeze(1).expand(-1, self.num_ws, -1), noise_mode, generator)
