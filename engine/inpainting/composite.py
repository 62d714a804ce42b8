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


LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # ITU-R 601, as Pillow's "L"


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """H×W×C float image converted to 1 (ITU-R 601 luma, as Pillow's "L") or 3 channels."""
    c = img.shape[2]
    if c == channels:
        return img
    if channels == 1:
        return (img[..., :3] @ LUMA)[..., None].astype(np.float32)
    return np.repeat(img[..., :1], 3, axis=2)


def colour_guide(image: np.ndarray, mask: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """The colour image with the hole (mask >= 0.5) filled by OpenCV's Telea fill: the colours
    around the mask carried into it. A greyscale model's fill takes its colour from this."""
    from engine.inpainting.classical import classical_fill
    filled = classical_fill(to_uint8(image), mask, "telea", radius).astype(np.float32) / 255.0
    hole = (mask >= 0.5)[..., None]
    return np.where(hole, filled, image)   # outside the hole: the image itself, not its 8-bit copy


def in_image_channels(fill: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """A model's fill (H×W×Cm) in the channels of the image it goes into, whose pixels over the
    same area are `guide` (H×W×C; for a colour image, its colour_guide).

    A grey fill in a colour image keeps its light and shade and takes the hue and saturation of
    the colours around the hole: each channel of the guide is shifted by the fill's luma minus the
    guide's, so the result's luma is the model's (up to clipping) and its chroma the guide's. (A
    grey patch, the fill copied to three channels, would stand out in a colour photo.) A colour
    fill in a greyscale image becomes its luma, so the image stays greyscale."""
    cm, c = fill.shape[2], guide.shape[2]
    if cm == c:
        return fill
    if cm == 1:
        shift = fill - (guide @ LUMA)[..., None]
        return np.clip(guide + shift, 0.0, 1.0).astype(np.float32)
    return to_channels(fill, 1)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
