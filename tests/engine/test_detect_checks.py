"""The training-free checks: the registry's battery (every check gives a score, an explanation and
its evidence), NPR on a nearest-upsampled image, copy-move on a planted copy, the noise residual's
reference pattern."""
import math

import cv2
import numpy as np
import pytest
import skimage.data

from engine.core.detect_checks import CHECKS, NEEDS_FILE, default_checks, parse_checks
from engine.detect.context import DetectContext
from engine.detect.copy_move import find_copy_move
from engine.detect.image import luminance
from engine.detect.noise_residual import ReferencePattern
from engine.detect.npr import npr_residual
from engine.detect.run import run_check


def photo(side=128) -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[:side, 200:200 + side])


# ---- the registry ------------------------------------------------------------------------------
def test_parse_checks_names_the_known():
    assert parse_checks("") == default_checks() and "spectrum-lr" not in default_checks()
    assert parse_checks("all") == list(CHECKS.names())
    assert parse_checks("NPR, copymove, npr") == ["npr", "copymove"]
    with pytest.raises(ValueError, match="unknown check 'fft'; choose from: spectrum"):
        parse_checks("fft")


@pytest.mark.parametrize("key", [k for k, s in CHECKS.items() if s.needs not in NEEDS_FILE])
def test_every_training_free_check_gives_score_evidence_and_a_sentence(key):
    res = run_check(key, photo(64), DetectContext())   # 64 px: the spectrum's real reference is built once per size
    assert res.check == key
    assert isinstance(res.score, float)
    assert res.explanation.endswith(".") and res.explanation.count(". ") <= 1   # one sentence
    if res.map is not None:
        assert res.map.ndim == 2 and res.map.shape == (64, 64) and np.isfinite(res.map).all()
    out = res.to_json()
    assert out["check"] == key and out["direction"] == CHECKS.get(key).direction and out["score_is"]


# ---- NPR ---------------------------------------------------------------------------------------
def test_npr_residual_is_zero_on_a_nearest_upsampled_image():
    small = photo(64)
    up = cv2.resize(small, (128, 128), interpolation=cv2.INTER_NEAREST)
    assert np.abs(npr_residual(up)).max() == 0
    res = run_check("npr", up)
    assert res.score == 0 and "up-sampled 2x by nearest neighbour" in res.explanation
    natural = run_check("npr", photo(128))
    assert natural.score > 3 and natural.details["grid_ratio"] > 0.5


def test_npr_finds_the_grid_of_a_shifted_upsampling():
    up = cv2.resize(photo(64), (128, 128), interpolation=cv2.INTER_NEAREST)[1:, 1:]   # off the 2x2 grid by one
    res = run_check("npr", np.ascontiguousarray(up))
    assert res.details["grid_offset"] == [1, 1] and res.details["grid_ratio"] < 0.1
    assert "grid stands out" in res.explanation


# ---- copy-move ---------------------------------------------------------------------------------
def test_copy_move_finds_a_planted_block_and_its_shift():
    img = photo(192).copy()
    img[120:156, 100:136] = img[20:56, 10:46]      # a 36 x 36 block copied 100 down, 90 right
    found = find_copy_move(luminance(img))
    assert found.shift == (100, 90) and found.votes >= 100
    assert found.mask[130:150, 110:130].all() and found.mask[30:50, 20:40].all()   # both copies marked
    assert found.mask.mean() < 0.1                 # and little else
    res = run_check("copymove", img)
    assert res.details["shift"] == [100, 90] and "moved by 100 px down and 90 px right" in res.explanation
    assert 0.02 < res.score < 0.1


def test_copy_move_searches_a_large_image_at_reduced_size():
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "brick",
             "grass", "gravel"]
    tiles = []
    for n in names:
        a = getattr(skimage.data, n)()
        a = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
        tiles.append(cv2.resize(np.ascontiguousarray(a[..., :3]), (512, 512), interpolation=cv2.INTER_AREA))
    img = np.concatenate([np.concatenate(tiles[r * 3:r * 3 + 3], axis=1) for r in range(3)])   # 1536 x 1536
    img[1100:1180, 900:980] = img[100:180, 300:380]   # moved by (1000, 600): even, so exact at 1/2 (half of it flat)
    res = run_check("copymove", img)
    assert res.details["searched_at"] == "1/2 size" and res.details["shift"] == [1000, 600]
    assert res.map.shape == img.shape[:2] and res.map[1100:1180, 900:980].mean() > 0.3 and res.map.mean() < 0.01


def test_copy_move_finds_nothing_in_an_untouched_photo():
    res = run_check("copymove", photo(192))
    assert res.score == 0 and res.details["shift"] is None and not res.map.any()


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """The image saved as a JPEG at `quality` and read back (PIL, as a re-saved file is)."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def smooth_field(side=256, sigma=7.0, seed=0) -> np.ndarray:
    """A smooth random field (blurred noise stretched to 0..255): gradients everywhere, no copy."""
    f = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, (side, side)), (0, 0), sigma)
    f = np.round((f - f.min()) / np.ptp(f) * 255).astype(np.uint8)
    return np.repeat(f[..., None], 3, axis=2)


@pytest.mark.parametrize("quality", [90, 75])
def test_copy_move_finds_a_copy_after_the_image_is_saved_as_jpeg(quality):
    img = photo(256).copy()
    img[150:198, 170:218] = img[30:78, 20:68]      # 48 x 48 of her face and hair, 120 down and 150 right
    again = jpeg(img, quality)
    assert np.abs(again.astype(int) - img).mean() > 1     # the copy and its source changed, each its own way
    res = run_check("copymove", again)
    assert res.details["shift"] == [120, 150] and res.details["votes"] >= 100, res.details
    assert res.map[160:190, 180:210].mean() > 0.8 and res.map.mean() < 0.1


@pytest.mark.parametrize("quality", [None, 90, 50])
def test_copy_move_finds_nothing_in_untouched_images_saved_as_jpeg(quality):
    for img in (photo(256), smooth_field(), np.ascontiguousarray(skimage.data.coffee()[:256, :256])):
        res = run_check("copymove", img if quality is None else jpeg(img, quality))
        assert res.details["shift"] is None and res.score == 0, res.details


# ---- noise residual ----------------------------------------------------------------------------
def _camera(k: np.ndarray, seed: int, n: int) -> list[np.ndarray]:
    """n pictures 'taken' by a sensor with the multiplicative pattern k: smooth scenes, I = I0 (1 + k) + noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        scene = cv2.GaussianBlur(rng.uniform(40, 215, (96, 96)), (0, 0), 6)
        scene = 60 + (scene - scene.min()) / (np.ptp(scene) + 1e-9) * 140
        shot = scene * (1 + k) + rng.normal(0, 1.0, scene.shape)
        out.append(np.repeat(np.clip(np.round(shot), 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return out


def test_noise_residual_matches_its_own_source_and_not_another(tmp_path):
    rng = np.random.default_rng(0)
    k_a, k_b = rng.normal(0, 0.03, (96, 96)), rng.normal(0, 0.03, (96, 96))
    ref = ReferencePattern.from_images(_camera(k_a, 1, 12), "camera A")
    rho_a, z_a, _ = ref.match(_camera(k_a, 2, 1)[0])
    rho_b, z_b, _ = ref.match(_camera(k_b, 3, 1)[0])
    assert rho_a > 0.2 and z_a > 20
    assert abs(rho_b) < 0.05 and abs(z_b) < 5
    # through a folder, as the CLI takes it, and a saved pattern
    for i, im in enumerate(_camera(k_a, 4, 6)):
        cv2.imwrite(str(tmp_path / f"a{i}.png"), im)
    (tmp_path / "notes.txt").write_text("not an image")
    ctx = DetectContext(noise_reference=tmp_path)
    same = run_check("noise", _camera(k_a, 5, 1)[0], ctx)
    assert same.score > 0.1 and "carries the pattern" in same.explanation
    other = run_check("noise", _camera(k_b, 6, 1)[0], ctx)
    assert other.score < 0.05 and "does not carry" in other.explanation
    saved = ctx.noise_pattern().save(tmp_path / "pattern")
    assert np.allclose(ReferencePattern.from_path(saved).pattern, ctx.noise_pattern().pattern)


def test_noise_check_without_reference_gives_the_residual_and_no_score():
    res = run_check("noise", photo(64))
    assert math.isnan(res.score) and "No reference pattern" in res.explanation and res.map.shape == (64, 64)
    assert res.to_json()["score"] is None
    with pytest.raises(ValueError, match="at least 2 images"):
        ReferencePattern.from_images([photo(64)])
