"""Any folder of images: subfolders become class labels. Bad files are skipped and counted, odd
modes (palette, alpha, 16-bit, CMYK) convert correctly, and oversized images are refused from
their header, before they are decoded."""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from engine.data.dataset import DataError
from engine.imageformats import IMAGE_SUFFIXES, is_image_path

MAX_PIXELS = int(os.environ.get("GENLAB_MAX_IMAGE_PIXELS", 64_000_000))  # e.g. 8000 x 8000


def scan_folder(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[str, str]], list[str]]:
    """(image files with their class name, skipped (file, reason), class names)."""
    files, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        label = rel.parts[0] if rel.parts else ""
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            if is_image_path(p):
                files.append((p, label))
            else:
                skipped.append((str(p.relative_to(root)), "not an image file"))
    names = sorted({lab for _, lab in files})
    if names != [""] and "" in names:
        # loose files beside class folders get their own class, named after the root
        names = [n if n else root.name for n in names]
        files = [(p, lab if lab else root.name) for p, lab in files]
        names = sorted(set(names))
    return files, skipped, names


def _to_rgb_array(img: Image.Image) -> tuple[np.ndarray, bool]:
    """uint8 H,W,3 array and whether the source was grayscale."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "F":
            hi = arr.max() if arr.size else 1.0
            arr = arr * (255.0 if hi <= 1.0 else 1.0)
        elif arr.max() > 255:
            arr = arr / 257.0  # 16-bit full range to 8-bit
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


def load_image(path: Path, resolution: int) -> tuple[np.ndarray, bool]:
    """Decode one file to uint8 res x res x 3 (shorter side resized, center-cropped).
    Raises ValueError with a short reason for anything unusable."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError:
            raise ValueError("image too large to decode safely") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
            raise ValueError(f"cannot read image ({type(e).__name__})") from None
        with img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"image too large ({w}x{h} pixels; the limit is {MAX_PIXELS:,})")
            if w < 1 or h < 1:
                raise ValueError("empty image")
            try:
                if img.format == "JPEG":
                    img.draft("RGB", (resolution * 2, resolution * 2))  # decode big JPEGs at reduced size
                img.load()
                img = ImageOps.exif_transpose(img)
                arr, gray = _to_rgb_array(img)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
                raise ValueError(f"cannot decode image ({type(e).__name__}: {e})"[:120]) from None
    pil = Image.fromarray(arr, "RGB")
    pil = ImageOps.fit(pil, (resolution, resolution), Image.LANCZOS, centering=(0.5, 0.5))
    return np.asarray(pil), gray


def load_folder(path: str, resolution: int, max_images: int = 0):
    """uint8 images (N,H,W,3), labels, class names, skipped list, all-grayscale flag, files seen."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files, skipped, names = scan_folder(root)
    if not files and not skipped:
        raise DataError(f"{root}: the folder is empty")
    if not files:
        raise DataError(f"{root}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)}); "
                        f"{len(skipped)} other file(s) ignored")
    if max_images:
        files = files[:max_images]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        results = list(pool.map(lambda fl: _try_load(fl[0], resolution), files))
    images, labels, grays = [], [], []
    index = {n: i for i, n in enumerate(names)}
    for (p, lab), res in zip(files, results):
        if isinstance(res, str):
            skipped.append((str(p.relative_to(root)), res))
            continue
        images.append(res[0])
        grays.append(res[1])
        labels.append(index[lab])
    if not images:
        first = "; ".join(f"{f}: {why}" for f, why in skipped[:3])
        raise DataError(f"{root}: none of the {len(files)} image file(s) could be read ({first})")
    used = sorted(set(labels))
    if len(used) < len(names):  # a class folder whose images were all broken
        remap = {old: new for new, old in enumerate(used)}
        names = [names[i] for i in used]
        labels = [remap[x] for x in labels]
    if names == [""]:
        names = [root.name or "images"]
    return (np.stack(images), np.asarray(labels, np.int64), names, skipped, all(grays),
            len(files) + sum(1 for _, why in skipped if why == "not an image file"))


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
    return f"{root}: skipped {len(skipped)} of {scanned} file(s): {shown}{more}"
