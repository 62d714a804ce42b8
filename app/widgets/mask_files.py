"""Mask files for the mask editor, without widgets: reading a mask image, writing one as PNG, and
telling masks from images among dropped or pasted files. Convention: white = regenerate."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from app.widgets.image_io import IMAGE_SUFFIXES, read_image
from app.widgets.mask_paint import to_uint8_mask

IMAGE_FILTER = f"Images ({' '.join('*' + s for s in IMAGE_SUFFIXES)})"


def read_mask_file(path) -> tuple[np.ndarray | None, str]:
    """A grey (or colour: its luma) mask image as float32 in [0, 1]; transparent pixels count as
    keep. Returns (mask, "") or (None, a message naming the file)."""
    img, alpha, err = read_image(path)
    if err:
        return None, err
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    m = grey.astype(np.float32) / 255.0
    if alpha is not None:
        m *= alpha.astype(np.float32) / 255.0
    return m, ""


def write_mask_png(path, mask: np.ndarray) -> None:
    """The mask as an 8-bit grey PNG, written to a .part file renamed over the target, so a failed
    save leaves no half-written mask. Never creates folders; raises OSError."""
    p = Path(path)
    ok, buf = cv2.imencode(".png", to_uint8_mask(mask))
    tmp = p.with_name(p.name + ".part")
    try:
        if not ok:
            raise OSError("PNG encoding failed")
        buf.tofile(str(tmp))
        os.replace(tmp, p)
    except OSError:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise


def is_mask_name(path) -> bool:
    """A dropped file whose name says "mask" loads as the mask, anything else as the image."""
    return "mask" in Path(path).name.lower()


def images_then_masks(paths) -> list[str]:
    """Images first, so a dropped image + mask pair sets the size before the mask arrives."""
    return sorted(map(str, paths), key=is_mask_name)


def local_files(mime) -> list[str]:
    """The local file paths a QMimeData (a drop or the clipboard) carries, if any."""
    if mime is None or not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
