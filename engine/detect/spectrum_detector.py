"""A logistic-regression detector on spectrum profiles (the FFT profile and the log-DCT profile of
engine/detect/spectrum.py), trained from real against generated images. Saved as coefficients,
never pickles: DET.safetensors (the standardisation, the weights, the class-mean profiles) and
DET.json (what it was trained on), both written atomically."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.detect.spectrum import BINS, features

KIND = "genlab-spectrum-detector"
VERSION = 1


@dataclass
class SpectrumDetector:
    mean: np.ndarray          # feature standardisation
    scale: np.ndarray
    coef: np.ndarray          # logistic weights on the standardised features
    intercept: float
    real_mean: np.ndarray     # class-mean features, for the canvas's plot
    fake_mean: np.ndarray
    bins: int = BINS
    meta: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, real_images, fake_images, bins: int = BINS, C: float = 1.0) -> "SpectrumDetector":
        """Train on two lists of uint8 H x W x 3 images (label 1: generated). Real and generated
        images should have passed through the same pipeline (size, format, JPEG settings): a
        detector otherwise learns the pipeline, not the generator."""
        from sklearn.linear_model import LogisticRegression
        if len(real_images) < 2 or len(fake_images) < 2:
            raise ValueError(f"a spectrum detector needs at least 2 real and 2 generated images, got "
                             f"{len(real_images)} and {len(fake_images)}")
        xr = np.stack([features(im, bins) for im in real_images])
        xf = np.stack([features(im, bins) for im in fake_images])
        x = np.concatenate([xr, xf])
        y = np.r_[np.zeros(len(xr)), np.ones(len(xf))]
        mean, scale = x.mean(0), x.std(0) + 1e-8
        lr = LogisticRegression(C=C, max_iter=2000).fit((x - mean) / scale, y)
        acc = float(lr.score((x - mean) / scale, y))
        return cls(mean, scale, lr.coef_[0].astype(np.float64), float(lr.intercept_[0]), xr.mean(0), xf.mean(0), bins,
                   {"real_count": len(xr), "fake_count": len(xf), "train_accuracy": acc, "C": C})

    def decision(self, feats: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(feats) - self.mean) / self.scale) @ self.coef + self.intercept

    def probabilities(self, images) -> np.ndarray:
        """P(generated) for each uint8 H x W x 3 image."""
        return 1.0 / (1.0 + np.exp(-self.decision(np.stack([features(im, self.bins) for im in images]))))

    def probability(self, image: np.ndarray) -> float:
        return float(self.probabilities([image])[0])

    def save(self, path: str | Path) -> Path:
        """Writes path.safetensors and path.json (a given suffix is replaced); returns the .safetensors."""
        from safetensors.numpy import save as st_save

        from engine.core.util import atomic_write_bytes, atomic_write_json
        base = Path(path).with_suffix("")
        tensors = {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": np.array([self.intercept]),
                   "real_mean": self.real_mean, "fake_mean": self.fake_mean}
        weights = base.with_suffix(".safetensors")
        atomic_write_bytes(weights, st_save({k: np.ascontiguousarray(v, np.float64) for k, v in tensors.items()}))
        atomic_write_json(base.with_suffix(".json"), {"kind": KIND, "version": VERSION, "bins": self.bins,
                                                      "features": "fft_profile + dct_profile", **self.meta})
        return weights

    @classmethod
    def load(cls, path: str | Path) -> "SpectrumDetector":
        """From DET, DET.json or DET.safetensors. Raises ValueError naming the file and the problem."""
        from safetensors.numpy import load_file
        base = Path(path).with_suffix("") if Path(path).suffix in (".json", ".safetensors") else Path(path)
        meta_path, weights = base.with_suffix(".json"), base.with_suffix(".safetensors")
        try:
            meta = json.loads(meta_path.read_text())
            t = load_file(str(weights))
        except FileNotFoundError as e:
            raise ValueError(f"{e.filename}: no such spectrum detector file") from None
        except Exception as e:   # bad JSON, a damaged safetensors file (its own error type)
            raise ValueError(f"{base}: not a readable spectrum detector ({e})") from None
        if not isinstance(meta, dict) or meta.get("kind") != KIND:
            raise ValueError(f"{meta_path}: not a GenLab spectrum detector (kind {meta.get('kind') if isinstance(meta, dict) else None!r})")
        bins = int(meta["bins"])
        rest = {k: v for k, v in meta.items() if k not in ("kind", "version", "bins", "features")}
        return cls(t["mean"], t["scale"], t["coef"], float(t["intercept"][0]), t["real_mean"], t["fake_mean"], bins, rest)
