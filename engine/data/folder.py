"""Any folder of images: subfolders become class labels. Bad files are skipped and counted, each
with a reason (not an image, not a regular file, empty, unreadable, too large, undecodable), so one
bad entry can neither stop nor hang the load: only regular files are opened (a named pipe or a
device called x.png is never read). Odd modes (palette, alpha, 16-bit, CMYK) convert correctly, and
oversized images are refused from their header, before they are decoded. File names that are not
valid UTF-8 are loaded, and shown with their odd bytes escaped (\\xe9)."""
from __future__ import annotations

import errno
import os
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.dataset import DataError
from engine.imageformats import IMAGE_SUFFIXES, is_image_path

MAX_PIXELS = int(os.environ.get("GENLAB_MAX_IMAGE_PIXELS", 64_000_000))  # e.g. 8000 x 8000
NOT_AN_IMAGE = "not an image file"
NOT_REGULAR = "not a regular file"


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
    return (e.strerror or type(e).__name__).lower()


def file_problem(path: Path) -> str | None:
    """Why `path` is not a file worth opening (None when it is a non-empty regular file). Follows
    symbolic links but opens nothing, so a FIFO or a device is never touched."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "broken symbolic link" if os.path.islink(path) else "file not found"
    except OSError as e:
        return f"cannot read file ({os_reason(e)})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return NOT_REGULAR
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def scan_folder(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[str, str]], list[str]]:
    """(image files with their class name, skipped (file, reason), class names). Linked folders are
    followed, each real folder once (a link loop is skipped with a reason, not walked forever)."""
    files, skipped = [], []
    seen: set[tuple[int, int]] = set()

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
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        label = display_name(rel.parts[0]) if rel.parts else ""
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            if not is_image_path(p):
                skipped.append((display_name(p.relative_to(root)), NOT_AN_IMAGE))
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
        raise ValueError(why)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise ValueError(f"cannot read file ({os_reason(e)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(NOT_REGULAR)
        if st.st_size == 0:
            raise ValueError("empty file (0 bytes)")
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
    may be decoded at a reduced size no smaller than `draft` pixels a side. Raises ValueError with
    a short reason for anything unusable."""
    with _open_regular(Path(path)) as fp, _quiet_bomb_warnings():
        try:
            img = Image.open(fp)
        except Image.DecompressionBombError:
            raise ValueError(f"image too large to decode safely (the limit is {MAX_PIXELS:,} pixels)") from None
        except UnidentifiedImageError:
            raise ValueError("cannot read image (not a recognised image format, or a damaged header)") from None
        except OSError as e:
            raise ValueError(f"cannot read image ({os_reason(e)})") from None
        except (SyntaxError, ValueError) as e:
            raise ValueError(f"cannot read image ({type(e).__name__})") from None
        with img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"image too large ({w}x{h} pixels; the limit is {MAX_PIXELS:,})")
            if w < 1 or h < 1:
                raise ValueError("empty image")
            try:
                if img.format == "JPEG" and draft:
                    img.draft("RGB", (draft, draft))  # decode big JPEGs at reduced size
                img.load()
                img = ImageOps.exif_transpose(img)
                arr, gray = _to_rgb_array(img)
            except Image.DecompressionBombError:
                raise ValueError(f"image too large to decode safely (the limit is {MAX_PIXELS:,} pixels)") from None
            except (OSError, SyntaxError, ValueError) as e:
                raise ValueError(f"cannot decode image ({type(e).__name__}: {e})"[:120]) from None
    return arr, gray


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
        if all(why == NOT_AN_IMAGE for _, why in skipped):
            raise DataError(f"{shown}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)}); "
                            f"{len(skipped)} other file(s) ignored")
        first = "; ".join(f"{f}: {why}" for f, why in skipped[:3])
        raise DataError(f"{shown}: no readable image files ({first})")
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
        first = "; ".join(f"{f}: {why}" for f, why in skipped[:3])
        raise DataError(f"{shown}: none of the {len(files)} image file(s) could be read ({first})")
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
    except ValueError as e:
        return str(e)
    except Exception as e:  # a decoder bug must not lose the whole folder
        return f"cannot read image ({type(e).__name__})"


def skipped_warning(root: str, skipped: list[tuple[str, str]], scanned: int) -> str:
    shown = ", ".join(f"{f} ({why})" for f, why in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"{display_name(root)}: skipped {len(skipped)} of {scanned} file(s): {shown}{more}"
