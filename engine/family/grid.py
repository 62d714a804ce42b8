"""Image grids as PNG."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.core.util import atomic_write_bytes


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, ncol: int | None = None, pad: int = 1, scale: int = 1) -> Image.Image:
    arr = to_uint8(images)
    n, h, w, c = arr.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255 if c == 1 else 40, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y:y + h, x:x + w] = arr[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas, "L" if c == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def grid_columns(n: int, num_classes: int) -> int:
    if 1 < num_classes <= 16 and n >= num_classes:
        return num_classes
    return math.ceil(math.sqrt(n))


def sample_images(family, n: int, *, seed: int, cls: int | None = None, progress=None, cancel=None,
                  **sample_kwargs) -> tuple[torch.Tensor, list[int] | None]:
    """n images (N, C, H, W) in [-1, 1] from a family, all of class `cls` or one class per column,
    and their labels (None: unconditional); sample_kwargs go to family.sample (options, use_ema).
    Drawn as one batch; image i depends on seed + i and its label alone (the family contract,
    Family.generate), so a gallery image is made again from its seed."""
    labels = family.labels_for(n, cls)
    imgs = family.sample(n, seed=seed, labels=labels, progress=progress, cancel=cancel, **sample_kwargs)
    return imgs, labels


def sample_grid_image(family, n: int, *, seed: int, cls: int | None = None, scale: int = 1,
                      **sample_kwargs) -> Image.Image:
    """Sample n images from a family (all of class `cls`, or one class per column) as a grid;
    sample_kwargs go to sample_images (options, use_ema, progress, cancel)."""
    imgs, _ = sample_images(family, n, seed=seed, cls=cls, **sample_kwargs)
    return make_grid(imgs, grid_columns(n, grid_classes(family, cls)), scale=scale)


def grid_classes(family, cls: int | None) -> int:
    """How many classes a grid lays out one per column (0: none, all images are of one class)."""
    return len(family.class_names) if (family.is_conditional and cls is None) else 0
