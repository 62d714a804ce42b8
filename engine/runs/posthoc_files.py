"""Where post-hoc EMA lives in a run directory (training.posthoc_ema; engine/training/posthoc_ema.py):

  phema/step_000500.safetensors + .json           a snapshot of every power-function EMA profile
  checkpoints/step_000500-ema-0p070.safetensors   a checkpoint reconstructed at σ_rel 0.070 from them

A reconstructed checkpoint is named so that it is not one of the run's training checkpoints
(RunDir.checkpoints): it holds no optimizer state, is never resumed from and is never pruned.
Names only, no torch: the runs browser reads them."""
from __future__ import annotations

import re
from pathlib import Path

SNAPSHOT_DIR = "phema"
_SNAPSHOT_RE = re.compile(r"step_(\d+)\.json$")
_RECONSTRUCTED_RE = re.compile(r"step_(\d+)-ema-(\d+)p(\d+)\.json$")


def snapshot_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR


def snapshot_stem(run_dir: str | Path, step: int) -> Path:
    return snapshot_dir(run_dir) / f"step_{step:06d}"


def snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete snapshots (the JSON, written last, and the tensors), oldest first: (step, .safetensors)."""
    return _listed(snapshot_dir(run_dir), _SNAPSHOT_RE)


def has_snapshots(run_dir: str | Path) -> bool:
    """Cheap (one folder listing): whether a reconstruction has anything to read."""
    return bool(snapshots(run_dir))


def reconstructed_stem(run_dir: str | Path, step: int, sigma_rel: float) -> Path:
    """checkpoints/step_NNNNNN-ema-0pXXX: no dot in the stem, so the .safetensors/.json pair
    is found by replacing the suffix, as for every checkpoint."""
    whole, frac = f"{sigma_rel:.3f}".split(".")
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}-ema-{whole}p{frac}"


def reconstructed(run_dir: str | Path) -> list[tuple[int, float, Path]]:
    """The checkpoints reconstructed in the run's checkpoints/ folder: (step, σ_rel, .safetensors),
    by step then σ_rel."""
    folder = Path(run_dir) / "checkpoints"
    out = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for p in entries:
        m = _RECONSTRUCTED_RE.match(p.name)
        if m and p.with_suffix(".safetensors").exists():
            out.append((int(m.group(1)), float(f"{m.group(2)}.{m.group(3)}"), p.with_suffix(".safetensors")))
    return sorted(out)


def _listed(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    out = [(int(m.group(1)), p.with_suffix(".safetensors")) for p in entries
           for m in [pattern.match(p.name)] if m and p.with_suffix(".safetensors").exists()]
    return sorted(out)
