"""What a person reads about a folder of images: why each skipped file was skipped, in plain words
(never an exception's class name), counted by reason; a warning when a dataset is far too small
for a generative model; and a preview grid at a size one can see, not the 16-pixel training size."""
import errno
import io
import json
import re

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from engine.cli.main import main
from engine.core.config import DataConfig
from engine.data import build_dataset
from engine.data import folder as folder_mod
from engine.data.dataset import FEW_IMAGES, preview_size, too_few_images_warning

CLASS_NAME = re.compile(r"[A-Z][a-z]+(Error|Exception)|Traceback")


def _png_bytes(size=64, value=9) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (size, size), value).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def _skip_reason(tmp_path, name: str, data: bytes) -> str:
    """The reason a folder load gives for one bad file beside a good one."""
    Image.new("L", (10, 10), 80).save(tmp_path / "good.png")
    (tmp_path / name).write_bytes(data)
    d = build_dataset(DataConfig(dataset="folder", path=str(tmp_path), resolution=8))
    (file, why), = d.skipped
    assert file == name and not CLASS_NAME.search(why), why
    return why


@pytest.mark.parametrize("cut", [100, 200, 1000, 4000])   # past the header: the pixel data is cut short
def test_a_truncated_png_is_file_is_truncated(tmp_path, cut):
    assert _skip_reason(tmp_path, "cut.png", _png_bytes()[:cut]) == "file is truncated"


def test_a_png_cut_inside_its_header_is_truncated_or_damaged(tmp_path):
    assert _skip_reason(tmp_path, "cut.png", _png_bytes()[:10]) == "file is truncated or damaged"


@pytest.mark.parametrize("name, data, reason", [
    ("notes.png", b"just some text, not pixels", "not an image"),   # a text file named .png
    ("empty.png", b"", "empty file"),
    ("notes.txt", b"hello", "not an image"),
    ("anim.gif", b"GIF89a", "unsupported format (.gif)"),
    ("photo.HEIC", b"....", "unsupported format (.heic)"),
])
def test_other_bad_files_have_plain_reasons(tmp_path, name, data, reason):
    assert _skip_reason(tmp_path, name, data) == reason


@pytest.mark.parametrize("error, head, reason", [
    (UnidentifiedImageError("cannot identify image file <_io.BufferedReader name='x.png'>"), b"hello", "not an image"),
    (UnidentifiedImageError("cannot identify image file"), b"\x89PNG\r\n\x1a\n", "file is truncated or damaged"),
    (OSError("image file is truncated (12 bytes not processed)"), b"", "file is truncated"),
    (OSError("Truncated File Read"), b"", "file is truncated"),
    (EOFError(), b"", "file is truncated"),
    (PermissionError(errno.EACCES, "Permission denied"), b"", "cannot be read (permission denied)"),
    (OSError(errno.EIO, "Input/output error"), b"", "cannot be read (input/output error)"),
    (OSError("broken data stream when reading image file"), b"", "damaged image data"),
    (SyntaxError("broken PNG file"), b"", "damaged image data"),
    (ValueError("tile cannot extend outside image"), b"", "damaged image data"),
    (Image.DecompressionBombError("Image size (1 pixels) exceeds limit"), b"", "image too large (over"),
])
def test_plain_reason_maps_each_exception_to_words(error, head, reason):
    why = folder_mod.plain_reason(error, head)
    assert why.startswith(reason) and not CLASS_NAME.search(why), why


def test_decode_image_raises_a_plain_value_error(tmp_path):
    """inpaint and interpolate load single images through decode_image and catch ValueError."""
    (tmp_path / "cut.png").write_bytes(_png_bytes()[:200])
    with pytest.raises(ValueError, match="^file is truncated$"):
        folder_mod.decode_image(tmp_path / "cut.png")


def test_skipped_files_are_counted_by_reason_with_their_first_names():
    skipped = [("a.txt", "not an image"), ("cut.png", "file is truncated"), ("b.png", "not an image"),
               ("c.doc", "not an image"), ("d.csv", "not an image"), ("e.md", "not an image")]
    text = folder_mod.skipped_summary(skipped, 20)
    assert text == ("skipped 6 of 20 files — 5 not an image: a.txt, b.png, c.doc and 2 more; "
                    "1 file is truncated: cut.png")
    assert folder_mod.skipped_summary([("x.png", "empty file")], 1) == "skipped 1 of 1 file — 1 empty file: x.png"


def test_a_folder_with_no_readable_image_says_why_in_plain_words(tmp_path):
    (tmp_path / "a.png").write_bytes(b"text")
    (tmp_path / "b.png").write_bytes(_png_bytes()[:200])
    with pytest.raises(Exception) as e:
        build_dataset(DataConfig(dataset="folder", path=str(tmp_path), resolution=8))
    assert "1 not an image: a.png" in str(e.value) and "1 file is truncated: b.png" in str(e.value)
    assert not CLASS_NAME.search(str(e.value))


def test_too_few_images_warning_names_the_numbers():
    assert too_few_images_warning(12) == ("12 images: far too few to train a generative model — it will "
                                          "memorise them; aim for a few hundred or more")
    assert too_few_images_warning(1).startswith("1 image: far too few")
    assert too_few_images_warning(150, batch_size=256).startswith("150 images, fewer than one batch of 256: far too few")
    assert "a model of 35.0M parameters" in too_few_images_warning(5, 64, params=35_000_000)
    assert too_few_images_warning(FEW_IMAGES, batch_size=64) == ""
    assert too_few_images_warning(1797, batch_size=64) == ""


def test_preview_size_is_one_a_person_can_see():
    assert preview_size(8) == preview_size(16) == 64
    assert preview_size(96) == 96 and preview_size(512) == 128


def _data_preview(capsys, *args) -> dict:
    assert main(["data-preview", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _checkerboard(path, size=64, square=4):
    yy, xx = np.mgrid[:size, :size] // square
    Image.fromarray(((yy + xx) % 2 * 255).astype(np.uint8)).save(path)


def test_a_folder_previews_at_a_larger_decode_size_than_it_trains(tmp_path, capsys):
    folder = tmp_path / "boards"
    folder.mkdir()
    for i in range(20):
        _checkerboard(folder / f"{i:02d}.png")
    (folder / "notes.png").write_text("not pixels")
    out = tmp_path / "grid.png"
    info = _data_preview(capsys, "--dataset", "folder", "--path", str(folder), "--resolution", "16",
                         "--n", "16", "--out", str(out), "--batch-size", "32")
    assert info["resolution"] == 16 and info["preview_size"] == 64 and info["images"] == 20
    grid = np.asarray(Image.open(out))
    assert grid.shape[:2] == (4 * 65 + 1, 4 * 65 + 1)   # 4 x 4 images of 64 pixels, 1-pixel gaps
    # 4-pixel squares survive a 64-pixel decode; at 16 pixels they blur to grey, upscaled or not
    cell = grid[1:65, 1:65].astype(float)
    assert ((cell < 30) | (cell > 225)).mean() > 0.9
    assert info["warnings"] == [
        "skipped 1 of 21 files — 1 not an image: notes.png",
        "20 images, fewer than one batch of 32: far too few to train a generative model — it will memorise "
        "them; aim for a few hundred or more"]
    assert info["skipped_files"] == [["notes.png", "not an image"]]


def test_preview_size_and_data_fields_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "grid.png"
    info = _data_preview(capsys, "--dataset", "shapes", "--resolution", "16", "--n", "4", "--out", str(out),
                         "--preview-size", "32", "--set", "data.count=30", "--set", 'data.color="grayscale"')
    assert info["images"] == 30 and info["channels"] == 1 and info["preview_size"] == 32
    img = Image.open(out)
    assert img.size == (2 * 33 + 1, 2 * 33 + 1) and img.mode == "L"
    assert info["warnings"][0].startswith("30 images: far too few")


def test_a_large_enough_dataset_has_no_warning(tmp_path, capsys):
    info = _data_preview(capsys, "--dataset", "digits", "--resolution", "16", "--n", "16",
                         "--out", str(tmp_path / "g.png"), "--batch-size", "64")
    assert info["images"] == 1797 and info["warnings"] == [] and info["preview_size"] == 64
    assert Image.open(tmp_path / "g.png").size == (261, 261)
