"""The frequency-spectrum check and its logistic-regression detector: images with planted periodic
up-sampling artefacts are told from clean ones, the detector saves as safetensors + JSON and
loads back the same, and the profile ignores brightness and contrast."""
import json

import cv2
import numpy as np
import pytest
import skimage.data

from engine.detect import spectrum
from engine.detect.context import DetectContext, reference_size
from engine.detect.run import run_check
from engine.detect.spectrum_detector import SpectrumDetector

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def clean_images(n: int, seed: int, side: int = 64) -> list[np.ndarray]:
    """Crops of scikit-image's photos, shrunk 2x with area averaging (no up-sampling anywhere)."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, p)()[..., :3] for p in PHOTOS]
    out = []
    for i in range(n):
        a = photos[i % len(photos)]
        y, x = rng.integers(0, a.shape[0] - 2 * side), rng.integers(0, a.shape[1] - 2 * side)
        out.append(cv2.resize(a[y:y + 2 * side, x:x + 2 * side], (side, side), interpolation=cv2.INTER_AREA))
    return out


def upsampled(img: np.ndarray) -> np.ndarray:
    """What a generator's transposed convolution leaves: the image made at half size, up-sampled 2x by
    zero insertion and a 3x3 smoothing kernel whose taps do not sum evenly over the 2x2 phases -> a
    periodic (period 2) pattern on top of the picture."""
    side = img.shape[0]
    half = cv2.resize(img, (side // 2, side // 2), interpolation=cv2.INTER_AREA).astype(np.float64)
    up = np.zeros((side, side, 3))
    up[::2, ::2] = half
    kernel = np.array([[0.25, 0.5, 0.25], [0.5, 1.2, 0.5], [0.25, 0.5, 0.25]])   # bilinear would be 1.0 in the centre
    out = cv2.filter2D(up, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_profile_ignores_brightness_and_contrast():
    img = clean_images(1, 0)[0]
    g = img.astype(np.float64)
    darker = np.clip(np.round(g * 0.5 + 20), 0, 255).astype(np.uint8)
    a, b = spectrum.features(img), spectrum.features(darker)
    assert a.shape == (2 * spectrum.BINS,)
    assert np.abs(a - b).max() < 0.05       # log power moves by a constant; profiles are centred


def test_training_free_score_rises_with_upsampling_artefacts():
    ctx = DetectContext()
    clean = [run_check("spectrum", im, ctx).score for im in clean_images(12, 1)]
    fake = [run_check("spectrum", upsampled(im), ctx).score for im in clean_images(12, 1)]
    assert np.median(fake) > 2 * np.median(clean)
    res = run_check("spectrum", clean_images(1, 2)[0], ctx)
    assert res.plot.x_label == "cycles / pixel" and len(res.plot.x) == spectrum.BINS
    assert set(res.plot.series) == {"this image", "real mean (textures)"}
    assert res.map.shape == (64, 64) and res.details["real_images"] > 50


def test_detector_separates_planted_upsampling_artefacts(tmp_path):
    train = clean_images(30, 3)
    det = SpectrumDetector.fit(train[:15], [upsampled(im) for im in train[15:]])
    test = clean_images(30, 4)
    p_clean = det.probabilities(test[:15])
    p_fake = det.probabilities([upsampled(im) for im in test[15:]])
    accuracy = (np.sum(p_clean < 0.5) + np.sum(p_fake >= 0.5)) / 30
    assert accuracy >= 0.9, (p_clean.round(2), p_fake.round(2))

    weights = det.save(tmp_path / "spec")
    assert weights.suffix == ".safetensors" and weights.read_bytes()[:8] != b"\x80\x04\x95"   # not a pickle
    meta = json.loads((tmp_path / "spec.json").read_text())
    assert meta["kind"] == "genlab-spectrum-detector" and meta["real_count"] == 15 and meta["bins"] == spectrum.BINS
    back = SpectrumDetector.load(tmp_path / "spec.json")
    np.testing.assert_allclose(back.probabilities(test[:5]), det.probabilities(test[:5]))

    ctx = DetectContext(spectrum_detector=tmp_path / "spec")
    res = run_check("spectrum-lr", upsampled(test[20]), ctx)
    assert res.score >= 0.5 and "generated side" in res.explanation
    assert "fake mean (training)" in res.plot.series


def test_detector_load_names_the_bad_file(tmp_path):
    with pytest.raises(ValueError, match="no such spectrum detector file"):
        SpectrumDetector.load(tmp_path / "missing")
    (tmp_path / "x.json").write_text(json.dumps({"kind": "something else"}))
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="x"):
        SpectrumDetector.load(tmp_path / "x")
    with pytest.raises(ValueError, match="at least 2 real"):
        SpectrumDetector.fit(clean_images(1, 0), clean_images(3, 0))


def test_reference_size_is_a_power_of_two_within_bounds():
    assert [reference_size(s) for s in (8, 25, 64, 100, 300, 4000)] == [16, 16, 64, 64, 256, 256]
