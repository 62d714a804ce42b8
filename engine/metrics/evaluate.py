"""Evaluate generated images against real ones: pick the feature extractor (FID Inception when its
weights are on disk, else the domain network), cache the real statistics, score the fakes."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import load_file as np_load, save as np_save

from engine.metrics import domain, inception
from engine.metrics.stats import (feature_stats, frechet_distance, inception_score, kernel_inception_distance,
                                  precision_recall)
from engine.core.util import atomic_write_bytes
from engine.family.progress import StageProgress, check_cancel

METRICS = ("fid", "kid", "pr", "is")   # sample quality, from generated images
LIKELIHOOD_METRICS = ("bpd",)          # from the model's likelihood of real images


def parse_metrics(spec) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = [m.strip().lower() for m in items if m.strip()]
    bad = [m for m in out if m not in METRICS + LIKELIHOOD_METRICS]
    if bad:
        raise ValueError(f"unknown metric {bad[0]!r}; choose from: {', '.join(METRICS + LIKELIHOOD_METRICS)}")
    return out


def family_sampler(family, steps: int) -> Callable[[int, int], torch.Tensor]:
    """sample(count, seed) from a family's EMA weights with the run's sample options (an iterative
    sampler with `steps` steps), cycling through the classes of a conditional model, for
    Evaluator.score_sampler."""
    from engine.family.interfaces import IterativeSampler
    options = family.sample_options(steps=steps) if isinstance(family, IterativeSampler) else family.sample_options()

    def sample(n: int, seed: int) -> torch.Tensor:
        return family.sample(n, seed=seed, labels=family.labels_for(n, offset=seed), use_ema=True, options=options)
    return sample


@torch.no_grad()
def bits_per_dim_on(family, data, n: int, device, batch: int = 250) -> float:
    """Bits/dim of a Likelihood family on up to n images of `data` (ImageData), in batches: the
    mean over images. A fixed choice of images (seeded), so passes at different steps compare."""
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:min(n, len(data))]
    total = 0.0
    for i in range(0, len(idx), batch):
        sub = idx[i:i + batch]
        total += float(family.bits_per_dim(data.float_batch(sub).to(device), data.labels[sub].to(device))) * len(sub)
    return total / len(idx)


class Evaluator:
    """Scores fakes against a fixed real set. `real` is uint8 (N, C, H, W) with labels."""

    def __init__(self, real: torch.Tensor, labels: torch.Tensor, num_classes: int, *, metrics=METRICS,
                 inception_path: str | None = None, device: str | torch.device = "cpu", batch: int = 250,
                 domain_steps: int = 300, cache: Path | None = None, progress: StageProgress | None = None):
        self.metrics = [m for m in parse_metrics(metrics) if m in METRICS]
        self.device, self.batch = torch.device(device), batch
        self.progress = progress or (lambda stage, done, total: None)
        net, self.note = inception.load_inception(inception_path)
        if net is not None:
            self.extractor, self.suffix, self.kind = net.to(self.device), "", "inception"
            self.cache_dir = (cache or domain.cache_root()) / domain.data_key(real, labels, {"extractor": "inception"})
        else:
            self.extractor, self.cache_dir, trained = domain.load_or_train(
                real, labels, num_classes, steps=domain_steps, device=self.device, cache=cache,
                progress=lambda d, t: self.progress("training domain features", d, t))
            self.suffix, self.kind = "_domain", "domain"
            self.note += "" if not trained else " (domain features trained now and cached)"
        self.has_logits = self.kind == "inception" or getattr(self.extractor, "is_classifier", False)
        self.real = real
        self._ref: dict[str, np.ndarray] | None = None

    # ---- features -----------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, images: torch.Tensor, stage: str = "features") -> tuple[np.ndarray, np.ndarray | None]:
        """images: float in [-1, 1] (N, C, H, W)."""
        feats, logits = [], []
        for i in range(0, len(images), self.batch):
            f, l = self.extractor(images[i:i + self.batch].to(self.device).float())
            feats.append(f.double().cpu())
            if l is not None:
                logits.append(l.double().cpu())
            self.progress(stage, min(i + self.batch, len(images)), len(images))
        return torch.cat(feats).numpy(), (torch.cat(logits).numpy() if logits else None)

    def reference(self, n: int) -> dict[str, np.ndarray]:
        """Real features and statistics for up to n real images, cached beside the extractor."""
        n = min(n, len(self.real))
        path = self.cache_dir / f"reference_{self.kind}_{n}.safetensors"
        if self._ref is not None and len(self._ref["features"]) == n:
            return self._ref
        if path.is_file():
            self._ref = np_load(str(path))
            return self._ref
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(self.real), generator=g)[:n]
        feats, _ = self.features(self.real[idx].float().div(127.5).sub(1.0), "real features")
        mu, sigma = feature_stats(feats)
        self._ref = {"features": feats, "mu": mu, "sigma": sigma}
        atomic_write_bytes(path, np_save(self._ref))
        return self._ref

    # ---- scoring ------------------------------------------------------------------------------
    def score(self, fake: torch.Tensor, n_real: int | None = None) -> dict[str, float]:
        ref = self.reference(n_real or len(fake))
        feats, logits = self.features(fake, "generated features")
        s, out = self.suffix, {}
        if "fid" in self.metrics:
            mu, sigma = feature_stats(feats)
            out["fid" if s == "" else "fd" + s] = frechet_distance(mu, sigma, ref["mu"], ref["sigma"])
        if "kid" in self.metrics:
            # subsets of at most half the set, so their spread says something about the uncertainty
            m, sd = kernel_inception_distance(ref["features"], feats, subsets=50,
                                              subset_size=min(1000, max(2, len(feats) // 2)))
            out["kid" + s], out["kid" + s + "_std"] = m, sd
        if "pr" in self.metrics:
            out["precision" + s], out["recall" + s] = precision_recall(ref["features"], feats, k=3)
        if "is" in self.metrics and logits is not None:
            out["is" + s], out["is" + s + "_std"] = inception_score(logits)
        return out

    def score_sampler(self, sample: Callable[[int, int], torch.Tensor], n: int,
                      cancel: Callable[[], bool] | None = None) -> dict[str, float]:
        """sample(count, seed) -> images in [-1, 1]; drawn in batches with progress."""
        parts, done = [], 0
        while done < n:
            check_cancel(cancel)
            k = min(self.batch, n - done)
            parts.append(sample(k, 10_000 + done).cpu())
            done += k
            self.progress("sampling", done, n)
        return self.score(torch.cat(parts))
