"""The frequency-spectrum check (Durall et al. 2020, "Watch your up-convolution"; Frank et al. 2020,
"Leveraging frequency analysis for deep fake image recognition").

Up-sampling layers leave periodic traces that natural photos lack: bumps or a missing fall-off in
the highest frequencies. The image's azimuthally averaged log power spectrum (a 1D profile over
radial frequency) is compared bin by bin with the built-in real photos' profiles (the `textures`
dataset: crops of scikit-image's photographs, at a power-of-two size near the image's); the score is the RMS
z-score over the upper half of the frequencies. Profiles are mean-centred, so brightness and
contrast do not move them. The log-DCT spectrum (Frank et al.'s input) gives a second profile; a
logistic regression on both (spectrum_detector.py) is the trained variant."""
from __future__ import annotations

import numpy as np
from scipy.fft import dctn, fft2, fftfreq, fftshift

from engine.detect.image import luminance
from engine.detect.result import CheckResult, Plot

BINS = 32          # radial frequency bins from 0 to the corner of the spectrum
MAX_RADIUS = 0.5 ** 0.5   # cycles/pixel at the corner (0.5, 0.5): the checkerboard a 2x up-sampling leaves sits there
HIGH_FROM = 0.25   # cycles/pixel: where "high frequencies" start (2x up-sampling's traces live above)
EPS = 1e-8


def log_power_spectrum(gray: np.ndarray) -> np.ndarray:
    """log10 |FFT|^2 of the mean-removed image, zero frequency in the centre (H x W)."""
    f = fft2(gray - gray.mean())
    return fftshift(np.log10(np.abs(f) ** 2 + EPS))


def log_dct(gray: np.ndarray) -> np.ndarray:
    """log10 |DCT-II| of the image (orthonormal), lowest frequency top-left (H x W)."""
    return np.log10(np.abs(dctn(gray - gray.mean(), type=2, norm="ortho")) + EPS)


def _radial_profile(values: np.ndarray, radius: np.ndarray, bins: int) -> np.ndarray:
    """Mean of `values` in `bins` equal rings over radius (0, MAX_RADIUS]; an empty ring (tiny
    images) takes its neighbours' interpolated value; centred to mean 0."""
    keep = radius > 0    # the zero frequency is the mean, removed: left out
    idx = np.minimum((radius[keep] / MAX_RADIUS * bins).astype(int), bins - 1)
    sums = np.bincount(idx, values[keep], minlength=bins)
    counts = np.bincount(idx, minlength=bins)
    prof = np.full(bins, np.nan)
    prof[counts > 0] = sums[counts > 0] / counts[counts > 0]
    centers = bin_centers(bins)
    ok = ~np.isnan(prof)
    prof = np.interp(centers, centers[ok], prof[ok])
    return prof - prof.mean()


def bin_centers(bins: int = BINS) -> np.ndarray:
    return (np.arange(bins) + 0.5) * MAX_RADIUS / bins


def fft_profile(gray: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The azimuthally averaged log power spectrum (Durall et al.'s 1D power spectrum)."""
    h, w = gray.shape
    fy, fx = np.meshgrid(fftshift(fftfreq(h)), fftshift(fftfreq(w)), indexing="ij")
    return _radial_profile(log_power_spectrum(gray), np.hypot(fy, fx), bins)


def dct_profile(gray: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The log-DCT spectrum averaged over rings of radial frequency (DCT index k is k/2N cycles/pixel)."""
    h, w = gray.shape
    fy, fx = np.meshgrid(np.arange(h) / (2 * h), np.arange(w) / (2 * w), indexing="ij")
    return _radial_profile(log_dct(gray), np.hypot(fy, fx), bins)


def features(image: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The spectrum detector's input: the FFT profile then the log-DCT profile (2 * bins values)."""
    g = luminance(image)
    return np.concatenate([fft_profile(g, bins), dct_profile(g, bins)])


def high_frequency_z(profile: np.ndarray, real: np.ndarray) -> np.ndarray:
    """z-scores of the profile's high-frequency bins against real profiles (n, bins)."""
    hi = bin_centers(len(profile)) >= HIGH_FROM
    mu, sd = real.mean(0), real.std(0) + 1e-6
    return ((profile - mu) / sd)[hi]


MIN_SIDE = 4   # pixels: below this a spectrum has no rings to average


def _luminance_checked(image: np.ndarray) -> np.ndarray:
    g = luminance(image)
    if min(g.shape) < MIN_SIDE:
        raise ValueError(f"{g.shape[1]}x{g.shape[0]} pixels: too small for a spectrum ({MIN_SIDE}x{MIN_SIDE} at least)")
    return g


def check(image: np.ndarray, context) -> CheckResult:
    g = _luminance_checked(image)
    prof = fft_profile(g)
    real = context.real_profiles(min(g.shape))
    z = high_frequency_z(prof, real)
    score = float(np.sqrt(np.mean(z ** 2)))
    more = "about as much" if abs(z.mean()) < 1 else "more" if z.mean() > 0 else "less"
    series = {"this image": prof.tolist(), f"real mean ({context.real_data})": real.mean(0).tolist()}
    details = {"high_frequency_mean_z": float(z.mean()), "real_data": context.real_data, "real_images": len(real)}
    explanation = (f"Its high frequencies carry {more} power {'as' if more == 'about as much' else 'than'} real "
                   f"photos' ({z.mean():+.1f} standard deviations on average, {score:.1f} RMS; up-sampling leaves "
                   f"bumps there, smoothing takes power away).")
    return CheckResult("spectrum", score, explanation, map=log_power_spectrum(g), map_title="log10 power spectrum",
                       plot=Plot(bin_centers().tolist(), series, "cycles / pixel", "log10 power (centred)"),
                       details=details)


def check_detector(image: np.ndarray, context) -> CheckResult:
    """The trained spectrum detector's probability that the image is generated, with its profile
    against the detector's real and fake training means."""
    detector = context.spectrum_detector_model()
    if detector is None:
        raise ValueError("the spectrum-lr check needs a trained spectrum detector (--spectrum-detector FILE)")
    g = _luminance_checked(image)
    p = detector.probability(image)
    bins = detector.bins
    series = {"this image": fft_profile(g, bins).tolist(), "real mean (training)": detector.real_mean[:bins].tolist(),
              "fake mean (training)": detector.fake_mean[:bins].tolist()}
    side = "generated" if p >= 0.5 else "real"
    explanation = (f"The spectrum detector trained on {detector.meta.get('real_count', '?')} real and "
                   f"{detector.meta.get('fake_count', '?')} generated images puts it on the {side} side ({p:.0%} generated).")
    return CheckResult("spectrum-lr", p, explanation, map=log_power_spectrum(g), map_title="log10 power spectrum",
                       plot=Plot(bin_centers(bins).tolist(), series, "cycles / pixel", "log10 power (centred)"),
                       details={"probability_generated": p, "detector": str(context.spectrum_detector)})
