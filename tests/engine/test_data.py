import os

import numpy as np
import pytest
import torch
from PIL import Image

from engine.core.config import DataConfig
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
    assert by_reason["dogs/huge.png"] == "image too large (over 50,000 pixels)"
    assert by_reason["dogs/notes.txt"] == "not an image"
    assert by_reason["dogs/broken.png"] == "file is truncated or damaged"   # a PNG header, then garbage
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
    from engine.core import imageformats

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


# ---- reliability: 16-bit range, non-regular files, odd names, one bad entry never stops a load ------
def _png_bytes(width, height, bit_depth, color_type, raw_rows: bytes) -> bytes:
    """A minimal PNG written by hand (Pillow cannot write 16-bit RGB(A))."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw_rows))
            + chunk(b"IEND", b""))


def _png16(path, arr):
    """uint16 H,W (grey), H,W,3 (RGB) or H,W,4 (RGBA) as a 16-bit PNG."""
    arr = np.asarray(arr, np.uint16)
    arr = arr[..., None] if arr.ndim == 2 else arr
    h, w, c = arr.shape
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(_png_bytes(w, h, 16, {1: 0, 3: 2, 4: 6}[c], rows))


def test_16bit_pngs_load_by_their_real_range(tmp_path):
    for name, value in (("dark", 255), ("white", 65535)):
        img = Image.fromarray(np.full((8, 8), value, np.uint16))
        assert img.mode.startswith("I;16")
        img.save(tmp_path / f"{name}.png")
        assert Image.open(tmp_path / f"{name}.png").mode.startswith("I;16")  # Pillow keeps it 16-bit
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    dark, _ = folder_mod.load_image(tmp_path / "dark.png", 8)
    white, _ = folder_mod.load_image(tmp_path / "white.png", 8)
    assert dark.max() <= 1                    # 255 of 65535: nearly black, not white
    assert (white == 255).all()
    ramp8, gray = folder_mod.load_image(tmp_path / "ramp.png", 16)
    row = ramp8[8, :, 0].astype(int)
    assert gray and row[0] == 0 and row[-1] == 255 and (np.diff(row) > 0).all()  # order (and range) kept
    # 16-bit RGB and RGBA (written by hand: Pillow cannot write them)
    _png16(tmp_path / "rgb_dark.png", np.full((8, 8, 3), 255))
    _png16(tmp_path / "rgb_white.png", np.full((8, 8, 3), 65535))
    _png16(tmp_path / "rgba_dark.png", np.dstack([np.full((8, 8, 3), 255), np.full((8, 8), 65535)]))
    _png16(tmp_path / "rgb_red.png", np.dstack([np.full((8, 8), 65535), np.full((8, 8), 255), np.zeros((8, 8))]))
    assert folder_mod.load_image(tmp_path / "rgb_dark.png", 8)[0].max() <= 1
    assert (folder_mod.load_image(tmp_path / "rgb_white.png", 8)[0] == 255).all()
    assert folder_mod.load_image(tmp_path / "rgba_dark.png", 8)[0].max() <= 1
    assert folder_mod.load_image(tmp_path / "rgb_red.png", 8)[0][4, 4].tolist() in ([255, 0, 0], [255, 1, 0])


@pytest.mark.parametrize("mode, values, expected", [
    ("I;16B", [0, 255, 32768, 65535], [0, 1, 128, 255]),
    ("I;16L", [0, 255, 32768, 65535], [0, 1, 128, 255]),
    ("I", [-5, 255, 65535, 1_000_000], [0, 1, 255, 255]),   # 32-bit: clipped to 16 bits first
])
def test_16bit_modes_scale_by_the_full_range(mode, values, expected):
    if mode == "I":
        img = Image.fromarray(np.asarray([values], np.int32))
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        img = Image.frombytes(mode, (len(values), 1), np.asarray(values, dtype).tobytes())
    assert img.mode == mode
    arr, gray = folder_mod._to_rgb_array(img)
    assert gray and arr[0, :, 0].tolist() == expected


# method="thread": a regression blocks in open() inside the loader's thread pool, where a signal
# cannot reach it; the thread method ends the test run with a stack dump instead of hanging
@pytest.mark.timeout(30, method="thread")
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_named_pipe_in_folder_is_skipped_not_opened(tmp_path):
    _png(tmp_path / "ok.png", Image.new("L", (10, 10), 50))
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block until a writer comes
    with pytest.raises(ValueError, match="not a regular file"):
        folder_mod.load_image(tmp_path / "pipe.png", 8)
    d = build_dataset(DataConfig(dataset="folder", path=str(tmp_path), resolution=8))
    assert len(d) == 1 and d.skipped == [("pipe.png", "not a regular file")] and d.scanned == 2


def test_non_utf8_folder_path_is_one_config_error():
    from engine.core.config import ConfigError, RunConfig
    with pytest.raises(ConfigError) as e:
        RunConfig().replace(data={"dataset": "folder", "path": os.fsdecode(b"/tmp/caf\xe9")})
    msg = str(e.value)
    assert msg.startswith("data.path = ") and "not valid UTF-8" in msg and "\n" not in msg
    msg.encode("utf-8")  # the message itself can be printed
    assert RunConfig().replace(data={"dataset": "folder", "path": "/tmp/café"}).data.path == "/tmp/café"


def test_non_utf8_file_and_folder_names_load_and_print(tmp_path):
    if os.name == "nt":
        pytest.skip("file names are Unicode on Windows")
    root = tmp_path / "imgs"
    try:
        (root / os.fsdecode(b"cl\xe4ss")).mkdir(parents=True)
        _png(root / os.fsdecode(b"cl\xe4ss") / os.fsdecode(b"caf\xe9.png"), Image.new("L", (10, 10), 60))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    _png(root / "plain" / "a.png", Image.new("L", (10, 10), 70))
    (root / "plain" / os.fsdecode(b"br\xf6ken.png")).write_bytes(b"not an image")
    d = build_dataset(DataConfig(dataset="folder", path=str(root), resolution=8))
    assert len(d) == 2 and d.class_names == ["cl\\xe4ss", "plain"]
    assert [f for f, _ in d.skipped] == ["plain/br\\xf6ken.png"]
    text = folder_mod.skipped_warning(d.name, d.skipped, d.scanned)
    text.encode("utf-8")
    assert "br\\xf6ken.png" in text and "\n" not in text


def _bad_entry(kind, root, monkeypatch):
    """Puts one bad entry in root; returns (its name as reported, expected words of the reason)."""
    if kind == "folder named x.png":        # just a class folder: it is walked, never opened as a file
        (root / "x.png").mkdir()
        (root / "x.png" / "notes.txt").write_text("x")
        return "x.png/notes.txt", "not an image"
    if kind == "symlink to itself":
        os.symlink("loop.png", root / "loop.png")
        return "loop.png", "symbolic link loop"
    if kind == "broken symlink":
        os.symlink("nowhere.png", root / "gone.png")
        return "gone.png", "broken symbolic link"
    if kind == "symlink to a device":
        os.symlink("/dev/zero", root / "zero.png")
        return "zero.png", "not a regular file"
    if kind == "folder link loop":
        (root / "sub").mkdir()
        os.symlink("..", root / "sub" / "up")
        return "sub/up", "already scanned"
    if kind == "zero-byte file":
        (root / "empty.png").write_bytes(b"")
        return "empty.png", "empty file"
    if kind == "too large by its header":   # 100000 x 100000 claimed, a few bytes of data
        (root / "huge.png").write_bytes(_png_bytes(100_000, 100_000, 8, 0, b"\x00"))
        return "huge.png", "too large"
    if kind == "truncated":
        buf = __import__("io").BytesIO()
        Image.new("L", (64, 64), 9).save(buf, format="PNG", compress_level=0)
        (root / "cut.png").write_bytes(buf.getvalue()[:200])
        return "cut.png", "file is truncated"
    if kind == "permission denied":
        bad = root / "locked.png"
        _png(bad, Image.new("L", (10, 10), 1))
        bad.chmod(0)
        if os.access(bad, os.R_OK):         # running as root: permissions are not enforced, so simulate
            real_open = os.open
            def deny(path, *a, **k):
                if os.fspath(path) == os.fspath(bad):
                    raise PermissionError(13, "Permission denied", os.fspath(path))
                return real_open(path, *a, **k)
            monkeypatch.setattr(folder_mod.os, "open", deny)
        return "locked.png", "permission denied"
    if kind == "unreadable subfolder":
        (root / "locked").mkdir()
        _png(root / "locked" / "a.png", Image.new("L", (10, 10), 1))
        (root / "locked").chmod(0)
        if os.access(root / "locked", os.R_OK):
            real_scandir = os.scandir
            def deny(path="."):
                if os.fspath(path) == os.fspath(root / "locked"):
                    raise PermissionError(13, "Permission denied", os.fspath(path))
                return real_scandir(path)
            monkeypatch.setattr(folder_mod.os, "scandir", deny)
        return "locked", "cannot open folder (permission denied)"
    raise AssertionError(kind)


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.name == "nt", reason="symbolic links, /dev and POSIX permissions")
@pytest.mark.parametrize("kind", ["folder named x.png", "symlink to itself", "broken symlink", "symlink to a device",
                                  "folder link loop", "zero-byte file", "too large by its header", "truncated",
                                  "permission denied", "unreadable subfolder"])
def test_one_bad_entry_is_a_counted_skip_with_a_reason(tmp_path, monkeypatch, kind):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "good.png", Image.new("L", (10, 10), 80))
    try:
        name, reason = _bad_entry(kind, root, monkeypatch)
        d = build_dataset(DataConfig(dataset="folder", path=str(root), resolution=8))
    finally:
        for p in (root / "locked.png", root / "locked"):
            if p.exists():
                p.chmod(0o755)
    assert len(d) == 1 and d.images[0, 0, 4, 4].item() == 80
    assert len(d.skipped) == 1, d.skipped
    (file, why), = d.skipped
    assert file == name and reason in why and "\n" not in why, d.skipped
    assert d.scanned == 2
    assert folder_mod.skipped_warning(d.name, d.skipped, d.scanned).endswith(f"skipped 1 of 2 files — 1 {why}: {name}")


@pytest.mark.skipif(os.name == "nt", reason="symbolic links")
@pytest.mark.parametrize("target", ["../..", "../../..", "/"])
def test_a_link_to_a_folder_above_the_data_folder_is_not_followed(tmp_path, target):
    """A folder of 2 images with a link to its parent's parent (beside it 38 other images) loaded
    40 before issue 20; now the 2, and the link is a counted skip with its reason."""
    top = tmp_path / "top"
    for i in range(2):
        _png(top / "data" / f"{i}.png", Image.new("L", (10, 10), 40 + i))
    for i in range(38):
        _png(top / "other" / f"{i}.png", Image.new("L", (10, 10), i))
    os.symlink(target, top / "data" / "up")
    d = build_dataset(DataConfig(dataset="folder", path=str(top / "data"), resolution=8))
    assert len(d) == 2 and d.class_names == ["data"]
    assert d.skipped == [("up", "linked folder holds the data folder (a link to a folder above it): not followed")]
    # a linked folder elsewhere (not above the data) is still followed, as a class of its own
    os.symlink(str(top / "other"), top / "data" / "more")
    d = build_dataset(DataConfig(dataset="folder", path=str(top / "data"), resolution=8))
    assert len(d) == 40 and d.class_names == ["data", "more"]


def test_unreadable_folder_is_one_clear_error(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    root.mkdir()
    _png(root / "a.png", Image.new("L", (10, 10), 1))
    real_scandir = os.scandir
    def deny(path="."):
        if os.fspath(path) == os.fspath(root):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(folder_mod.os, "scandir", deny)
    with pytest.raises(DataError, match=r"imgs: cannot open the folder \(permission denied\)"):
        build_dataset(DataConfig(dataset="folder", path=str(root), resolution=8))


def test_the_digits_read_from_scikit_learns_file_are_load_digits_own():
    from sklearn.datasets import load_digits

    from engine.data import digits_arrays
    images, target = digits_arrays()
    d = load_digits()
    assert images.shape == (1797, 8, 8) and np.array_equal(images, d.images) and np.array_equal(target, d.target)
