"""Feathered masks and the composite that pastes generated pixels back into the original image.
Images here are float32 H×W×C in [0, 1]; masks float32 H×W in [0, 1], 1 = regenerate."""
from __future__ import annotations

import cv2
import numpy as np

from engine.inpainting.geometry import Region


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """The mask with its edge blurred over `radius` pixels each way (a Gaussian of sigma radius/2
    cut off at the radius), so a pixel farther than the radius from the mask keeps weight exactly 0
    and one deeper inside it exactly 1. radius 0: the mask as it is."""
    mask = np.clip(mask.astype(np.float32), 0.0, 1.0)
    r = int(np.ceil(radius))
    if r <= 0:
        return mask
    k = 2 * r + 1
    out = cv2.GaussianBlur(mask, (k, k), sigmaX=max(radius / 2.0, 0.3), borderType=cv2.BORDER_REPLICATE)
    out[out < 1e-6] = 0.0          # the kernel's far taps leave float dust; keep "far away" exactly 0
    out[out > 1 - 1e-6] = 1.0
    return out


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """img (H, W[, C]) float32 resized to size = (width, height): area when shrinking (no
    aliasing), bicubic when growing, clipped to [0, 1]."""
    w, h = size
    if img.shape[1] == w and img.shape[0] == h:
        return img.copy()
    shrink = w < img.shape[1] or h < img.shape[0]
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if img.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def cut(img: np.ndarray, region: Region) -> np.ndarray:
    x0, y0, x1, y1 = region
    return img[y0:y1, x0:x1]


def paste(original: np.ndarray, generated: np.ndarray, weight: np.ndarray, region: Region) -> np.ndarray:
    """original with `generated` (the region's pixels, any size: resized to the region) blended in
    by `weight` (H×W over the whole image, 0 outside the region). Where weight is 0 the original
    comes back bit for bit."""
    x0, y0, x1, y1 = region
    out = original.copy()
    gen = resize(generated, (x1 - x0, y1 - y0))
    w = weight[y0:y1, x0:x1, None]
    blended = w * gen + (1.0 - w) * original[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = np.where(w > 0, blended, original[y0:y1, x0:x1])
    return out


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """H×W×C float image converted to 1 (ITU-R 601 luma, as Pillow's "L") or 3 channels."""
    c = img.shape[2]
    if c == channels:
        return img
    if channels == 1:
        return (img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))[..., None].astype(np.float32)
    return np.repeat(img[..., :1], 3, axis=2)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
