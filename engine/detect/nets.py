"""The trained detectors' networks: small ResNet-style CNNs trained from scratch (no ImageNet
weights: nothing is downloaded). Global average pooling then one linear unit, so the class
activation map (Zhou et al. 2016: the last feature maps weighted by the linear unit's weights)
shows where the evidence for "generated" lies.

  npr   the input is the neighbouring-pixel residual x - up(down(x)), nearest 2x (Tan et al., CVPR 2024)
  cnn   the input is the image itself (Wang et al., "CNN-generated images are surprisingly easy to spot... for now", 2020)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("npr", "cnn")
NPR_GAIN = 4.0     # the residual of [-1, 1] images is small; scaled so the first layer sees unit-ish values


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x - up(down(x)) with nearest 2x resampling (sides cut to even)."""
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    return x - F.interpolate(x[..., ::2, ::2], scale_factor=2, mode="nearest")


def _norm(c: int) -> nn.GroupNorm:      # no batch statistics: the same in training and in use
    return nn.GroupNorm(min(4, c), c)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.skip = (nn.Identity() if stride == 1 and cin == cout
                     else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout)))

    def forward(self, x):
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.skip(x))


class DetectorNet(nn.Module):
    """3 x H x W in [-1, 1] -> one logit (positive: generated)."""

    def __init__(self, arch: str, width: int = 16):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"detector architecture {arch!r}: choose {' or '.join(ARCHS)}")
        self.arch, self.width = arch, width
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), _norm(w), nn.ReLU())
        self.blocks = nn.Sequential(ResidualBlock(w, w), ResidualBlock(w, 2 * w, 2), ResidualBlock(2 * w, 4 * w, 2))
        self.fc = nn.Linear(4 * w, 1)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return npr_residual(x) * NPR_GAIN if self.arch == "npr" else x

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(self.inputs(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.feature_maps(x).mean(dim=(2, 3)))[:, 0]

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (N x H x W, the input's size): each place's contribution to the logit."""
        f = self.feature_maps(x)
        m = torch.einsum("nchw,c->nhw", f, self.fc.weight[0])
        return F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
