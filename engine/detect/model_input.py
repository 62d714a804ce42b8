"""Images as a generative checkpoint takes them, for the checks that run one (DIRE, Tree-Ring, zeroshot,
aeroblade).

The rule: an image of the model's size and colour passes unchanged (a model's own PNG samples come
back bit for bit); any other is centre-cropped to a square on its shorter side, then resized to the
model's resolution with area averaging when shrinking (no aliasing) and bicubic when enlarging; a
grey model gets the BT.601 luminance, rounded to 8 bits as the data pipeline does. Pixels map to
[-1, 1] as in training."""
from __future__ import annotations

import numpy as np
import torch

from engine.detect.image import as_rgb, luminance


def square_resized(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 side x side x 3: the centred square of the image on its shorter side, resized."""
    import cv2
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    sq = rgb[y:y + s, x:x + s]
    if s == side:
        return np.ascontiguousarray(sq)
    interp = cv2.INTER_AREA if s > side else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(sq), (side, side), interpolation=interp)


def resize_rule(image: np.ndarray, side: int) -> str:
    """A few words on what model_input did to the image, for a check's details."""
    h, w = image.shape[:2]
    if (h, w) == (side, side):
        return "as is"
    s = min(h, w)
    how = "area-averaged" if s > side else "bicubic"
    crop = f"centre {s}x{s} of {w}x{h}, " if h != w else ""
    return f"{crop}{how} to {side}x{side}"


def resized_words(image: np.ndarray, side: int) -> str:
    """'' when the model saw the image at its own size, else a clause saying what was done to it."""
    rule = resize_rule(image, side)
    return "" if rule == "as is" else f" (the model saw it {rule})"


def model_input(image: np.ndarray, channels: int, side: int) -> torch.Tensor:
    """(1, channels, side, side) float32 in [-1, 1] of a uint8 image, by the rule above."""
    sq = square_resized(image, side)
    if channels == 1:
        px = np.round(luminance(sq))[None]
    elif channels == 3:
        px = sq.transpose(2, 0, 1).astype(np.float64)
    else:
        raise ValueError(f"a model with {channels} channels cannot take an RGB image")
    return torch.from_numpy(px / 127.5 - 1).float()[None]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, H, W, 3) of model images (N, C, H, W) in [-1, 1] (grey repeated to RGB)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
