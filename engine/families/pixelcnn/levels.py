"""Drawing a sub-pixel's level from the network's output by the inverse CDF at a seeded uniform.

inverse_cdf_levels is the sampler's definition: P of all 256 levels from the output distribution,
their running sum, the first level whose sum reaches u (of the total). For the logistic mixture it
costs some twenty passes over (images, components, 256) with softplus and log, more than the
cached network itself. quick_mixture_levels gets the same level from the mixture's CDF at the 255
bin edges (one sigmoid per component and edge) and hands a row to inverse_cdf_levels whenever u
lies within UNSURE_MARGIN of an edge, where the two CDFs could order u differently. They differ
by float rounding (~1e-6) and by the far-tail bins that the definition takes from the density
(those under 1e-5 per component, off by at most their own mass, a geometric tail: 5.6e-5 at worst
in all, measured over 600,000 random mixtures with log scales from the floor to 3, means beyond
the edge levels and temperatures 0.05-2), so with the margin at 2e-4 both give the same level,
not just nearly always."""
from __future__ import annotations

import math

import torch

from engine.families.pixelcnn.layers import LEVELS, LogisticMixtureOutput
from engine.nn.likelihood import HALF_BIN, LOCATION_MAX

UNSURE_MARGIN = 2e-4   # ~3.5x the largest gap between the two CDFs (see above); edges lie ~4e-3 apart


def inverse_cdf_levels(dist, out: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """The level (k,) long on the CPU whose running probability first reaches u (k,) float64, for
    outputs out (k, params): the definition every sampler must match."""
    probs = dist.level_log_probs(out, temperature).exp().double().cpu()   # k, 256
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1)).clamp(max=LEVELS - 1).squeeze(1)


def quick_mixture_levels(dist: LogisticMixtureOutput, out: torch.Tensor, u: torch.Tensor, temperature: float,
                         margin: float = UNSURE_MARGIN) -> torch.Tensor:
    """inverse_cdf_levels for a logistic mixture from its CDF at the bin edges; rows with u within
    `margin` of an edge are drawn by inverse_cdf_levels itself."""
    log_w, means, log_scales = dist.split(out, dim=-1)                            # each k, K
    edges = torch.arange(LEVELS - 1, device=out.device, dtype=out.dtype) / 127.5 - 1 + HALF_BIN   # 255
    inv_s = torch.exp(-(log_scales + math.log(temperature))).unsqueeze(-1)
    mean = means.clamp(-LOCATION_MAX, LOCATION_MAX).unsqueeze(-1)
    cdf = (log_w.exp().unsqueeze(-1) * torch.sigmoid(inv_s * (edges - mean))).sum(-2).double().cpu()   # k, 255
    level = (cdf < u.unsqueeze(1)).sum(-1)
    unsure = ((cdf - u.unsqueeze(1)).abs().amin(-1) <= margin) | ~torch.isfinite(cdf).all(-1)
    if unsure.any():
        rows = unsure.nonzero().squeeze(1)
        level[rows] = inverse_cdf_levels(dist, out[rows.to(out.device)], u[rows], temperature)
    return level


def draw_levels(dist, out: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """inverse_cdf_levels, by the quick route where the distribution has one."""
    if isinstance(dist, LogisticMixtureOutput):
        return quick_mixture_levels(dist, out, u, temperature)
    return inverse_cdf_levels(dist, out, u, temperature)
