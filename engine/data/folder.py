"""Any folder of images: subfolders become class labels. Bad files are skipped and counted, each
with a reason in plain words ('not an image', 'file is truncated', 'empty file', 'cannot be read
(permission denied)': plain_reason, never an exception's class name), so one bad entry can neither
stop nor hang the load: only regular files are opened (a named pipe or a device called x.png is
never read). Odd modes (palette, alpha, 16-bit, CMYK) convert correctly, and
oversized images are refused from their header, before they are decoded. File names that are not
valid UTF-8 are loaded, and shown with their odd bytes escaped (\\xe9)."""
from __future__ import annotations

import errno
import os
import stat
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.dataset import DataError
from engine.core.imageformats import IMAGE_SUFFIXES, is_image_path

MAX_PIXELS = int(os.environ.get("GENLAB_MAX_IMAGE_PIXELS", 64_000_000))  # e.g. 8000 x 8000
NOT_AN_IMAGE = "not an image"
NOT_REGULAR = "not a regular file"
EMPTY_FILE = "empty file"
TRUNCATED = "file is truncated"
DAMAGED = "damaged image data"
# image formats people keep beside their photos that this loader does not read (see imageformats)
OTHER_IMAGE_SUFFIXES = (".gif", ".heic", ".heif", ".avif", ".jxl", ".svg", ".psd", ".xcf", ".ico", ".tga",
                        ".exr", ".hdr", ".raw", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2")
# the first bytes of the formats read here: a file that starts like one but cannot be opened is
# a damaged or cut-short image, not a file that never was an image
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*")   # and RIFF....WEBP


def display_name(name: str | os.PathLike) -> str:
    """A path as text that can always be printed and written as UTF-8: bytes of a name that is
    not valid UTF-8 (decoded by Python with surrogateescape) are shown as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def os_reason(e: OSError) -> str:
    """A short reason for an OSError, without the path (the caller names the file)."""
    if isinstance(e, PermissionError):
        return "permission denied"
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(e, FileNotFoundError):
        return "file not found"
    return (e.strerror or "an operating-system error").lower()


def file_problem(path: Path) -> str | None:
    """Why `path` is not a file worth opening (None when it is a non-empty regular file). Follows
    symbolic links but opens nothing, so a FIFO or a device is never touched."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link" if os.path.islink(path) else "file not found"
    except OSError as e:
        return f"cannot be read ({os_reason(e)})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return NOT_REGULAR
    if st.st_size == 0:
        return EMPTY_FILE
    return None


class UnusableFile(ValueError):
    """A file in a folder cannot be used; the message is the plain reason ('file is truncated')."""


def too_large() -> str:
    return f"image too large (over {MAX_PIXELS:,} pixels)"   # MAX_PIXELS read now: tests lower it


def plain_reason(e: BaseException, head: bytes = b"") -> str:
    """Why an image file could not be decoded, in words a person acts on ('not an image', 'file is
    truncated', 'cannot be read (permission denied)'), never an exception's class name. `head`,
    the file's first bytes when known, tells a damaged image from a file that never was one."""
    if isinstance(e, UnusableFile):
        return str(e)
    if isinstance(e, Image.DecompressionBombError):
        return too_large()
    if isinstance(e, UnidentifiedImageError):   # no format recognised the header
        return f"{TRUNCATED} or damaged" if _starts_like_an_image(head) else NOT_AN_IMAGE
    if isinstance(e, (EOFError, struct.error)) or "truncated" in str(e).lower():
        return TRUNCATED
    if isinstance(e, OSError) and e.errno is not None:   # the operating system's, not a decoder's
        return f"cannot be read ({os_reason(e)})"
    if isinstance(e, MemoryError):
        return "not enough memory to decode it"
    return DAMAGED   # a decoder's complaint: OSError without errno, SyntaxError, ValueError, ...


def _starts_like_an_image(head: bytes) -> bool:
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _skipped_by_name(why: str) -> bool:
    """Whether a skip reason comes from the file's name alone (see suffix_reason)."""
    return why == NOT_AN_IMAGE or why.startswith("unsupported format")


def suffix_reason(path: Path) -> str:
    """Why a file with a name that is not an image's is skipped: 'unsupported format (.gif)' for
    an image format this loader does not read, 'not an image' for anything else."""
    suffix = path.suffix.lower()
    return f"unsupported format ({suffix})" if suffix in OTHER_IMAGE_SUFFIXES else NOT_AN_IMAGE


def scan_folder(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[str, str]], list[str]]:
    """(image files with their class name, skipped (file, reason), class names). Linked folders are
    followed, each real folder once (a link loop is skipped with a reason, not walked forever); a
    link to a folder that holds the data folder (an ancestor) is not followed at all: it would load
    every image around the data folder, not in it."""
    files, skipped = [], []
    seen: set[tuple[int, int]] = set()
    real_root = os.path.realpath(root)

    def on_error(e: OSError) -> None:
        if e.filename is not None and os.path.abspath(e.filename) == os.path.abspath(root):
            raise DataError(f"{display_name(root)}: cannot open the folder ({os_reason(e)})")
        where = display_name(Path(e.filename).relative_to(root)) if e.filename else display_name(root)
        skipped.append((where, f"cannot open folder ({os_reason(e)})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        rel = Path(dirpath).relative_to(root)
        try:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
        except OSError as e:
            skipped.append((display_name(rel), f"cannot open folder ({os_reason(e)})"))
            dirnames[:] = []
            continue
        if key in seen:  # a link back to a folder already walked (a loop, or the same folder twice)
            skipped.append((display_name(rel), "linked folder already scanned (a link loop or a second link)"))
            dirnames[:] = []
            continue
        if rel.parts and _holds(os.path.realpath(dirpath), real_root):
            skipped.append((display_name(rel), "linked folder holds the data folder (a link to a folder above "
                                               "it): not followed"))
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        label = display_name(rel.parts[0]) if rel.parts else ""
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            if not is_image_path(p):
                skipped.append((display_name(p.relative_to(root)), suffix_reason(p)))
                continue
            why = file_problem(p)
            if why:
                skipped.append((display_name(p.relative_to(root)), why))
                continue
            files.append((p, label))
    names = sorted({lab for _, lab in files})
    if names != [""] and "" in names:
        # loose files beside class folders get their own class, named after the root
        root_name = display_name(root.name)
        names = [n if n else root_name for n in names]
        files = [(p, lab if lab else root_name) for p, lab in files]
        names = sorted(set(names))
    return files, skipped, names


def _holds(folder: str, inner: str) -> bool:
    """Whether real path `folder` is `inner` or one of the folders above it."""
    try:
        return os.path.commonpath([folder, inner]) == folder
    except ValueError:   # different drives (Windows)
        return False


def _to_rgb_array(img: Image.Image) -> tuple[np.ndarray, bool]:
    """uint8 H,W,3 array and whether the source was grayscale."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (and 32-bit integer) grey: scaled by the full 16-bit range, never by the image's own
        # values (an all-255 16-bit image is nearly black, not white)
        arr = np.clip(np.asarray(img).astype(np.float64), 0, 65535) * (255.0 / 65535.0)
        g = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), True
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img).astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        hi = arr.max() if arr.size else 1.0
        arr = arr * (255.0 if hi <= 1.0 else 1.0)
        g = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2), True
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        gray = mode.startswith("L")
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent areas become white
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB")), gray
    if mode in ("L", "1"):
        g = np.asarray(img.convert("L"))
        return np.repeat(g[..., None], 3, axis=2), True
    return np.asarray(img.convert("RGB")), False  # RGB, CMYK, YCbCr, LAB, HSV


def _open_regular(path: Path):
    """`path` opened for binary reading, only if it is a non-empty regular file: checked before
    opening (a device is never opened) and again on the open file (it may have been swapped).
    O_NONBLOCK: even a FIFO slipped in between cannot block the open."""
    why = file_problem(path)
    if why:
        raise UnusableFile(why)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise UnusableFile(f"cannot be read ({os_reason(e)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnusableFile(NOT_REGULAR)
        if st.st_size == 0:
            raise UnusableFile(EMPTY_FILE)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def load_image(path: Path, resolution: int) -> tuple[np.ndarray, bool]:
    """Decode one file to uint8 res x res x 3 (shorter side resized, center-cropped).
    Raises ValueError with a short reason for anything unusable."""
    arr, gray = decode_image(path, draft=resolution * 2)
    pil = Image.fromarray(arr, "RGB")
    pil = ImageOps.fit(pil, (resolution, resolution), Image.LANCZOS, centering=(0.5, 0.5))
    return np.asarray(pil), gray


def decode_image(path: Path, draft: int | None = None) -> tuple[np.ndarray, bool]:
    """Decode one file at its own size to uint8 H x W x 3 (and whether it was greyscale); a JPEG
    may be decoded at a reduced size no smaller than `draft` pixels a side. Raises UnusableFile (a
    ValueError) with a plain reason for anything unusable."""
    with _open_regular(Path(path)) as fp, _quiet_bomb_warnings():
        try:
            return _decode(fp, draft)
        except Exception as e:   # Pillow's many complaints, put in plain words
            raise UnusableFile(plain_reason(e, _first_bytes(fp))) from None


def _decode(fp, draft: int | None) -> tuple[np.ndarray, bool]:
    with Image.open(fp) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:   # refused from the header, before the pixels are decoded
            raise UnusableFile(too_large())
        if w < 1 or h < 1:
            raise UnusableFile("empty image (no pixels)")
        if img.format == "JPEG" and draft:
            img.draft("RGB", (draft, draft))  # decode big JPEGs at reduced size
        img.load()
        return _to_rgb_array(ImageOps.exif_transpose(img))


def _first_bytes(fp, n: int = 16) -> bytes:
    try:
        fp.seek(0)
        return fp.read(n)
    except (OSError, ValueError):
        return b""


class _quiet_bomb_warnings:
    """Silences Pillow's DecompressionBombWarning (MAX_PIXELS, checked from the header, is the
    limit that counts). Only the main thread changes the process-wide warning filters:
    warnings.catch_warnings is not thread-safe, and load_folder already holds it around its pool."""

    def __enter__(self):
        self._cw = None
        if threading.current_thread() is threading.main_thread():
            self._cw = warnings.catch_warnings()
            self._cw.__enter__()
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return self

    def __exit__(self, *exc):
        if self._cw is not None:
            self._cw.__exit__(*exc)
        return False


def load_folder(path: str, resolution: int, max_images: int = 0):
    """uint8 images (N,H,W,3), labels, class names, skipped list, all-grayscale flag, files seen."""
    root = Path(path).expanduser()
    shown = display_name(root)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise DataError(f"{shown}: folder not found") from None
    except OSError as e:
        raise DataError(f"{shown}: cannot open the folder ({os_reason(e)})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"{shown}: not a folder")
    files, skipped, names = scan_folder(root)
    if not files and not skipped:
        raise DataError(f"{shown}: the folder is empty")
    if not files:
        if all(_skipped_by_name(why) for _, why in skipped):
            raise DataError(f"{shown}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)}); "
                            f"{skipped_summary(skipped, len(skipped))}")
        raise DataError(f"{shown}: no readable image files ({skipped_summary(skipped, len(skipped))})")
    scanned = len(skipped)
    if max_images:
        files = files[:max_images]
    scanned += len(files)
    with _quiet_bomb_warnings(), ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(lambda fl: _try_load(fl[0], resolution), files))
    images, labels, grays = [], [], []
    index = {n: i for i, n in enumerate(names)}
    for (p, lab), res in zip(files, results):
        if isinstance(res, str):
            skipped.append((display_name(p.relative_to(root)), res))
            continue
        images.append(res[0])
        grays.append(res[1])
        labels.append(index[lab])
    if not images:
        raise DataError(f"{shown}: none of the {len(files)} image file(s) could be read "
                        f"({skipped_summary(skipped, scanned)})")
    used = sorted(set(labels))
    if len(used) < len(names):  # a class folder whose images were all broken
        remap = {old: new for new, old in enumerate(used)}
        names = [names[i] for i in used]
        labels = [remap[x] for x in labels]
    if names == [""]:
        names = [display_name(root.name) or "images"]
    return np.stack(images), np.asarray(labels, np.int64), names, skipped, all(grays), scanned


def _try_load(path: Path, resolution: int):
    try:
        return load_image(path, resolution)
    except Exception as e:  # a decoder bug must not lose the whole folder
        return plain_reason(e)


def preview_folder(path: str, n: int, size: int, seed: int = 0, max_images: int = 0,
                   grey: bool = False) -> np.ndarray:
    """Up to n images of a folder (of its first max_images, as load_folder takes them), picked at
    random (seeded, across all classes) and decoded at size x size for a person to look at: uint8
    (k, size, size, 3), or 1 channel with `grey`. Files that cannot be read are passed over; only
    the picked files are decoded, so a large folder costs no more than a small one."""
    files, _, _ = scan_folder(Path(path).expanduser())
    files = files[:max_images] if max_images else files
    order = np.random.default_rng(seed).permutation(len(files))
    images = []
    for i in order[:4 * n]:   # enough tries for a folder with many broken files, never all of them
        res = _try_load(files[i][0], size)
        if not isinstance(res, str):
            images.append(res[0])
        if len(images) == n:
            break
    out = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return _luma(out) if grey else out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) to (..., 1) grey, weighted as the datasets' 'grayscale' colour mode."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def _by_reason(skipped: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(reason, files) groups, the most common reason first (ties: the first seen first)."""
    groups: dict[str, list[str]] = {}
    for file, why in skipped:
        groups.setdefault(why, []).append(file)
    return sorted(groups.items(), key=lambda g: -len(g[1]))


def skipped_summary(skipped: list[tuple[str, str]], scanned: int, names: int = 3) -> str:
    """'skipped 3 of 10 files — 2 not an image: a.txt, b.png; 1 file is truncated: cut.png':
    the counts by plain reason, each with its first few file names."""
    parts = []
    for why, files in _by_reason(skipped):
        shown = ", ".join(files[:names]) + (f" and {len(files) - names} more" if len(files) > names else "")
        parts.append(f"{len(files)} {why}: {shown}")
    return f"skipped {len(skipped)} of {scanned} file{'' if scanned == 1 else 's'} — " + "; ".join(parts)


def skipped_warning(root: str, skipped: list[tuple[str, str]], scanned: int) -> str:
    """The one-line warning a run or a preview gives for a folder's skipped files."""
    return f"{display_name(root)}: {skipped_summary(skipped, scanned)}"
