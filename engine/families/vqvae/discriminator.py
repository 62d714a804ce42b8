"""VQGAN-lite's discriminator (Esser et al. 2021, after pix2pix's PatchGAN, Isola et al. 2017): a
few strided 4x4 convs and LeakyReLU, then a 3x3 conv to one score per patch, so D judges local
texture (what MSE blurs) rather than the whole image. No batch norm (its running statistics would
tie one image's score to the batch); spectral normalization (Miyato et al. 2018) optional.
`features` also returns the intermediate activations: the run's own perceptual space for the
feature-matching loss (no downloaded LPIPS)."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """x (B, C, H, W) -> a patch map of scores (B, 1, H / 2^layers, W / 2^layers)."""

    def __init__(self, in_channels: int, base: int, max_channels: int, layers: int, *, spectral: bool = False):
        super().__init__()
        chans = [min(base * 2 ** i, max_channels) for i in range(layers)]
        blocks, c_in = [], in_channels
        for c in chans:
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2)))
            c_in = c
        blocks.append(nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1), nn.LeakyReLU(0.2)))
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(c_in, 1, 3, padding=1)
        if spectral:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    spectral_norm(m)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after each block, then the patch scores last."""
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        feats.append(self.out(x))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]
