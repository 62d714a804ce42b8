"""Tree-Ring watermark (Wen et al., NeurIPS 2023) for GenLab's own diffusion samples.

A key draws a pattern of concentric rings (one value per ring) that replaces the centred 2D Fourier
coefficients of one channel of x_T inside a disc of radius r; the marked x_T is sampled with
deterministic DDIM. To verify, the image is inverted by DDIM (engine/diffusion/inversion.py) and the
recovered x_T's coefficients in the disc are compared with the key's.

The test is the paper's: in an unmarked x_T (standard normal) the Fourier coefficients are Gaussian,
so the squared distance to the key, normalised by their standard deviation, follows a non-central
chi-square (non-centrality: the key's own normalised energy); the p-value is its CDF at the
distance measured (scipy.stats.ncx2): the chance that an unmarked image comes as close. Two
differences from the reference code (YuxinWenRick/tree-ring-watermark, optim_utils.py), both so
that the test is exact: the ring values are real and the disc is centred on the zero frequency, so
the pattern is Hermitian-symmetric and survives taking the real part of the inverse FFT unchanged;
the centre of the disc (the zero frequency, x_T's mean) is left unmarked, because on small images
the image's overall brightness leaks into it through the inversion (and a brightness change would
move it);
and the mirrored half of the disc (the complex conjugates of the other half) is left out of the
sum, so the degrees of freedom count independent values only. The deviation is estimated from the
disc's own values, as the paper does: an inversion through a briefly trained model shrinks or
inflates them, and a deviation taken from the prior (N/sqrt(2) per real part on an N x N grid)
would then call unmarked images marked; estimated, the test is approximate but free of that scale.

Small latents: the paper marks a disc of radius 10 on Stable Diffusion's 64 x 64 latent (1/6 of
the side); GenLab's digits are 16-32 px, whose x_T is that size, so the default radius is a quarter
of the side (4 at 16 px: 48 coefficients, 48 independent real values) - below that the test has too
few values to reach p < 0.01 through an imperfect inversion; it must stay under half the side."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from pathlib import Path

import numpy as np
import torch

MARKED_P = 0.01          # a p-value below this: the key's rings are in the image's x_T


def default_radius(side: int) -> int:
    return max(1, side // 4)


def key_seed(key) -> int:
    """A 64-bit seed of any key (an integer or text: "42" and 42 are the same key)."""
    return int.from_bytes(hashlib.sha256(f"treering:{key}".encode("utf-8")).digest()[:8], "little")


def _distances(n: int) -> np.ndarray:
    """Distance (n, n) of each fftshift-ed frequency from the zero frequency at (n//2, n//2)."""
    c = n // 2
    y, x = np.mgrid[:n, :n]
    return np.hypot(y - c, x - c)


@dataclass(frozen=True)
class TreeRing:
    """The key's pattern for x_T of shape (channels, side, side), in one channel."""
    key: str
    channels: int
    side: int
    radius: int
    channel: int

    @classmethod
    def make(cls, key, shape, radius: int | None = None, channel: int | None = None) -> "TreeRing":
        """For a latent of shape (C, H, W); radius None: default_radius; channel None: the last
        (the paper's channel 3 of Stable Diffusion's 4)."""
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"Tree-Ring needs a square image-shaped x_T (C, N, N); this model's is "
                             f"{tuple(shape)}")
        c, n = int(shape[0]), int(shape[1])
        r = default_radius(n) if radius is None else int(radius)
        if not 1 <= r < n / 2:
            raise ValueError(f"Tree-Ring radius {r} must be at least 1 and under half the latent's side ({n})")
        ch = c - 1 if channel is None else int(channel)
        if not 0 <= ch < c:
            raise ValueError(f"Tree-Ring channel {ch} is not one of the latent's {c} channels (0-{c - 1})")
        return cls(str(key), c, n, r, ch)

    @property
    def mask(self) -> np.ndarray:
        """bool (side, side): the disc of the fftshift-ed spectrum that carries the rings, without
        its centre (the zero frequency: x_T's mean, which the image's brightness leaks into)."""
        d = _distances(self.side)
        return (d > 0) & (d <= self.radius)

    @property
    def half(self) -> np.ndarray:
        """bool (side, side): the independent half of the disc (each frequency whose conjugate is not
        in it): the disc is `half` and its mirror image, whose values are their complex conjugates."""
        n, c = self.side, self.side // 2
        y, x = np.mgrid[:n, :n]
        return self.mask & ((y > c) | ((y == c) & (x > c)))

    @property
    def pattern(self) -> np.ndarray:
        """float64 (side, side): ring k (distance in (k-1, k]) holds the key's k-th value, drawn
        N(0, side²) (the variance of a white-noise coefficient); 0 outside."""
        values = np.random.default_rng(key_seed(self.key)).standard_normal(self.radius) * self.side
        ring = np.clip(np.ceil(_distances(self.side)).astype(int), 1, None)
        return np.where(self.mask, values[np.minimum(ring, self.radius) - 1], 0.0)

    def _spectrum(self, x_T: torch.Tensor) -> torch.Tensor:
        return torch.fft.fftshift(torch.fft.fft2(x_T[:, self.channel].double()), dim=(-2, -1))

    def inject(self, x_T: torch.Tensor) -> torch.Tensor:
        """x_T (B, C, N, N) with the key's rings written into its channel's spectrum."""
        self._check(x_T)
        spec = self._spectrum(x_T)
        mask = torch.from_numpy(self.mask)
        spec[:, mask] = torch.from_numpy(self.pattern[self.mask]).to(spec.dtype)
        marked = torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1)))
        out = x_T.clone()
        out[:, self.channel] = marked.real.to(x_T.dtype)   # the imaginary part is rounding: the pattern is Hermitian
        return out

    def test(self, x_T: torch.Tensor) -> list["RingTest"]:
        """For each x_T (B, C, N, N) recovered by inversion: the distance of its disc to the key and
        the p-value of so small a distance in an unmarked x_T."""
        from scipy.stats import ncx2
        self._check(x_T)
        spec = self._spectrum(x_T).cpu().numpy()
        key = self.pattern
        n = self.side
        half = self.half
        df = 2 * int(half.sum())
        out = []
        for s in spec:
            # the disc's independent values: the real and imaginary parts of its half
            y = np.concatenate([s.real[half], s.imag[half]])
            k = np.concatenate([key[half], np.zeros(half.sum())])
            sigma = max(float(np.sqrt(np.mean(y ** 2))), 1e-12)   # the paper's: estimated from the values themselves
            chi2 = float((((y - k) / sigma) ** 2).sum())
            nc = float(((k / sigma) ** 2).sum())
            distance = float(np.abs(s[self.mask] - key[self.mask]).mean() / n)
            out.append(RingTest(distance, float(ncx2.cdf(chi2, df, nc)), chi2, df, sigma / (n / math.sqrt(2))))
        return out

    def _check(self, x_T: torch.Tensor) -> None:
        if tuple(x_T.shape[1:]) != (self.channels, self.side, self.side):
            raise ValueError(f"x_T of shape {tuple(x_T.shape[1:])} does not fit a Tree-Ring key for "
                             f"{(self.channels, self.side, self.side)}")

    def describe(self) -> dict:
        return {"key": self.key, "radius": self.radius, "channel": self.channel, "latent": [self.channels, self.side,
                                                                                           self.side],
                "coefficients": int(self.mask.sum())}


@dataclass(frozen=True)
class RingTest:
    distance: float     # mean |coefficient - key| in the disc, in units of a white-noise coefficient's std (N)
    p_value: float      # chance that an unmarked x_T is this close (non-central chi-square CDF)
    chi2: float         # the normalised squared distance over the independent values
    df: int             # how many independent values
    scale: float        # the values' estimated deviation over white noise's (N/sqrt(2)): near 1 for a good inversion

    @property
    def marked(self) -> bool:
        return self.p_value < MARKED_P


# ---- with a model: sample marked images, and verify images -------------------------------------------------

def ring_for(family, key, radius: int | None = None, channel: int | None = None) -> TreeRing:
    """The key's pattern for the x_T of a diffusion model (refused for one without a spatial x_T)."""
    from engine.diffusion.inversion import require_invertible
    require_invertible(family)
    shape = tuple(family.seed_latents([0]).shape[1:])
    try:
        return TreeRing.make(key, shape, radius, channel)
    except ValueError as e:
        raise ValueError(f"a {family.name} model: {e}") from None


@torch.no_grad()
def sample_marked(family, ring: TreeRing, seeds: list[int], steps: int, *, cancel=None) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1]: deterministic DDIM from each seed's x_T with the rings written in."""
    from engine.diffusion.inversion import reconstruct
    return reconstruct(family, ring.inject(family.seed_latents(list(seeds))), steps, cancel=cancel)


def write_marked_samples(family, ring: TreeRing, seeds: list[int], steps: int, folder, *, batch: int = 1,
                         cancel=None, written=None) -> list[str]:
    """Sample the seeds' marked images `batch` at a time into folder/treering_SSSSS.png (grey models
    write grey PNGs), each file written atomically as soon as it is sampled; written(path) after each
    (progress, a printed line). Returns the paths."""
    import cv2

    from engine.core.util import atomic_write_bytes
    from engine.detect.model_input import to_uint8
    from engine.family.progress import check_cancel
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(0, len(seeds), batch):
        check_cancel(cancel)
        chunk = list(seeds[i:i + batch])
        for seed, rgb in zip(chunk, to_uint8(sample_marked(family, ring, chunk, steps, cancel=cancel))):
            px = rgb[..., 0] if family.channels == 1 else rgb[..., ::-1]   # cv2 writes BGR
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(px))
            if not ok:
                raise ValueError(f"{folder}: could not encode a PNG")
            path = folder / f"treering_{seed:05d}.png"
            atomic_write_bytes(path, buf.tobytes())
            paths.append(str(path))
            if written is not None:
                written(str(path))
    return paths


@torch.no_grad()
def verify_images(family, ring: TreeRing, images: torch.Tensor, steps: int, *, progress=None,
                  cancel=None) -> list[RingTest]:
    """The test of each image (N, C, H, W) in [-1, 1] at the model's size: DDIM inversion, then the rings."""
    from engine.diffusion.inversion import invert_images
    return ring.test(invert_images(family, images, steps, progress=progress, cancel=cancel))
