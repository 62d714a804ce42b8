"""Watermarks bit-compatible with the invisible-watermark package (imwatermark), checked against
files that package wrote (tests/fixtures/watermark/, made by make_fixtures.py there): the Haar
transform against its formulas, identical pixels and identical readings, robustness to JPEG 75,
no message read from an unmarked image, and what happens to small images."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from engine.detect.watermark import dwt_dct, haar, messages
from engine.detect.watermark.check import check as sdxl_check

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "watermark"
FX = json.loads((FIXTURES / "fixtures.json").read_text())


def astronaut_crop() -> np.ndarray:
    """The fixtures' original: the crop of scikit-image's astronaut, BGR as cv2 reads it."""
    (r0, r1), (c0, c1) = FX["crop"]
    return np.ascontiguousarray(skimage.data.astronaut()[r0:r1, c0:c1, ::-1])


def photo_bgr(side=320) -> np.ndarray:
    return np.ascontiguousarray(skimage.data.coffee()[:side, :side, ::-1])


# ---- the Haar transform -------------------------------------------------------------------------
def test_haar_dwt2_matches_the_formulas_and_inverts():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 8)).astype(np.uint8)
    ca, (ch, cv, cd) = haar.dwt2(x)
    a, b = x[0::2, 0::2].astype(float), x[0::2, 1::2].astype(float)
    c, d = x[1::2, 0::2].astype(float), x[1::2, 1::2].astype(float)
    np.testing.assert_allclose(ca, (a + b + c + d) / 2, atol=1e-12)
    np.testing.assert_allclose(ch, (a + b - c - d) / 2, atol=1e-12)   # pywt: horizontal detail, rows differ
    np.testing.assert_allclose(cv, (a - b + c - d) / 2, atol=1e-12)
    np.testing.assert_allclose(cd, (a - b - c + d) / 2, atol=1e-12)
    assert ca.dtype == np.float64 and ca.shape == (3, 4)
    np.testing.assert_allclose(haar.idwt2((ca, (ch, cv, cd))), x, atol=1e-12)
    f32 = haar.dwt2(x.astype(np.float32))[0]
    assert f32.dtype == np.float32                       # as PyWavelets keeps float32
    with pytest.raises(ValueError, match="even sides"):
        haar.dwt2(np.zeros((5, 4)))


# ---- compatibility with files the package wrote --------------------------------------------------
@pytest.mark.parametrize("name", sorted(FX["files"]))
def test_reads_what_imwatermark_reads_from_its_own_files(name):
    f = FX["files"][name]
    bgr = cv2.imread(str(FIXTURES / name))
    assert messages.bits_to_string(dwt_dct.decode(bgr, 48, f["method"])) == f["imwatermark_reads"]


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_embedding_gives_the_packages_pixels(method):
    """Our mark is the package's mark, pixel for pixel, so the package reads ours as its own."""
    ours = dwt_dct.embed(astronaut_crop(), messages.bits_from_text(FX["message"]), method)
    theirs = cv2.imread(str(FIXTURES / f"imwm_{method}.png"))
    assert ours.dtype == np.uint8 and np.array_equal(ours, theirs)


def test_reads_the_unmarked_original_as_the_package_does():
    for method, read in FX["unmarked_imwatermark_reads"].items():
        assert messages.bits_to_string(dwt_dct.decode(astronaut_crop(), 48, method)) == read


def test_sdxl_message_is_the_48_bits_diffusers_writes():
    assert messages.bits_to_string(messages.SDXL_BITS) == FX["sdxl_bits"]
    assert len(messages.SDXL_BITS) == 48 and np.packbits(messages.SDXL_BITS).tobytes().hex() == "b3ec907bb19e"


def test_sdxl_check_finds_the_sdxl_mark_and_not_on_the_original():
    rgb = np.ascontiguousarray(astronaut_crop()[..., ::-1])
    bits = messages.SDXL_BITS
    marked = dwt_dct.embed(np.ascontiguousarray(rgb[..., ::-1]), bits, "dwtDct")[..., ::-1]
    found = sdxl_check(np.ascontiguousarray(marked))
    clean = sdxl_check(rgb)
    assert found.details["p_value"] < 1e-6 and "carries" in found.explanation
    assert clean.details["p_value"] > 1e-3 and clean.explanation.startswith("No ")
    # the fixture SDXL marked in float and rounded to 8 bits: the check reads what imwatermark reads
    fx = sdxl_check(np.ascontiguousarray(cv2.imread(str(FIXTURES / "sdxl_dwtDct.png"))[..., ::-1]))
    assert fx.details["read"] == FX["files"]["sdxl_dwtDct.png"]["imwatermark_reads"]
    small = sdxl_check(np.zeros((128, 128, 3), np.uint8))
    assert small.score != small.score and "256 pixels" in small.explanation   # NaN: nothing to read


# ---- robustness and chance ----------------------------------------------------------------------
def test_dwt_dct_svd_survives_jpeg_75():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 48).astype(np.uint8)
    marked = dwt_dct.embed(photo_bgr(320), bits, "dwtDctSvd")
    ok, buf = cv2.imencode(".jpg", marked, [cv2.IMWRITE_JPEG_QUALITY, 75])
    jpeg = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    m = messages.compare(dwt_dct.decode(jpeg, 48, "dwtDctSvd"), bits)
    assert m.accuracy >= 0.9 and m.p_value < 1e-6


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_unmarked_image_reads_no_message(method):
    """Three untouched photos against the two messages of these tests: chance agreement only."""
    photos = [photo_bgr(320), astronaut_crop(), np.ascontiguousarray(skimage.data.rocket()[:, :, ::-1])]
    for i, bgr in enumerate(photos):
        for msg in (messages.SDXL_BITS, messages.bits_from_text(FX["message"])):
            m = messages.compare(dwt_dct.decode(bgr, 48, method), msg)
            assert 0.3 <= m.accuracy <= 0.7 and m.p_value > 0.01, (i, m)


def test_compare_p_value_is_the_binomial_tail():
    assert messages.compare([1] * 48, [1] * 48).p_value == pytest.approx(0.5 ** 48)
    half = messages.compare([1] * 24 + [0] * 24, [1] * 48)
    assert half.accuracy == 0.5 and half.p_value > 0.5
    with pytest.raises(ValueError, match="expected 48"):
        messages.compare([1] * 47, [1] * 48)


def test_message_formats_round_trip():
    assert messages.bits_to_text(messages.bits_from_text("GenLab")) == "GenLab"
    assert messages.bits_to_string(messages.bits_from_hex("0xB3EC907BB19E")) == FX["sdxl_bits"]
    assert messages.bits_to_text([1, 0, 1]) is None
    with pytest.raises(ValueError, match="0s and 1s"):
        messages.bits_from_string("0102")


# ---- small images: GenLab's policy --------------------------------------------------------------
def test_small_image_is_marked_with_a_warning_and_reads_back():
    small = np.ascontiguousarray(skimage.data.coffee()[100:196, 200:296, ::-1])   # 96 x 96: imwatermark refuses it
    bits = messages.bits_from_text("GL")                                           # 16 bits
    cap = dwt_dct.capacity(small.shape, len(bits), "dwtDctSvd")
    assert cap.blocks == 144 and cap.blocks_per_bit == 9
    assert cap.warnings() and "refuses" in cap.warnings()[0]
    marked = dwt_dct.embed(small, bits, "dwtDctSvd")
    assert messages.compare(dwt_dct.decode(marked, len(bits), "dwtDctSvd"), bits).accuracy == 1.0
    assert dwt_dct.capacity((256, 256, 3), 48, "dwtDct").warnings() == []


def test_too_small_for_the_message_is_one_clear_refusal():
    with pytest.raises(dwt_dct.WatermarkError, match=r"32x32 pixels hold 16 blocks, fewer than the 48 bits"):
        dwt_dct.embed(np.zeros((32, 32, 3), np.uint8), messages.SDXL_BITS)
    with pytest.raises(dwt_dct.WatermarkError, match="unknown watermark method 'rivaGan'"):
        dwt_dct.embed(photo_bgr(), messages.SDXL_BITS, "rivaGan")
