"""The VAE's parts: a conv encoder q(z|x, y), a conv decoder, and the three pixel distributions the
decoder's output can parameterise, p(x|z, y) (Kingma & Welling 2014; the conditional form of Sohn
et al. 2015: the class goes into both networks as one-hot planes / a one-hot vector)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.metrics.bpd import discretized_gaussian_log_prob, discretized_logistic_log_prob

LOG_SCALE_MIN = -7.0   # PixelCNN++'s floor: a bin of 2/255 is still many scales wide
LOG_SCALE_MAX = 3.0    # wider than the [-1, 1] range: only a guard against overflow early in training


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


# ---- p(x|z): what the decoder's output means ------------------------------------------------------
class PixelDistribution:
    """The decoder's per-pixel distribution. `params_per_channel` output maps per image channel;
    log_prob(x, out) -> (B,) log p(x|z) in nats, summed over the sub-pixels; mean(out) -> the
    image the decoder predicts, (B, C, H, W) in [-1, 1]."""

    params_per_channel = 1

    def log_prob(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BinnedLocationScale(PixelDistribution):
    """A location-scale distribution per sub-pixel binned to the 256 levels: subclasses say how
    the decoder's output splits into (location, log scale) and which binned log-probability to use."""

    binned_log_prob = None  # (x, location, log_scale) -> elementwise log P(level)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def log_prob(self, x, out):
        loc, log_scale = self.split(out)
        return self.binned_log_prob(x, loc, log_scale).flatten(1).sum(1)

    def mean(self, out):
        return self.split(out)[0].clamp(-1, 1)


class DiscretizedGaussian(BinnedLocationScale):
    """A Gaussian per sub-pixel binned to the 256 levels (Ho et al. 2020's decoder): an exact
    discrete likelihood of 8-bit data. Its std is predicted per pixel (learned) or fixed."""

    binned_log_prob = staticmethod(discretized_gaussian_log_prob)

    def __init__(self, learned_std: bool, fixed_std: float = 0.1):
        self.learned_std = learned_std
        self.params_per_channel = 2 if learned_std else 1
        self.fixed_log_std = math.log(fixed_std)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.learned_std:
            mean, log_std = out.chunk(2, dim=1)
            return mean, log_std.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
        return out, torch.full_like(out, self.fixed_log_std)


class DiscretizedLogistic(BinnedLocationScale):
    """A logistic per sub-pixel binned to the 256 levels (PixelCNN++, Salimans et al. 2017), with a
    learned per-pixel scale: an exact discrete likelihood of 8-bit data."""

    params_per_channel = 2
    binned_log_prob = staticmethod(discretized_logistic_log_prob)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_scale = out.chunk(2, dim=1)
        return mean, log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)


class Bernoulli(PixelDistribution):
    """A Bernoulli per sub-pixel on intensities mapped to [0, 1] (the classic binarized-MNIST
    decoder). On grey 8-bit pixels it is a cross-entropy, not a distribution over the 256 levels:
    its 'likelihood', and so its bits/dim, is only a surrogate."""

    def log_prob(self, x, out):
        target = (x + 1) / 2
        return -F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(1)

    def mean(self, out):
        return torch.sigmoid(out) * 2 - 1


def pixel_distribution(kind: str, gaussian_variance: str = "learned", fixed_std: float = 0.1) -> PixelDistribution:
    """The [model] section's `decoder` choice as a PixelDistribution."""
    if kind == "gaussian":
        return DiscretizedGaussian(gaussian_variance == "learned", fixed_std)
    if kind == "logistic":
        return DiscretizedLogistic()
    if kind == "bernoulli":
        return Bernoulli()
    raise ValueError(f"unknown VAE decoder {kind!r}")
