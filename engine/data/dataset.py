"""An in-memory image dataset and a resumable, seeded batch order."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


class DataError(ValueError):
    """A dataset cannot be built. The message names the source and the problem."""


FEW_IMAGES = 100   # below this, any generative model learns the images by heart rather than their kind


def too_few_images_warning(images: int, batch_size: int | None = None, params: int | None = None) -> str:
    """A plain warning when a dataset is far too small for a generative model ('' when it is not):
    fewer images than one batch, or under FEW_IMAGES whatever the model."""
    if not (images < FEW_IMAGES or (batch_size and images < batch_size)):
        return ""
    count = f"{images:,} image{'' if images == 1 else 's'}"
    if batch_size and images < batch_size:
        count += f", fewer than one batch of {batch_size:,}"
    if params:
        count += f", for a model of {params / 1e6:.1f}M parameters"
    return (f"{count}: far too few to train a generative model — it will memorise them; "
            f"aim for a few hundred or more")


def preview_size(resolution: int) -> int:
    """Pixels a side at which a dataset preview shows each image: large enough for a person to see
    (never the 16-pixel training size), small enough that a grid of them fits a panel."""
    return max(64, min(resolution, 128))


@dataclass
class ImageData:
    images: torch.Tensor          # N, C, H, W uint8 (kept as bytes: 4x smaller than float)
    labels: torch.Tensor          # N int64
    class_names: list[str]
    name: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) for folders
    scanned: int = 0              # files looked at (folders)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("images must be a uint8 tensor N,C,H,W")
        if len(self.labels) != len(self.images):
            raise ValueError("one label per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def float_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Images at idx as float32 in [-1, 1]."""
        return self.images[idx].float().div_(127.5).sub_(1.0)

    def subset(self, idx: torch.Tensor) -> "ImageData":
        return ImageData(self.images[idx], self.labels[idx], self.class_names, self.name, self.skipped, self.scanned)

    def split(self, fraction: float, seed: int) -> tuple["ImageData", "ImageData | None"]:
        """(training images, held-out images): a fixed, seeded `fraction` kept out of training
        (at least one image of each when both are asked for). fraction 0: (self, None)."""
        if fraction <= 0 or len(self) < 2:
            return self, None
        k = min(len(self) - 1, max(1, round(len(self) * fraction)))
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(int(seed)))
        held, kept = perm[:k].sort().values, perm[k:].sort().values   # sorted: the data's own order
        return self.subset(kept), self.subset(held)

    def info(self) -> dict:
        return {"name": self.name, "images": len(self), "channels": self.channels,
                "resolution": self.resolution, "classes": self.class_names,
                "skipped": len(self.skipped)}


def to_uint8_nchw(arr: np.ndarray) -> torch.Tensor:
    """N,H,W or N,H,W,C arrays in [0,1] float or uint8 -> uint8 N,C,H,W."""
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[:, None]
    else:
        arr = arr.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(arr))


class BatchOrder:
    """Shuffled epochs of indices, derived from (seed, epoch): its whole state is two integers,
    so resuming a run continues the exact same batch sequence."""

    def __init__(self, n: int, batch_size: int, seed: int, hflip: bool = False):
        self.n, self.batch_size, self.seed, self.hflip = n, batch_size, seed, hflip
        self.epoch, self.pos = 0, 0
        self._perm = self._flips = None

    def _make_epoch(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self._perm = torch.randperm(self.n, generator=g)
        self._flips = torch.rand(self.n, generator=g) < 0.5 if self.hflip else None

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Indices of the next batch and, with hflip, which of them to mirror."""
        idx, flips = [], []
        need = self.batch_size
        while need:
            if self._perm is None:
                self._make_epoch()
            take = min(need, self.n - self.pos)
            idx.append(self._perm[self.pos:self.pos + take])
            if self._flips is not None:
                flips.append(self._flips[self.pos:self.pos + take])
            self.pos += take
            need -= take
            if self.pos == self.n:
                self.epoch, self.pos, self._perm = self.epoch + 1, 0, None
        return torch.cat(idx), (torch.cat(flips) if flips else None)

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, s: dict) -> None:
        self.epoch, self.pos, self._perm = int(s["epoch"]), int(s["pos"]), None
        if self.pos:
            self._make_epoch()
