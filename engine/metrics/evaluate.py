"""Evaluate generated images against real ones: pick the feature extractor (FID Inception when its
weights are on disk, else the domain network), cache the real statistics, score the fakes with the
measures asked for (engine/core/metrics.py lists them; engine/metrics/measures.py computes them).
A training run's passes (engine/training/evaluation.py) and the evaluate op build on these."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import load_file as np_load, save as np_save

from engine.core import metrics as registry
from engine.core.metrics import SAMPLING, MeasureSpec, parse_metrics
from engine.core.registry import load_object
from engine.core.util import atomic_write_bytes
from engine.family.progress import StageProgress, check_cancel
from engine.metrics import domain, inception
from engine.metrics.measures import Samples
from engine.core.errors import NotFinite
from engine.metrics.stats import feature_stats, finite_score


def sample_measures(names=None) -> list[MeasureSpec]:
    """The measures scored on generated images among `names` (all of them when None), each once."""
    keys = registry.measure_names() if names is None else list(dict.fromkeys(parse_metrics(names)))
    return [m for m in map(registry.MEASURES.get, keys) if m.needs == SAMPLING]


def family_sampler(family, steps: int) -> Callable[[int, int], torch.Tensor]:
    """sample(count, seed) from a family's EMA weights with the run's sample options (an iterative
    sampler with `steps` steps), cycling through the classes of a conditional model, for
    Evaluator.score_sampler."""
    from engine.family.interfaces import IterativeSampler
    options = family.sample_options(steps=steps) if isinstance(family, IterativeSampler) else family.sample_options()

    def sample(n: int, seed: int) -> torch.Tensor:
        return family.sample(n, seed=seed, labels=family.labels_for(n, offset=seed), use_ema=True, options=options)
    return sample


class Evaluator:
    """Scores fakes against a fixed real set. `real` is uint8 (N, C, H, W) with labels."""

    def __init__(self, real: torch.Tensor, labels: torch.Tensor, num_classes: int, *, metrics=None,
                 inception_path: str | None = None, device: str | torch.device = "cpu", batch: int = 250,
                 domain_steps: int = 300, cache: Path | None = None, progress: StageProgress | None = None):
        self.measures = sample_measures(metrics)   # None: every sample measure
        self.device, self.batch = torch.device(device), batch
        self.progress = progress or (lambda stage, done, total: None)
        net, self.note = inception.load_inception(inception_path)
        if net is not None:
            self.extractor, self.kind = net.to(self.device), "inception"
            self.cache_dir = (cache or domain.cache_root()) / domain.data_key(real, labels, {"extractor": "inception"})
        else:
            self.extractor, self.cache_dir, trained = domain.load_or_train(
                real, labels, num_classes, steps=domain_steps, device=self.device, cache=cache,
                progress=lambda d, t: self.progress("training domain features", d, t))
            self.kind = "domain"
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
    @property
    def domain(self) -> bool:
        """Whether the scores are on GenLab's domain features (their names say so: fd_domain, ...)."""
        return self.kind == "domain"

    def score(self, fake: torch.Tensor, n_real: int | None = None) -> dict[str, float]:
        """The measures of `fake` (float in [-1, 1]): finite numbers, or NotFinite in one line
        (generated images with NaN or infinite pixels: a diverged model's)."""
        bad = int((~torch.isfinite(fake)).flatten(1).any(1).sum()) if len(fake) else 0
        if bad:
            raise NotFinite(f"{bad} of the {len(fake)} generated images hold NaN or infinite pixel values "
                            f"(the model's output is not finite): they cannot be scored")
        ref = self.reference(n_real or len(fake))
        feats, logits = self.features(fake, "generated features")
        samples, out = Samples(fake, feats, logits, ref), {}
        for m in self.measures:
            values = m.named(load_object(m.function)(samples), self.domain)
            out.update({k: finite_score(k, v) for k, v in values.items()})
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


def heldout_pass(family, measures: list[MeasureSpec], on, split: str, n: int, device) -> tuple[dict, dict]:
    """The measures on real images (bits/dim, codebook) on up to n images of `on` (ImageData), for a
    family that offers what each needs: (values by logged name, the row's note of which images,
    under each measure's extras: bpd_split and bpd_images, ...)."""
    scores: dict = {}
    extra: dict = {}
    for m in measures:
        scores.update(m.named(load_object(m.function)(family, on, n, device), False))
        split_key, images_key = m.extras
        extra.update({images_key: min(n, len(on)), split_key: split})
    return scores, extra
