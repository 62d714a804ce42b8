"""Which square of an image the model works on. A model works at its own resolution (8–64 px
here), while a dropped photo may be 512 px; the region is cut out, resized to the model's size,
inpainted, and pasted back. The GUI draws the same region as a frame on the mask editor."""
from __future__ import annotations

import numpy as np

FITS = ("resize", "crop", "masked")
FIT_HELP = {"resize": "the whole image, resized to the model's square (a non-square image is squeezed)",
            "crop": "the central square of the image; mask outside it is left unchanged",
            "masked": "only the masked area: a square around the mask plus padding, at the model's "
                      "resolution, pasted back with a feathered edge (sharpest for a small mask on a large image)"}

Region = tuple[int, int, int, int]   # x0, y0, x1, y1 (x1, y1 exclusive), in image pixels


def mask_bbox(mask: np.ndarray, threshold: float = 0.0) -> Region | None:
    """The bounding box of mask > threshold, or None for an empty mask."""
    ys, xs = np.nonzero(mask > threshold)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def work_region(mask: np.ndarray, fit: str = "resize", padding: int = 8) -> Region:
    """The region of an image (whose H×W mask is given) that the model works on.

    resize: the whole image; crop: its central square; masked: the smallest square holding the
    mask's bounding box grown by `padding` pixels on every side, moved inside the image (at most
    the image's shorter side)."""
    if fit not in FITS:
        raise ValueError(f"fit = {fit!r}: choose one of {', '.join(FITS)}")
    h, w = mask.shape[:2]
    if fit == "resize":
        return 0, 0, w, h
    if fit == "crop":
        side = min(h, w)
        x0, y0 = (w - side) // 2, (h - side) // 2
        return x0, y0, x0 + side, y0 + side
    box = mask_bbox(mask)
    if box is None:
        raise ValueError("the mask is empty: paint over the part of the image to regenerate")
    bx0, by0, bx1, by1 = box
    side = min(max(bx1 - bx0, by1 - by0) + 2 * max(0, int(padding)), min(h, w))
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    x0 = min(max(0, x0), w - side)
    y0 = min(max(0, y0), h - side)
    return x0, y0, x0 + side, y0 + side


def mask_outside(mask: np.ndarray, region: Region) -> bool:
    """Whether any of the mask lies outside the region (that part cannot be regenerated)."""
    x0, y0, x1, y1 = region
    inside = np.zeros(mask.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    return bool((mask[~inside] > 0).any())
