"""A trained detector's data: real images from a GenLab dataset (built-in or a folder) and
generated ones sampled on demand from GenLab checkpoints of any family, cached per checkpoint (its
file's hash, the count and the seed), then all pushed through one ImagePipeline."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.detect.context import cache_dir
from engine.detect.pipeline import ImagePipeline
from engine.family.progress import check_cancel

SAMPLE_BATCH = 64      # images per family.sample call while drawing fakes


@dataclass
class Source:
    """One source's images at their own size (uint8 N x H x W x C) and where they came from."""
    name: str               # "real" or the generator's label: "gan/step_000002"
    images: np.ndarray
    origin: dict = field(default_factory=dict)

    @property
    def is_real(self) -> bool:
        return self.origin.get("kind") == "real"


def real_source(data: str, count: int, size: int, start: int = 0, seed: int = 0) -> Source:
    """`count` images from a built-in dataset (digits, shapes, faces, textures) or a folder, at
    size x size, from index `start` on (so an evaluation can use images the training did not).
    Raises DataError naming the dataset or folder."""
    from engine.core.config import DATASETS, DataConfig
    from engine.data import DataError, build_dataset
    folder = data not in DATASETS or data == "folder"
    if folder and not Path(data).is_dir():
        raise DataError(f"{data}: neither a built-in dataset ({', '.join(d for d in DATASETS if d != 'folder')}) "
                        f"nor a folder")
    cfg = DataConfig(dataset="folder" if folder else data, path=data if folder else "", resolution=size,
                     count=max(start + count, 1), seed=seed)
    images = build_dataset(cfg).images
    if len(images) <= start:
        raise DataError(f"{data}: {len(images)} images, none left after the first {start}")
    picked = images[start:start + count].permute(0, 2, 3, 1).numpy()
    return Source("real", np.ascontiguousarray(picked),
                  {"kind": "real", "data": data, "start": start, "count": len(picked), "seed": seed})


def checkpoint_hash(checkpoint: str | Path) -> str:
    """The first 16 hex digits of the sha256 of the checkpoint's weights file."""
    from engine.training.checkpoint import checkpoint_paths
    h = hashlib.sha256()
    with open(checkpoint_paths(Path(checkpoint))[0], "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def run_and_step(checkpoint: str | Path) -> str:
    """'RUN/step_000400' of a checkpoint file (its run folder's name; the file's folder's when it is
    not in a run's checkpoints/): what tells checkpoints apart where every file is step_000400."""
    st = Path(checkpoint).with_suffix("")
    run = st.parent.parent if st.parent.name == "checkpoints" else st.parent
    return f"{run.name}/{st.name}"


def fake_source(checkpoint: str | Path, count: int, seed: int = 0, *, use_cache: bool = True, device: str = "cpu",
                progress=None, cancel=None) -> Source:
    """`count` images sampled from a checkpoint (image i from seed + i), read from the cache when
    this checkpoint file, count and seed were sampled before."""
    from engine.training.checkpoint import checkpoint_paths, peek_checkpoint
    st_path = checkpoint_paths(Path(checkpoint))[0]
    meta = peek_checkpoint(checkpoint).meta        # a bad checkpoint is one CheckpointError line here
    family = ((meta.get("config") or {}).get("model") or {}).get("family", "ddpm")
    digest = checkpoint_hash(checkpoint)
    origin = {"kind": "fake", "checkpoint": str(st_path), "hash": digest, "family": family, "count": count,
              "seed": seed}
    name = f"{family}/{run_and_step(st_path)}"
    path = cache_dir() / "fakes" / f"{digest}_{count}_{seed}.safetensors"
    if use_cache:
        cached = _read_cache(path)
        if cached is not None and len(cached) == count:
            if progress:
                progress(count, count)
            return Source(name, cached, {**origin, "cached": True})
    images = _sample(checkpoint, count, seed, device, progress, cancel)
    if use_cache:
        _write_cache(path, images, origin)
    return Source(name, images, {**origin, "cached": False})


def _sample(checkpoint, count: int, seed: int, device: str, progress, cancel) -> np.ndarray:
    import torch

    from engine.family.grid import sample_images
    from engine.training.checkpoint import family_from_checkpoint
    fam, _ = family_from_checkpoint(checkpoint, device)
    options = fam.sample_options({})
    parts = []
    for i0 in range(0, count, SAMPLE_BATCH):
        check_cancel(cancel)
        n = min(SAMPLE_BATCH, count - i0)
        with torch.no_grad():     # image i depends on seed + i alone (Family.generate's contract)
            imgs, _ = sample_images(fam, n, seed=seed + i0, use_ema=True, options=options, cancel=cancel)
        parts.append(((imgs.float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1))
        if progress:
            progress(i0 + n, count)
    return np.ascontiguousarray(torch.cat(parts).numpy())


def _read_cache(path: Path) -> np.ndarray | None:
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))["images"]
    except Exception:      # missing or damaged: sample again
        return None


def _write_cache(path: Path, images: np.ndarray, origin: dict) -> None:
    import json

    from safetensors.numpy import save
    from engine.core.util import atomic_write_bytes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, save({"images": images}, metadata={"origin": json.dumps(origin)}))
    except OSError:     # a read-only cache costs time, not the result
        pass


def unique_names(sources: list[Source]) -> list[Source]:
    """Generator labels made unique (two checkpoints of one run folder and step name get #2, #3)."""
    seen: dict[str, int] = {}
    for s in sources:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name}#{seen[s.name]}"
    return sources


def choose_color(sources: list[Source]) -> str:
    """grayscale when any source has one channel (digits, a grey folder), so colour cannot tell them apart."""
    return "grayscale" if any(s.images.ndim == 3 or s.images.shape[-1] == 1 for s in sources) else "rgb"


@dataclass
class Prepared:
    """Sources after the pipeline: every image uint8 N x size x size x 3, real and fake alike."""
    pipeline: ImagePipeline
    real: np.ndarray
    fakes: dict[str, np.ndarray]
    origins: dict[str, dict]

    def report(self) -> dict:
        return {"pipeline": self.pipeline.describe(), "same_pipeline_for_real_and_fake": True,
                "statement": ("Real and generated images went through the same pipeline: "
                              + "; ".join(self.pipeline.steps()) + "."),
                "sources": self.origins}


def prepare(pipeline: ImagePipeline, real: Source, fakes: list[Source]) -> Prepared:
    """Every source through the one pipeline (the only place a detector's images are preprocessed)."""
    return Prepared(pipeline, pipeline.apply(real.images), {f.name: pipeline.apply(f.images) for f in fakes},
                    {real.name: real.origin, **{f.name: f.origin for f in fakes}})


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of n images, a fixed random choice; at least one of each when n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(n * test_fraction)), 1 if n >= 2 else 0), max(n - 1, 0))
    return np.sort(order[k:]), np.sort(order[:k])
