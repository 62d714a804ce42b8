"""DCGAN generator (Radford et al. 2016): a projected 4x4 map, strided transposed convolutions with
batch norm and ReLU, tanh output; optionally class-conditional through a label embedding
concatenated to z."""
from __future__ import annotations

import torch
import torch.nn as nn

from engine.families.gan.layers import channel_plan


class DCGenerator(nn.Module):
    def __init__(self, z_dim: int, img_channels: int, resolution: int, base: int, max_channels: int,
                 num_classes: int = 0):
        super().__init__()
        ch = channel_plan(resolution, base, max_channels)
        self.z_dim, self.num_classes = z_dim, num_classes
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        in_dim = z_dim * (2 if num_classes else 1)
        self.stem = nn.Sequential(nn.Linear(in_dim, ch[4] * 16, bias=False), nn.Unflatten(1, (ch[4], 4, 4)),
                                  nn.BatchNorm2d(ch[4]), nn.ReLU(True))
        layers, r = [], 4
        while r < resolution:
            layers += [nn.ConvTranspose2d(ch[r], ch[2 * r], 4, 2, 1, bias=False), nn.BatchNorm2d(ch[2 * r]),
                       nn.ReLU(True)]
            r *= 2
        self.body = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(ch[resolution], img_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return torch.tanh(self.to_rgb(self.body(self.stem(z))))
