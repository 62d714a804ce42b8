"""The noise-residual check (PRNU-style; Lukas, Fridrich & Goljan 2006; Chen et al. 2008).

A camera's sensor leaves a faint multiplicative pattern K in every picture it takes: I = I0 (1 + K) + noise.
The residual W = I - denoise(I) keeps it (with the noise). From images of one source the pattern is
estimated as K = sum(W_i I_i) / sum(I_i^2) (Chen et al.'s maximum-likelihood estimate); an image from
that source correlates with I*K, an image from elsewhere (another camera, a generator) does not.
The denoiser is a Gaussian filter (sigma 1 px): PyWavelets, which the usual wavelet denoiser needs,
is not a dependency. Images of other sizes are compared on their centred common crop (a pattern is
pixel-aligned: resized or cropped-off-centre images will not match)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from engine.detect.image import luminance
from engine.detect.result import CheckResult

SIGMA = 1.0             # the denoiser's Gaussian, in pixels
MATCH_Z = 6.0           # correlation z-score above which the source is called a match


def residual(gray: np.ndarray) -> np.ndarray:
    """W = I - denoise(I) of a float luminance image (8-bit levels)."""
    return gray - gaussian_filter(gray, SIGMA, mode="reflect")


def _centre_crop(a: np.ndarray, shape) -> np.ndarray:
    y, x = (a.shape[0] - shape[0]) // 2, (a.shape[1] - shape[1]) // 2
    return a[y:y + shape[0], x:x + shape[1]]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


@dataclass
class ReferencePattern:
    pattern: np.ndarray      # K, H x W
    count: int               # images it was estimated from
    source: str              # where they came from, for the sentence

    @classmethod
    def from_images(cls, images, source: str = "") -> "ReferencePattern":
        """K from uint8 H x W x 3 images of one source (cut to their centred common size)."""
        grays = [luminance(im) for im in images]
        if len(grays) < 2:
            raise ValueError(f"{source or 'reference'}: a noise pattern needs at least 2 images of the source, got {len(grays)}")
        shape = (min(g.shape[0] for g in grays), min(g.shape[1] for g in grays))
        num, den = np.zeros(shape), np.zeros(shape)
        for g in grays:
            g = _centre_crop(g, shape)
            num += residual(g) * g
            den += g * g
        return cls(num / np.maximum(den, 1e-6), len(grays), source)

    @classmethod
    def from_path(cls, path: str | Path) -> "ReferencePattern":
        """From a folder of images (unreadable files skipped) or a pattern saved with save()."""
        from engine.core.imageformats import is_image_path
        from engine.detect.image import load_rgb
        path = Path(path)
        if path.is_file() and path.suffix == ".safetensors":
            from safetensors.numpy import load_file
            t = load_file(str(path))
            return cls(t["pattern"], int(t["count"][0]), str(path))
        if not path.is_dir():
            raise ValueError(f"{path}: not a folder of reference images nor a saved noise pattern (.safetensors)")
        images = []
        for f in sorted(p for p in path.iterdir() if p.is_file() and is_image_path(p)):
            try:
                images.append(load_rgb(f))
            except ValueError:
                continue
        return cls.from_images(images, str(path))

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save

        from engine.core.util import atomic_write_bytes
        path = Path(path).with_suffix(".safetensors")
        atomic_write_bytes(path, save({"pattern": np.ascontiguousarray(self.pattern), "count": np.array([self.count])}))
        return path

    def match(self, image: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(correlation of the image's residual with I*K, its z-score ~ rho * sqrt(pixels), the residual)."""
        g = luminance(image)
        shape = (min(g.shape[0], self.pattern.shape[0]), min(g.shape[1], self.pattern.shape[1]))
        g, k = _centre_crop(g, shape), _centre_crop(self.pattern, shape)
        w = residual(g)
        rho = correlation(w, g * k)
        return rho, rho * float(np.sqrt(w.size)), w


def check(image: np.ndarray, context) -> CheckResult:
    ref = context.noise_pattern() if context is not None else None
    if ref is None:
        w = residual(luminance(image))
        rms = float(np.sqrt(np.mean(w ** 2)))
        return CheckResult("noise", float("nan"),
                           f"No reference pattern to compare with (--noise-reference FOLDER of one source's images); "
                           f"its noise residual alone has an RMS of {rms:.2f} levels.",
                           map=w, map_title="noise residual x - denoise(x)", details={"residual_rms": rms})
    rho, z, w = ref.match(image)
    if z >= MATCH_Z:
        sentence = (f"Its noise carries the pattern of {ref.source} (correlation {rho:.3f}, about {z:.0f} standard "
                    f"deviations above chance): same source.")
    else:
        sentence = (f"Its noise does not carry the pattern of {ref.source} (correlation {rho:.3f}, z about {z:.1f}): "
                    f"another source, a generator, or an edit that removed it.")
    return CheckResult("noise", rho, sentence, map=w, map_title="noise residual x - denoise(x)",
                       details={"z": z, "reference": ref.source, "reference_images": ref.count,
                                "residual_rms": float(np.sqrt(np.mean(w ** 2)))})
