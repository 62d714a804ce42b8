"""Fills that need no model: OpenCV's fast-marching method (Telea 2004) and its Navier-Stokes
method (Bertalmio et al. 2001). Useful before anything is trained, and a point of comparison."""
from __future__ import annotations

import cv2
import numpy as np

from engine.inpainting import CLASSICAL_METHODS

_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def classical_fill(image: np.ndarray, mask: np.ndarray, method: str = "telea", radius: float = 3.0) -> np.ndarray:
    """image uint8 H×W×C (C = 1 or 3); mask float H×W, pixels >= 0.5 are filled. Returns uint8
    H×W×C whose unmasked pixels are the input's."""
    if method not in _FLAGS:
        raise ValueError(f"unknown classical method {method!r}; choose one of {', '.join(CLASSICAL_METHODS)}")
    hole = (mask >= 0.5).astype(np.uint8) * 255
    src = image[..., 0] if image.shape[2] == 1 else image
    out = cv2.inpaint(np.ascontiguousarray(src), hole, float(radius), _FLAGS[method])
    return out[..., None] if out.ndim == 2 else out
