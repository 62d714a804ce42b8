"""Images as the checks take them: uint8 H x W x 3 RGB arrays, and their luminance."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def load_rgb(path: str | Path) -> np.ndarray:
    """A file decoded at its own size to uint8 H x W x 3 RGB. Raises ValueError with a plain reason
    for anything unusable (engine.data.folder's decoder: the same reasons the data panel gives)."""
    from engine.data.folder import decode_image
    return decode_image(Path(path))[0]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 from H x W (grey) or H x W x 3/4 uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 image, got shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


def luminance(image: np.ndarray) -> np.ndarray:
    """float64 H x W in [0, 255] (ITU-R BT.601 weights)."""
    a = as_rgb(image).astype(np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
