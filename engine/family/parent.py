"""A parent checkpoint as a family sees it: the frozen model (never trained, never saved into the
child's weights), where it came from and a content hash of its weights file; and the dataset
encoded by it once, cached in the child's run folder.

Loading and checking a parent (missing, wrong family, changed since the child trained on it) is
engine/training/parent.py's job: it hands the family a Parent."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.core.util import atomic_write_bytes

ENCODED_DIR = "encoded"    # the child run's folder of cached encodings


@dataclass
class Parent:
    family: Any            # the parent's Family, frozen (eval mode, no gradients)
    path: Path             # its checkpoint (.safetensors)
    sha256: str            # of that file's bytes: a changed parent is caught by it
    family_name: str
    step: int
    run: Path | None = None   # the run folder holding it, when there is one

    def record(self) -> dict:
        """What a child's checkpoint and run remember of it."""
        return {"path": str(self.path), "sha256": self.sha256, "family": self.family_name, "step": self.step,
                "run": str(self.run) if self.run else None}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def freeze(family: Any) -> Any:
    """No gradients and eval mode for every network (and average) of a parent: it only encodes
    and decodes."""
    for nets in (family.networks, family.ema):
        if nets is not None:
            nets.requires_grad_(False).eval()
    return family


def encoding_key(parent: Parent, data_config: dict, what: str) -> str:
    """The cache key of a dataset encoded by a parent: its weights' hash, the data section and
    what was encoded (e.g. "mean" or "mean+flipped")."""
    blob = json.dumps({"parent": parent.sha256, "data": data_config, "what": what}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_encoding(cache_dir: Path, key: str, encode: Callable[[], dict[str, torch.Tensor]]
                    ) -> tuple[dict[str, torch.Tensor], bool]:
    """The tensors `encode()` gives, computed once and kept in cache_dir/<key>.safetensors (written
    atomically); later calls (a resumed run) read the file. Returns (tensors, read_from_cache). A
    file that cannot be read is encoded again and replaced."""
    path = Path(cache_dir) / f"{key}.safetensors"
    if path.is_file():
        try:
            return st_load(path.read_bytes()), True
        except Exception:  # noqa: BLE001 - safetensors' own error types; a broken cache is rebuilt
            pass
    tensors = {k: v.detach().cpu().contiguous() for k, v in encode().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, st_save(tensors))
    return tensors, False
