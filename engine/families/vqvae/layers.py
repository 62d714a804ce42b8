"""The tokenizer's conv encoder and decoder: images (B, C, H, W) <-> a (B, D, H/f, W/f) feature map,
f = 2^halvings (the VQ-VAE shape of van den Oord et al. 2017: strided convs and residual blocks)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.nn.blocks import group_norm


def level_channels(levels: int, base: int, max_channels: int) -> list[int]:
    """Channels at full resolution and after each halving: doubled each time, capped."""
    return [min(base * 2 ** i, max_channels) for i in range(levels + 1)]


class ResidualBlock(nn.Module):
    """norm -> SiLU -> 3x3 conv, twice, plus the input; starts as the identity."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  group_norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """x (B, C, H, W) -> z (B, latent_dim, H/2^halvings, W/2^halvings): a 3x3 stem, then per level
    residual blocks and a strided 4x4 conv, more residual blocks and a 1x1 conv to latent_dim."""

    def __init__(self, in_channels: int, base: int, max_channels: int, halvings: int, latent_dim: int,
                 res_blocks: int):
        super().__init__()
        ch = level_channels(halvings, base, max_channels)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch[0], 3, padding=1)]
        for i in range(halvings):
            layers += [ResidualBlock(ch[i]) for _ in range(res_blocks)]
            layers.append(nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1))
        layers += [ResidualBlock(ch[-1]) for _ in range(res_blocks)]
        layers += [group_norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Upsample2x(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    """The encoder's mirror: z_q (B, latent_dim, h, w) -> images (B, C, h*2^halvings, ...), unbounded
    (the reconstruction loss compares them with [-1, 1] pixels; outputs are clamped when shown)."""

    def __init__(self, out_channels: int, base: int, max_channels: int, halvings: int, latent_dim: int,
                 res_blocks: int):
        super().__init__()
        ch = level_channels(halvings, base, max_channels)
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, ch[-1], 3, padding=1)]
        layers += [ResidualBlock(ch[-1]) for _ in range(res_blocks)]
        for i in reversed(range(halvings)):
            layers.append(Upsample2x(ch[i + 1], ch[i]))
            layers += [ResidualBlock(ch[i]) for _ in range(res_blocks)]
        layers += [group_norm(ch[0]), nn.SiLU(), nn.Conv2d(ch[0], out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
