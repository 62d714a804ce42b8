import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import DataConfig
from engine.data import BatchOrder, DataError, build_dataset
from engine.data import folder as folder_mod


def test_digits_shape_range_labels():
    d = build_dataset(DataConfig(dataset="digits", resolution=16))
    assert d.images.shape == (1797, 1, 16, 16) and d.images.dtype == torch.uint8
    assert sorted(set(d.labels.tolist())) == list(range(10))
    x = d.float_batch(torch.arange(64))
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.99 and x.max() > 0.9


def test_shapes_seeded_rgb_all_classes():
    a = build_dataset(DataConfig(dataset="shapes", resolution=32, count=200, seed=3))
    b = build_dataset(DataConfig(dataset="shapes", resolution=32, count=200, seed=3))
    c = build_dataset(DataConfig(dataset="shapes", resolution=32, count=200, seed=4))
    assert a.images.shape == (200, 3, 32, 32)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.class_names == ["circle", "square", "triangle", "star"]
    assert set(a.labels.tolist()) == {0, 1, 2, 3}
    assert a.images.float().std() > 20  # not blank


def test_faces_and_textures():
    f = build_dataset(DataConfig(dataset="faces", resolution=32))
    assert f.images.shape == (100, 1, 32, 32)
    t = build_dataset(DataConfig(dataset="textures", resolution=32, count=50))
    assert t.images.shape == (50, 3, 32, 32) and t.num_classes == 10
    g = build_dataset(DataConfig(dataset="textures", resolution=16, count=10, color="grayscale"))
    assert g.channels == 1


def _png(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_folder_classes_modes_and_bad_files(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    _png(root / "cats" / "rgb.png", Image.new("RGB", (40, 30), (255, 0, 0)))
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    pal.info["transparency"] = 0  # palette index 0 is transparent -> white
    _png(root / "cats" / "palette.png", pal)
    _png(root / "cats" / "gray_alpha.png", Image.new("LA", (16, 16), (0, 0)))
    sixteen = Image.fromarray(np.full((16, 16), 32768, np.uint16))
    assert sixteen.mode.startswith("I;16")
    _png(root / "dogs" / "sixteen.png", sixteen)
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "dogs" / "cmyk.jpg")
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dogs" / "notes.txt").write_text("hello")
    _png(root / "dogs" / "huge.png", Image.new("L", (300, 300)))
    monkeypatch.setattr(folder_mod, "MAX_PIXELS", 50_000)

    d = build_dataset(DataConfig(dataset="folder", path=str(root), resolution=8))
    assert d.class_names == ["cats", "dogs"]
    assert len(d) == 5 and d.channels == 3
    by_reason = dict(d.skipped)
    assert set(by_reason) == {"dogs/broken.png", "dogs/notes.txt", "dogs/huge.png"}
    assert "too large (300x300" in by_reason["dogs/huge.png"]
    assert by_reason["dogs/notes.txt"] == "not an image file"
    imgs = {}
    files = ["cats/gray_alpha.png", "cats/palette.png", "cats/rgb.png", "dogs/cmyk.jpg", "dogs/sixteen.png"]
    for i, name in enumerate(files):
        imgs[name] = d.images[i, :, 4, 4].tolist()
    assert imgs["cats/rgb.png"] == [255, 0, 0]
    assert imgs["cats/palette.png"] == [255, 255, 255]      # transparent -> white, not the palette colour
    assert imgs["cats/gray_alpha.png"] == [255, 255, 255]
    assert imgs["dogs/sixteen.png"] == [128, 128, 128]      # 16-bit mid-grey -> 8-bit 128
    r, g, b = imgs["dogs/cmyk.jpg"]
    assert r > 200 and g < 60 and b < 60                    # C=0, M=Y=full -> red
    assert d.labels.tolist() == [0, 0, 0, 1, 1]


def test_folder_all_gray_stays_one_channel(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", Image.new("L", (10, 12), 100 + i))
    d = build_dataset(DataConfig(dataset="folder", path=str(tmp_path), resolution=8))
    assert d.channels == 1 and len(d) == 3 and d.class_names == [tmp_path.name]


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "the folder is empty"),
    (lambda p: (p / "a.txt").write_text("x"), "no image files found"),
    (lambda p: (p / "a.png").write_bytes(b"garbage"), "none of the 1 image file(s) could be read"),
])
def test_folder_errors_are_clear(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError) as e:
        build_dataset(DataConfig(dataset="folder", path=str(tmp_path), resolution=8))
    assert str(tmp_path) in str(e.value) and message in str(e.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        build_dataset(DataConfig(dataset="folder", path=str(tmp_path / "nope"), resolution=8))


def test_folder_loader_and_gui_share_one_suffix_list_and_ignore_case(tmp_path):
    from app.canvases import common as app_common
    from engine import imageformats

    assert app_common.IMAGE_SUFFIXES is imageformats.IMAGE_SUFFIXES is folder_mod.IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in imageformats.IMAGE_SUFFIXES)
    assert imageformats.is_image_path("a/B.TIFF") and not imageformats.is_image_path("notes.txt")
    _png(tmp_path / "upper.PNG", Image.new("L", (10, 10), 7))
    _png(tmp_path / "lower.png", Image.new("L", (10, 10), 9))
    Image.new("RGB", (10, 10)).save(tmp_path / "photo.JPeG", format="JPEG")
    d = build_dataset(DataConfig(dataset="folder", path=str(tmp_path), resolution=8))
    assert len(d) == 3 and not d.skipped
    assert sorted(d.images[:, 0, 4, 4].tolist()) == [0, 7, 9]


def test_batch_order_resumes_exactly():
    a = BatchOrder(10, 4, seed=1, hflip=True)
    seq = [a.next() for _ in range(7)]
    b = BatchOrder(10, 4, seed=1, hflip=True)
    for _ in range(3):
        b.next()
    c = BatchOrder(10, 4, seed=1, hflip=True)
    c.load_state(b.state())
    for i in range(3, 7):
        idx, flips = c.next()
        assert torch.equal(idx, seq[i][0]) and torch.equal(flips, seq[i][1])
    # every epoch is a permutation
    d = BatchOrder(10, 5, seed=0)
    assert sorted(torch.cat([d.next()[0], d.next()[0]]).tolist()) == list(range(10))
