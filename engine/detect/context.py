"""What the checks share while they look at a batch of images: the reference choices and what is
built from them once (the real photos' spectrum profiles, a trained detector, a noise pattern, the
GenLab checkpoints the model-based checks look through)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.core.detect_checks import DIRE_STEPS

REAL_COUNT = 96              # real images the spectrum reference averages
REAL_SIZES = (16, 256)       # the reference is built at the power of two at or under the image's side, within these
PROFILE_VERSION = 3          # bump when the profile's definition changes: the disk cache is keyed on it


def cache_dir() -> Path:
    base = os.environ.get("GENLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "genlab")
    return Path(base) / "detect"


def reference_size(side: int) -> int:
    """The size the real reference is built at for an image whose shorter side is `side`: profiles are
    over cycles/pixel, so any size compares; a few sizes keep the cache small."""
    size = 1 << max(int(side), 1).bit_length() - 1
    return int(min(max(size, REAL_SIZES[0]), REAL_SIZES[1]))


@dataclass
class DetectContext:
    real_data: str = "textures"               # built-in dataset of real photos the spectrum compares against
    spectrum_detector: str | Path | None = None   # a trained spectrum detector (spectrum-lr)
    noise_reference: str | Path | None = None     # a folder of one source's images, or a saved pattern
    detector: str | Path | None = None            # a trained NPR or CNN detector (npr-cnn, cnn checks)
    likelihood_model: str | Path | None = None    # a pixel-likelihood checkpoint trained on real images (zeroshot)
    autoencoder: str | Path | None = None         # an autoencoder checkpoint: VAE, tokenizer (aeroblade)
    diffusion_model: str | Path | None = None     # a diffusion checkpoint (dire check)
    dire_steps: int = DIRE_STEPS                  # DDIM steps each way for DIRE
    _cache: dict = field(default_factory=dict, repr=False)

    def real_profiles(self, side: int) -> np.ndarray:
        """FFT profiles (n, BINS) of the real dataset's images for an image whose shorter side is
        `side` (built once per size, then read from the cache folder)."""
        size = reference_size(side)
        key = ("real", self.real_data, size)
        if key not in self._cache:
            self._cache[key] = _cached_real_profiles(self.real_data, size)
        return self._cache[key]

    def spectrum_detector_model(self):
        if self.spectrum_detector is None:
            return None
        if "detector" not in self._cache:
            from engine.detect.spectrum_detector import SpectrumDetector
            self._cache["detector"] = SpectrumDetector.load(self.spectrum_detector)
        return self._cache["detector"]

    def trained_detector(self):
        """The trained NPR or CNN detector (engine/detect/trained.py), or None without one."""
        if self.detector is None:
            return None
        if "trained" not in self._cache:
            from engine.detect.trained import TrainedDetector
            self._cache["trained"] = TrainedDetector.load(self.detector)
        return self._cache["trained"]

    def diffusion_family(self):
        """The diffusion checkpoint's model, loaded once (None without one); a checkpoint that cannot
        be inverted (not a diffusion model) is a ValueError naming it."""
        if self.diffusion_model is None:
            return None
        if "diffusion" not in self._cache:
            from engine.diffusion.inversion import require_invertible
            from engine.training.checkpoint import family_from_checkpoint
            fam, _ = family_from_checkpoint(self.diffusion_model, "auto")
            require_invertible(fam, str(self.diffusion_model))
            self._cache["diffusion"] = fam
        return self._cache["diffusion"]

    def noise_pattern(self):
        """The noise reference pattern (engine/detect/noise_residual.py), or None without a reference."""
        if self.noise_reference is None:
            return None
        if "noise" not in self._cache:
            from engine.detect.noise_residual import ReferencePattern
            self._cache["noise"] = ReferencePattern.from_path(self.noise_reference)
        return self._cache["noise"]

    def likelihood_family(self):
        """The likelihood model's family, loaded once (engine/detect/models.py), or None without one."""
        if self.likelihood_model is None:
            return None
        if "likelihood" not in self._cache:
            from engine.detect.models import load_family
            from engine.family.interfaces import PixelPredictor
            self._cache["likelihood"] = load_family(self.likelihood_model, PixelPredictor,
                                                    "per-pixel level distributions", "zeroshot")
        return self._cache["likelihood"]

    def autoencoder_family(self):
        """The autoencoder's family, loaded once (engine/detect/models.py), or None without one."""
        if self.autoencoder is None:
            return None
        if "autoencoder" not in self._cache:
            from engine.detect.models import load_family
            from engine.family.interfaces import Reconstructor
            self._cache["autoencoder"] = load_family(self.autoencoder, Reconstructor, "reconstruction",
                                                     "aeroblade")
        return self._cache["autoencoder"]


def _cached_real_profiles(dataset: str, size: int) -> np.ndarray:
    from safetensors.numpy import load_file, save
    path = cache_dir() / f"spectrum_{dataset}_{size}px_{REAL_COUNT}_v{PROFILE_VERSION}.safetensors"
    try:
        return load_file(str(path))["profiles"]
    except Exception:   # missing or unreadable: build it again
        pass
    from engine.core.config import DataConfig
    from engine.core.util import atomic_write_bytes
    from engine.data import build_dataset
    from engine.detect.image import luminance
    from engine.detect.spectrum import fft_profile
    data = build_dataset(DataConfig(dataset=dataset, resolution=size, count=REAL_COUNT, color="rgb"))
    imgs = data.images[:REAL_COUNT].permute(0, 2, 3, 1).numpy()
    profiles = np.stack([fft_profile(luminance(im)) for im in imgs])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, save({"profiles": np.ascontiguousarray(profiles)}))
    except OSError:     # a read-only cache costs time, not the result
        pass
    return profiles
