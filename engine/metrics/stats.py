"""The metrics themselves, over feature matrices (N, D). Each is a finite number on any finite
features (a set of identical images, a set far from the other) or a one-line ValueError saying why
(too few images; NotFinite for features that are NaN or infinite), never NaN."""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import linalg

from engine.core.errors import NotFinite


def finite_features(feats, what: str = "features") -> np.ndarray:
    """feats as float64 (N, D), or NotFinite naming how many rows hold NaN or infinite values."""
    f = np.asarray(feats, np.float64)
    bad = int((~np.isfinite(f)).reshape(len(f), -1).any(1).sum()) if f.size else 0
    if bad:
        raise NotFinite(f"{bad} of {len(f)} images have {what} that are not finite numbers (NaN or infinite)")
    return f


def finite_score(name: str, value: float) -> float:
    """value, or NotFinite naming the measure (a NaN must never reach a table)."""
    value = float(value)
    if not math.isfinite(value):
        raise NotFinite(f"{name} came out as {value} on these images")
    return value


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = finite_features(feats)
    if len(f) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 images in each set (got {len(f)})")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), in float64. When the product is singular a
    small eps is added to both diagonals; a negligible imaginary part of the square root is
    dropped, a large one raises (as the reference implementation does)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    for name, value in (("mean", mu1), ("mean", mu2), ("covariance", s1), ("covariance", s2)):
        if not np.isfinite(value).all():
            raise NotFinite(f"Fréchet distance: a {name} of the features is not finite (NaN or infinite)")
    diff = mu1 - mu2
    # no disp=False (deprecated in SciPy 1.16, gone in 1.18): its error estimate was never used, and
    # the root itself is the same either way
    covmean = _sqrtm(s1.dot(s2))
    if covmean is None or not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset).dot(s2 + offset))
        if covmean is None:
            raise NotFinite("Fréchet distance: the square root of the product of the covariances cannot be "
                            "computed on these features")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: imaginary component {np.max(np.abs(covmean.imag)):.3g} is too large")
        covmean = covmean.real
    return finite_score("the Fréchet distance", diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _sqrtm(m: np.ndarray) -> np.ndarray | None:
    """scipy's matrix square root, or None where its algorithm fails (it raises on some
    singular products instead of returning non-finite values)."""
    try:
        return linalg.sqrtm(m)
    except (linalg.LinAlgError, ValueError):
        return None


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
    random subsets: (mean, std)."""
    real, fake = finite_features(real), finite_features(fake)
    d = real.shape[1]
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError("KID needs at least 2 images in each set")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        vals.append(mmd)
    return finite_score("KID", np.mean(vals)), finite_score("KID's spread", np.std(vals))


def _kth_nn_radii(x: torch.Tensor, k: int, batch: int = 1024) -> torch.Tensor:
    """Distance of each row of x to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), batch):
        d = torch.cdist(x[i:i + batch], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(out)


def _covered(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """For each query row: does it fall inside any ref row's k-NN ball?"""
    out = []
    for i in range(0, len(query), batch):
        d = torch.cdist(query[i:i + batch], ref)
        out.append((d <= radii[None]).any(dim=1))
    return torch.cat(out)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019: precision = share of fakes inside the real k-NN manifold,
    recall = share of reals inside the fake k-NN manifold."""
    r = torch.as_tensor(finite_features(real), dtype=torch.float64)
    f = torch.as_tensor(finite_features(fake), dtype=torch.float64)
    if len(r) <= k or len(f) <= k:
        raise ValueError(f"precision/recall needs more than k={k} images in each set")
    precision = _covered(f, r, _kth_nn_radii(r, k)).double().mean().item()
    recall = _covered(r, f, _kth_nn_radii(f, k)).double().mean().item()
    return precision, recall


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and std over splits."""
    p = torch.softmax(torch.as_tensor(finite_features(logits, "class logits"), dtype=torch.float64), dim=1).numpy()
    scores = []
    for part in np.array_split(p, min(splits, len(p))):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        scores.append(np.exp(kl))
    return finite_score("the Inception Score", np.mean(scores)), finite_score("the Inception Score's spread",
                                                                              np.std(scores))
