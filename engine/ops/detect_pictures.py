"""The pictures the detection op writes for a canvas or a report to show: a small preview of each
image, and each check's map as a colour PNG (a copy-move map as a red overlay on the image). Small:
at most PREVIEW_SIDE pixels a side, so a table of many images stays light to show and embed."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PREVIEW_SIDE = 512
OVERLAY_CHECKS = ("copymove",)      # maps that mark regions of the image: drawn over it


def shrink(a: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """At most `side` pixels a side (area-averaged), the aspect kept."""
    h, w = a.shape[:2]
    k = side / max(h, w)
    if k >= 1:
        return a
    return cv2.resize(a, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def to_unit(m: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] between its 1st and 99th percentiles (one hot pixel does not grey out
    the rest; a signed residual keeps its sign's contrast)."""
    m = np.nan_to_num(np.asarray(m, np.float64))
    lo, hi = np.percentile(m, [1, 99])
    if hi <= lo:
        lo, hi = float(m.min()), float(m.max())
    if hi <= lo:
        return np.zeros_like(m)
    return np.clip((m - lo) / (hi - lo), 0, 1)


def map_rgb(check: str, m: np.ndarray, image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 RGB of a check's map: a colour scale, or the image with the marked regions red."""
    if check in OVERLAY_CHECKS:
        mask = np.clip(np.asarray(m, np.float32), 0, 1)
        if mask.shape != image.shape[:2]:
            mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        red = np.zeros_like(image)
        red[..., 0] = 255
        a = 0.55 * mask[..., None]
        return (image * (1 - a) + red * a).astype(np.uint8)
    grey = (to_unit(m) * 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1]


def write_png(path: Path, rgb: np.ndarray) -> str:
    from engine.core.util import atomic_write_bytes
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(shrink(rgb)[..., ::-1]))
    if not ok:
        raise ValueError(f"{path}: could not encode the PNG")
    atomic_write_bytes(path, buf.tobytes())
    return str(path)
