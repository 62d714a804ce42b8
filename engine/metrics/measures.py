"""The functions of the built-in measures (engine/core/metrics.py registers them by reference).

A sample measure takes the Samples of one scoring (the generated images, their features and class
logits, the real reference) and returns its values by key; a measure on real images (likelihood,
codebook) takes (family, data, n, device). The arguments of the statistics are the ones the reference
implementations use, so the numbers match them (tests/engine/test_metrics.py)."""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
import torch

from engine.core.errors import NotFinite
from engine.metrics import stats


@dataclass
class Samples:
    """What a sample measure scores."""
    images: torch.Tensor            # generated, float in [-1, 1], (N, C, H, W)
    features: np.ndarray            # their features (float64), (N, D)
    logits: np.ndarray | None       # their class logits when the extractor is a classifier
    reference: dict[str, np.ndarray]  # the real images' "features", "mu", "sigma"


def frechet_distance(s: Samples) -> dict[str, float]:
    mu, sigma = stats.feature_stats(s.features)
    return {"fid": stats.frechet_distance(mu, sigma, s.reference["mu"], s.reference["sigma"])}


def kernel_inception_distance(s: Samples) -> dict[str, float]:
    # subsets of at most half the set, so their spread says something about the uncertainty
    m, sd = stats.kernel_inception_distance(s.reference["features"], s.features, subsets=50,
                                            subset_size=min(1000, max(2, len(s.features) // 2)))
    return {"kid": m, "kid_std": sd}


def precision_recall(s: Samples) -> dict[str, float]:
    p, r = stats.precision_recall(s.reference["features"], s.features, k=3)
    return {"precision": p, "recall": r}


def inception_score(s: Samples) -> dict[str, float]:
    if s.logits is None:   # an extractor without class logits has no IS
        return {}
    m, sd = stats.inception_score(s.logits)
    return {"is": m, "is_std": sd}


def chosen_images(data, n: int) -> torch.Tensor:
    """The indices of up to n images of `data`: a fixed (seeded) choice, so passes at different
    steps score the same images."""
    return torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:min(n, len(data))]


@torch.no_grad()
def bits_per_dim_on(family, data, n: int, device, batch: int = 250) -> float:
    """Bits/dim of a Likelihood family on up to n images of `data` (ImageData), in batches: the
    mean over images (chosen_images).
    Every family's bits_per_dim is finite on any 8-bit image (tests/engine/test_finite_scores.py);
    should one ever not be, it is refused here in one line, never averaged into a NaN."""
    idx = chosen_images(data, n)
    total = 0.0
    for i in range(0, len(idx), batch):
        sub = idx[i:i + batch]
        value = float(family.bits_per_dim(data.float_batch(sub).to(device), data.labels[sub].to(device)))
        if not math.isfinite(value):
            raise NotFinite(f"bits/dim of this {family.name} model came out as {value} on {data.name} "
                            f"(engine/families/{family.name}/model.py: its bits_per_dim is not finite on these images)")
        total += value * len(sub)
    return total / len(idx)


def bits_per_dim(family, data, n: int, device) -> dict[str, float]:
    return {"bits_per_dim": bits_per_dim_on(family, data, n, device)}


def codebook_stats(counts: torch.Tensor) -> tuple[float, float]:
    """A code histogram (num_codes,) -> (the fraction of codes used at least once, the perplexity
    exp(H) of the histogram, H its entropy in nats): num_codes and num_codes for a uniform use of
    every code, 1/num_codes and 1 for a single code."""
    counts = counts.double()
    p = counts[counts > 0] / counts.sum()
    return float((counts > 0).double().mean()), float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def code_histogram(family, data, n: int, device, batch: int = 250) -> torch.Tensor:
    """How often each code of a Tokenizer family stands for a position of up to n images of `data`
    (chosen_images), every scale's positions counted for a multi-scale tokenizer."""
    counts = torch.zeros(int(family.num_codes), dtype=torch.long)
    idx = chosen_images(data, n)
    for i in range(0, len(idx), batch):
        codes = family.image_codes(data.float_batch(idx[i:i + batch]).to(device)).flatten().cpu()
        counts += torch.bincount(codes, minlength=len(counts))
    return counts


def codebook_usage(family, data, n: int, device) -> dict[str, float]:
    usage, ppl = codebook_stats(code_histogram(family, data, n, device))
    return {"codebook_usage": usage, "codebook_perplexity": ppl}
