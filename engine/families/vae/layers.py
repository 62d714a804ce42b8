"""The VAE's parts: a conv encoder q(z|x, y) and a conv decoder whose output parameterises one of
the pixel distributions of engine/nn/likelihood.py, p(x|z, y) (Kingma & Welling 2014; the conditional form of Sohn
et al. 2015: the class goes into both networks as one-hot planes / a one-hot vector)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def level_sizes(resolution: int) -> list[int]:
    """Feature-map sizes from full resolution down: halved while even and above 4 (16 -> 16, 8, 4)."""
    sizes = [resolution]
    while sizes[-1] > 4 and sizes[-1] % 2 == 0:
        sizes.append(sizes[-1] // 2)
    return sizes


def level_channels(levels: int, base: int, max_channels: int) -> list[int]:
    """Channels per level: base at full resolution, doubled at each halving, capped."""
    return [min(base * 2 ** i, max_channels) for i in range(levels)]


def one_hot_planes(labels: torch.Tensor, num_classes: int, size: int) -> torch.Tensor:
    """(B,) labels -> (B, K, size, size) constant one-hot planes."""
    return F.one_hot(labels, num_classes).float()[:, :, None, None].expand(-1, -1, size, size)


class ConvEncoder(nn.Module):
    """x (B, C, H, W) [+ one-hot class planes] -> (mu, logvar) of the diagonal Gaussian q(z|x, y),
    each (B, latent_dim): a 3x3 stem, then per level a strided 4x4 conv and a 3x3 conv (SiLU), and a
    linear layer from the smallest map."""

    def __init__(self, in_channels: int, resolution: int, base: int, max_channels: int, latent_dim: int,
                 num_classes: int = 0):
        super().__init__()
        sizes = level_sizes(resolution)
        ch = level_channels(len(sizes), base, max_channels)
        self.num_classes, self.resolution = num_classes, resolution
        layers: list[nn.Module] = [nn.Conv2d(in_channels + num_classes, ch[0], 3, padding=1), nn.SiLU()]
        for i in range(len(sizes) - 1):
            layers += [nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1), nn.SiLU(),
                       nn.Conv2d(ch[i + 1], ch[i + 1], 3, padding=1), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(ch[-1] * sizes[-1] ** 2, 2 * latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.num_classes:
            x = torch.cat([x, one_hot_planes(labels, self.num_classes, self.resolution).to(x.dtype)], dim=1)
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # exp() stays finite whatever the encoder does early on


class ConvDecoder(nn.Module):
    """z (B, latent_dim) [+ one-hot class] -> the pixel distribution's parameters (B, out_channels,
    H, W): a linear layer to the smallest map, then per level a 4x4 transposed conv that doubles the
    size and a 3x3 conv (SiLU), and a 3x3 output conv. The encoder's mirror image."""

    def __init__(self, out_channels: int, resolution: int, base: int, max_channels: int, latent_dim: int,
                 num_classes: int = 0):
        super().__init__()
        sizes = level_sizes(resolution)
        ch = level_channels(len(sizes), base, max_channels)
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Linear(latent_dim + num_classes, ch[-1] * sizes[-1] ** 2), nn.SiLU(),
                                  nn.Unflatten(1, (ch[-1], sizes[-1], sizes[-1])))
        layers: list[nn.Module] = []
        for i in reversed(range(len(sizes) - 1)):
            layers += [nn.ConvTranspose2d(ch[i + 1], ch[i], 4, stride=2, padding=1), nn.SiLU(),
                       nn.Conv2d(ch[i], ch[i], 3, padding=1), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch[0], out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.out(self.body(self.stem(z)))
