"""Bits per dimension, computed one way for every likelihood family.

Images are 8-bit: level k in 0..255 is the value x = k / 127.5 - 1 in [-1, 1], so one level is a
bin of width 2/255 around x. A discrete model (PixelCNN's softmax, a discretized logistic or
Gaussian decoder) gives P(k) directly: bits/dim = -log2 P(k) / D. A continuous density p(y) over
the [-1, 1] scale (a flow) is trained on dequantized data y = x + U(-1/255, 1/255); then
-log2 P(k) <= -log2 p(y) + D log2(127.5) in expectation (Theis et al. 2016; Ho et al. 2019), which
is what `bpd_continuous` reports. "Dimension" is a sub-pixel (C*H*W per image), as in the papers.

Also the per-pixel distributions a decoder's output can parameterise (binned Gaussian and
logistic, Bernoulli), shared by the VAE and the hierarchical VAE."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)
HALF_BIN = 1.0 / 255.0             # half the width of one 8-bit level on the [-1, 1] scale
LOG_LEVEL_SCALE = math.log(127.5)  # log of levels per unit of the [-1, 1] scale
LOG_SCALE_MIN = -7.0   # PixelCNN++'s floor: a bin of 2/255 is still many scales wide
LOG_SCALE_MAX = 3.0    # wider than the [-1, 1] range: only a guard against overflow early in training
# a location this far outside [-1, 1] already gives the edge level all of its mass: clamping there
# changes no probability that float32 can tell apart, and keeps a Gaussian tail's squared distance
# finite whatever a decoder predicts for an image unlike its training data (a mean of 1e20 would
# give -inf; 1e4 at the smallest scale gives about -6e13 nats, summed over any image still finite)
LOCATION_MAX = 1e4


def dims(x: torch.Tensor) -> int:
    """Sub-pixels per image of a batch (N, C, H, W)."""
    return int(x[0].numel())


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform noise over each level's bin: x + U(-1/255, 1/255)."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + (2 * noise - 1) * HALF_BIN


def bpd_continuous(nll_nats: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Bits/dim from a density's negative log-likelihood (nats per image, on the [-1, 1] scale of
    dequantized data): an upper bound on the discrete bits/dim."""
    return (nll_nats / num_dims + LOG_LEVEL_SCALE) / LN2


def bpd_discrete(nll_nats: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Bits/dim from -log P(levels) (nats per image)."""
    return nll_nats / (num_dims * LN2)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] values -> 8-bit levels 0..255 (long)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().long()


def _bin_log_prob(cdf_log_upper: torch.Tensor, cdf_log_lower_complement: torch.Tensor,
                  log_mass_mid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log P(level): the lowest level takes all mass below its upper edge, the highest all mass
    above its lower edge (so the 256 probabilities sum to 1)."""
    return torch.where(x < -1 + HALF_BIN, cdf_log_upper,
                       torch.where(x > 1 - HALF_BIN, cdf_log_lower_complement, log_mass_mid))


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x's 8-bit level) under a logistic(mean, exp(log_scale)) binned to the 256 levels
    (PixelCNN++, Salimans et al. 2017), elementwise. x: [-1, 1] values on the level grid."""
    mean = mean.clamp(-LOCATION_MAX, LOCATION_MAX)
    inv_s = torch.exp(-log_scale)
    plus, minus = inv_s * (x - mean + HALF_BIN), inv_s * (x - mean - HALF_BIN)
    log_cdf_plus = plus - F.softplus(plus)                 # log sigmoid(plus)
    log_one_minus_cdf_minus = -F.softplus(minus)           # log (1 - sigmoid(minus))
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * (x - mean)
    # in the far tails cdf_delta underflows: use the density at the centre times the bin width
    log_pdf_mid = mid - log_scale - 2 * F.softplus(mid)
    log_mass = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                           log_pdf_mid + math.log(2 * HALF_BIN))
    return _bin_log_prob(log_cdf_plus, log_one_minus_cdf_minus, log_mass, x)


def discretized_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log P(x's 8-bit level) under a Normal(mean, exp(log_std)) binned to the 256 levels
    (Ho et al. 2020's decoder), elementwise."""
    mean = mean.clamp(-LOCATION_MAX, LOCATION_MAX)
    inv = torch.exp(-log_std)
    upper, lower = inv * (x - mean + HALF_BIN), inv * (x - mean - HALF_BIN)
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    delta = torch.special.ndtr(upper) - torch.special.ndtr(lower)
    mid = inv * (x - mean)
    log_pdf_mid = -0.5 * mid ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_mass = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid + math.log(2 * HALF_BIN))
    return _bin_log_prob(log_cdf_upper, log_sf_lower, log_mass, x)


def log_mean_exp(w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log of the mean of exp(w) along dim, stably (an importance-weighted bound's average)."""
    return torch.logsumexp(w, dim) - math.log(w.shape[dim])


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
    """A decoder's pixel distribution by name (engine/nn/pixel_choices.py: a [model] section's
    `decoder` and `gaussian_variance` choices)."""
    if kind == "gaussian":
        return DiscretizedGaussian(gaussian_variance == "learned", fixed_std)
    if kind == "logistic":
        return DiscretizedLogistic()
    if kind == "bernoulli":
        return Bernoulli()
    raise ValueError(f"unknown pixel distribution {kind!r}")
