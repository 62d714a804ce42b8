"""GAN discriminators. "dcgan": strided 4x4 convolutions with LeakyReLU (no batch norm, so gradient
penalties stay per-sample). "residual": StyleGAN2's residual blocks with equalized learning rate.
Both end in a shared head: minibatch std, a conv, a linear layer, the real/fake score, and
optionally a projection term (Miyato & Koyama 2018) or AC-GAN's class logits (Odena et al. 2017).
Spectral normalization (Miyato et al. 2018) can wrap every layer."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from engine.families.gan.layers import EqualConv2d, EqualLinear, MinibatchStd, channel_plan


class ResidualBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_c, in_c, 3, act=True)
        self.conv2 = EqualConv2d(in_c, out_c, 3, down=True, act=True)
        self.skip = EqualConv2d(in_c, out_c, 1, bias=False, down=True)

    def forward(self, x):
        return (self.skip(x) + self.conv2(self.conv1(x))) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, img_channels: int, resolution: int, base: int, max_channels: int, *, kind: str = "dcgan",
                 num_classes: int = 0, conditioning: str = "projection", minibatch_std: bool = True,
                 spectral: bool = False):
        super().__init__()
        ch = channel_plan(resolution, base, max_channels)
        self.kind, self.num_classes, self.conditioning = kind, num_classes, conditioning
        lrelu = nn.LeakyReLU(0.2)
        if kind == "residual":
            self.from_rgb = EqualConv2d(img_channels, ch[resolution], 1, act=True)
            blocks = [ResidualBlock(ch[r], ch[r // 2]) for r in _levels(resolution)]
        else:
            self.from_rgb = nn.Sequential(nn.Conv2d(img_channels, ch[resolution], 3, 1, 1), lrelu)
            blocks = [nn.Sequential(nn.Conv2d(ch[r], ch[r // 2], 4, 2, 1), lrelu) for r in _levels(resolution)]
        self.blocks = nn.ModuleList(blocks)
        c4 = ch[4]
        self.mbstd = MinibatchStd() if minibatch_std else None
        extra = 1 if minibatch_std else 0
        if kind == "residual":
            self.head = nn.Sequential(EqualConv2d(c4 + extra, c4, 3, act=True), nn.Flatten(),
                                      EqualLinear(c4 * 16, c4, act=True))
            self.out = EqualLinear(c4, 1)
        else:
            self.head = nn.Sequential(nn.Conv2d(c4 + extra, c4, 3, 1, 1), lrelu, nn.Flatten(),
                                      nn.Linear(c4 * 16, c4), lrelu)
            self.out = nn.Linear(c4, 1)
        self.embed = nn.Embedding(num_classes, c4) if (num_classes and conditioning == "projection") else None
        self.classify = nn.Linear(c4, num_classes) if (num_classes and conditioning == "acgan") else None
        if spectral:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding, EqualConv2d, EqualLinear)):
                    spectral_norm(m)
                if isinstance(m, (EqualConv2d, EqualLinear)):
                    m.scale = 1.0  # SN already fixes the scale; equalization on top would shrink every layer

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after the input layer and each block (a learned perceptual space for
        projection)."""
        feats = [self.from_rgb(x)]
        for b in self.blocks:
            feats.append(b(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """-> (scores (B,), class logits (B, K) for AC-GAN else None)."""
        h = self.features(x)[-1]
        if self.mbstd is not None:
            h = self.mbstd(h)
        h = self.head(h)
        score = self.out(h).squeeze(1)
        if self.embed is not None and labels is not None:
            score = score + (self.embed(labels) * h).sum(1)
        logits = self.classify(h) if self.classify is not None else None
        return score, logits


def _levels(resolution: int) -> list[int]:
    """Feature-map sizes each downsampling block starts from: resolution, ..., 8."""
    out, r = [], resolution
    while r > 4:
        out.append(r)
        r //= 2
    return out

