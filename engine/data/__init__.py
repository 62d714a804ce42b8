"""Datasets, all offline and deterministic: digits, shapes, faces, textures and image folders."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.config import DataConfig
from engine.data.dataset import BatchOrder, DataError, ImageData, to_uint8_nchw

__all__ = ["build_dataset", "ImageData", "DataError", "BatchOrder"]

TEXTURE_SOURCES = ("brick", "grass", "gravel", "coffee", "chelsea", "astronaut", "rocket",
                   "immunohistochemistry", "hubble_deep_field", "moon")


def _resize(images: torch.Tensor, res: int) -> torch.Tensor:
    """uint8 N,C,H,W -> uint8 N,C,res,res (antialiased when shrinking)."""
    if images.shape[-1] == res and images.shape[-2] == res:
        return images
    x = images.float() / 255.0
    shrinking = images.shape[-1] > res
    x = F.interpolate(x, size=(res, res), mode="bicubic" if shrinking else "bilinear",
                      align_corners=False, antialias=shrinking)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _apply_color(images: torch.Tensor, color: str) -> torch.Tensor:
    if color == "grayscale" and images.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if color == "rgb" and images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    return images


def _digits(cfg: DataConfig):
    images, target = digits_arrays()
    imgs = to_uint8_nchw(images.astype(np.float32) / 16.0)
    return imgs, torch.from_numpy(target.astype(np.int64)), [str(i) for i in range(10)]


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (levels 0-16) and their labels, read from the CSV the package
    ships without importing it: `import sklearn` costs 2.4 s, a third of a tiny run's start on a
    2-core CPU. The same arrays as sklearn.datasets.load_digits() (tested); it is the fallback."""
    import gzip
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("sklearn")           # finds the package, does not run it
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.images, d.target


def _shapes(cfg: DataConfig):
    from engine.data.shapes import SHAPES, draw_shapes
    imgs, labels = draw_shapes(cfg.count, cfg.resolution, cfg.seed)
    return to_uint8_nchw(imgs), torch.from_numpy(labels.astype(np.int64)), list(SHAPES)


def _faces(cfg: DataConfig):
    from skimage.data import lfw_subset  # ships with scikit-image: 100 faces then 100 non-faces, 25x25
    faces = lfw_subset()[:100].astype(np.float32)
    return to_uint8_nchw(faces), torch.zeros(len(faces), dtype=torch.int64), ["face"]


def _textures(cfg: DataConfig):
    import skimage.data
    rng = np.random.default_rng(cfg.seed)
    res = cfg.resolution
    photos = []
    for name in TEXTURE_SOURCES:
        a = getattr(skimage.data, name)()
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        photos.append(a[..., :3])
    out = np.empty((cfg.count, 3, res, res), np.uint8)
    labels = rng.integers(len(photos), size=cfg.count)
    for i, src in enumerate(labels):
        a = photos[src]
        h, w = a.shape[:2]
        side = int(rng.integers(min(res, h, w), max(min(res, h, w) + 1, min(h, w) // 2)))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = torch.from_numpy(np.ascontiguousarray(a[y:y + side, x:x + side].transpose(2, 0, 1)))[None]
        out[i] = _resize(crop, res)[0].numpy()
    return torch.from_numpy(out), torch.from_numpy(labels.astype(np.int64)), list(TEXTURE_SOURCES)


def build_dataset(cfg: DataConfig) -> ImageData:
    """Build the dataset a config names. Raises DataError with a clear message."""
    skipped, scanned = [], 0
    if cfg.dataset == "folder":
        from engine.data.folder import load_folder
        arr, labels, names, skipped, all_gray, scanned = load_folder(cfg.path, cfg.resolution, cfg.max_images)
        imgs = to_uint8_nchw(arr)
        if all_gray:
            imgs = imgs[:, :1].contiguous()
        labels = torch.from_numpy(labels)
    else:
        loaders = {"digits": _digits, "shapes": _shapes, "faces": _faces, "textures": _textures}
        if cfg.dataset not in loaders:
            raise DataError(f"unknown dataset {cfg.dataset!r}; choose one of: {', '.join(loaders)}, folder")
        imgs, labels, names = loaders[cfg.dataset](cfg)
        imgs = _resize(imgs, cfg.resolution)
        if cfg.max_images:
            imgs, labels = imgs[:cfg.max_images], labels[:cfg.max_images]
    imgs = _apply_color(imgs, cfg.color)
    name = cfg.path if cfg.dataset == "folder" else cfg.dataset
    return ImageData(imgs.contiguous(), labels, names, name, skipped=skipped, scanned=scanned)
