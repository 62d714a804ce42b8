"""Image files and QImages as numpy arrays, for the widgets that edit pixels (the mask editor,
the inpainting canvas). cv2 decodes (np.fromfile + imdecode also reads non-ASCII paths on
Windows); every failure is one line naming the file and the problem."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtGui import QImage


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path) -> bool:
    """Whether a file's name says it is an image this GUI reads (what a drop of it should open)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def carries_sample_parameters(path) -> bool:
    """Whether a PNG carries the sampling parameters GenLab writes (a drop restores them in the
    Sample tab); any other image (a photo, an inpainting result), or a file that cannot be read: no."""
    from engine.core.pnginfo import read_png_info
    if Path(path).suffix.lower() != ".png":
        return False
    try:
        meta = read_png_info(path)
    except ValueError:
        return False
    return meta is not None and meta.get("kind") == "sample"


def read_image(path) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(RGB or grey uint8 image, its alpha or None, "") or (None, None, one line naming the
    file and the problem). np.fromfile + imdecode also reads non-ASCII paths on Windows."""
    p = Path(path)
    if not p.is_file():
        return None, None, f"cannot open {p.name}: no such file"
    try:
        data = np.fromfile(str(p), np.uint8)
    except OSError as e:
        return None, None, f"cannot read {p.name}: {e.strerror or e}"
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        return None, None, f"not an image: {p.name}"
    if img.dtype == np.uint16:
        img = np.rint(img / 257.0).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = np.rint(np.clip(np.nan_to_num(img), 0, 1) * 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None, None, f"unsupported pixel type {img.dtype} in {p.name}"
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    alpha = None
    if img.ndim == 3 and img.shape[2] == 4:
        alpha, img = img[..., 3], img[..., :3]
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim != 2:
        return None, None, f"unsupported image layout {img.shape} in {p.name}"
    return np.ascontiguousarray(img), alpha, ""


def qimage_to_array(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8).reshape(h, bpl)[:, :3 * w].reshape(h, w, 3).copy()


def array_to_qimage(arr: np.ndarray) -> QImage:
    """An RGB32 copy (the fastest format to draw scaled)."""
    h, w = arr.shape[:2]
    fmt = QImage.Format_Grayscale8 if arr.ndim == 2 else QImage.Format_RGB888
    return QImage(arr.data, w, h, arr.strides[0], fmt).convertToFormat(QImage.Format_RGB32)
