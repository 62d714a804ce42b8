"""Inpainting an image of another colour mode than the model's: an RGB photo through a greyscale
model stays RGB and keeps every pixel away from the mask bit for bit (it once came back grey: a
corner went from (200, 180, 120) to (179, 179, 179)); the grey fill takes its colour from around
the hole; a greyscale image through an RGB model stays greyscale. Untrained tiny models: what is
tested is the composite, not the fill's quality."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engine.family.base import build_family
from engine.inpainting import channels_note
from engine.inpainting.composite import LUMA, colour_guide, in_image_channels
from engine.ops.base import ModelSession, never, no_progress, parse_request
from engine.ops.inpaint import InpaintRequest, run
from tests.conftest import tiny_config, tiny_family_config

H, W = 40, 56
BOX = (18, 10, 30, 22)   # x0, y0, x1, y1 of the mask


def model(family: str, channels: int):
    cfg = tiny_config(sampling={"steps": 4}) if family == "ddpm" else tiny_family_config(family)
    fam = build_family(cfg, channels, 8, [])
    return ModelSession(fam, "untrained.safetensors", 0, cfg)


def colour_photo() -> np.ndarray:
    """A smooth colour image with some texture, its corner (200, 180, 120) as in the report."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([200 - xx, 180 - yy, 120 + xx // 2], -1) + rng.integers(-4, 5, (H, W, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    img[0, 0] = (200, 180, 120)
    return img


def write(tmp_path, img: np.ndarray) -> tuple[str, str, np.ndarray]:
    Image.fromarray(img).save(tmp_path / "img.png")
    mask = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = BOX
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    return str(tmp_path / "img.png"), str(tmp_path / "mask.png"), mask


def inpaint(session, image, mask, out, method, settings):
    req = parse_request(InpaintRequest, {"image": image, "mask": mask, "out_dir": str(out), "seeds": [0, 1],
                                         "method": method, "inpaint": {"jump": 1, "resample": 2}
                                         if method == "repaint" else {}, "settings": settings}, "inpaint")
    return run(session, req, no_progress, never)


def away_from(mask: np.ndarray, res, feather: float) -> np.ndarray:
    """The pixels farther from the mask than the feathered edge reaches (in image pixels)."""
    reach = int(np.ceil(feather * max(res.region[2] - res.region[0], res.region[3] - res.region[1]) / 8))
    ys, xs = np.nonzero(mask)
    far = np.ones(mask.shape, bool)
    far[max(ys.min() - reach, 0):ys.max() + reach + 1, max(xs.min() - reach, 0):xs.max() + reach + 1] = False
    return far


SETTINGS = [{"fit": "resize", "feather": 0.0}, {"fit": "masked", "feather": 0.0},
            {"fit": "masked", "feather": 1.5, "padding": 4}, {"fit": "crop", "feather": 1.0}]


@pytest.mark.parametrize("family,method", [("ddpm", "repaint"), ("ddpm", "blend"), ("pixelcnn", "raster completion")])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_a_colour_image_through_a_greyscale_model_stays_colour_and_keeps_every_pixel_away_from_the_mask(
        tmp_path, family, method, settings):
    img = colour_photo()
    image, mask_path, mask = write(tmp_path, img)
    res = inpaint(model(family, 1), image, mask_path, tmp_path / "out", method, settings)
    far = away_from(mask, res, settings["feather"])
    inside = mask > 0
    for p in res.paths:
        with Image.open(p) as im:
            assert im.mode == "RGB"
            out = np.asarray(im)
            meta = json.loads(im.text["genlab"])
        assert out.shape == img.shape
        assert tuple(out[0, 0]) == (200, 180, 120)
        assert np.array_equal(out[far], img[far])                  # bit for bit, in colour
        if settings["feather"] == 0:
            assert np.array_equal(out[~inside], img[~inside])      # a hard edge: every pixel outside the mask
        # inside: coloured, not grey (the colours around the hole are far from grey here)
        spread = out[inside].astype(int).max(axis=1) - out[inside].astype(int).min(axis=1)
        assert spread.mean() > 20, spread.mean()
        assert meta["method"] == method
    assert "works in greyscale" in res.note


def test_the_grey_fill_gives_the_light_and_shade_and_the_surroundings_the_colour():
    rng = np.random.default_rng(0)
    image = np.empty((16, 16, 3), np.float32)
    image[...] = (0.8, 0.4, 0.2)                          # an orange wall
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1
    guide = colour_guide(image, mask)
    # the hole takes the wall's colour (Telea's fill: within 2 levels of 255)
    assert np.allclose(guide[mask > 0], (0.8, 0.4, 0.2), atol=2.5 / 255)
    assert np.array_equal(guide[mask == 0], image[mask == 0])
    fill = rng.uniform(0.3, 0.6, (16, 16, 1)).astype(np.float32)
    out = in_image_channels(fill, guide)
    assert out.shape == (16, 16, 3)
    assert np.allclose(out @ LUMA, fill[..., 0], atol=1e-5)                 # the model's light and shade
    chroma = out - (out @ LUMA)[..., None]
    assert np.allclose(chroma, guide - (guide @ LUMA)[..., None], atol=1e-5)   # the wall's hue
    assert np.array_equal(in_image_channels(fill, fill), fill)
    grey = in_image_channels(out, fill)                                     # colour into a grey image
    assert grey.shape == (16, 16, 1) and np.allclose(grey[..., 0], fill[..., 0], atol=1e-5)


@pytest.mark.parametrize("settings", SETTINGS[1:3], ids=["masked-hard", "masked-feather"])
def test_a_greyscale_image_through_a_colour_model_stays_greyscale_and_keeps_its_pixels(tmp_path, settings):
    rng = np.random.default_rng(1)
    img = (rng.random((H, W)) * 255).astype(np.uint8)
    image, mask_path, mask = write(tmp_path, img)
    res = inpaint(model("ddpm", 3), image, mask_path, tmp_path / "out", "repaint", settings)
    far = away_from(mask, res, settings["feather"])
    for p in res.paths:
        with Image.open(p) as im:
            assert im.mode == "L"
            out = np.asarray(im)
        assert out.shape == img.shape and np.array_equal(out[far], img[far])
        assert not np.array_equal(out[mask > 0], img[mask > 0])
    assert "works in colour" in res.note


def test_the_note_is_said_only_when_the_modes_differ():
    assert channels_note(3, 1).startswith("the model works in greyscale")
    assert channels_note(1, 3).startswith("the model works in colour")
    assert channels_note(3, 3) == channels_note(1, 1) == ""
