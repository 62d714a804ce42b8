"""Two-stage runs: the [model] fields of a family trained on a parent checkpoint's outputs (latent
diffusion over a VAE, a prior over a tokenizer), and where a parent checkpoint lives (light: no
torch, so the GUI and the runs index read them).

A family that takes a parent puts `parent: str = parent_field()` (and, optionally,
`default_parent_preset: str = default_parent_field()`) in its [model] section and lists the
families it accepts as `parent_families` on its class; engine/training/parent.py loads the parent,
frozen, and checks it. A section without a `parent` field takes none."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.schema import opt

PARENT = "parent"
DEFAULT_PARENT_PRESET = "default_parent_preset"


def parent_field() -> Any:
    return opt("", "The parent checkpoint this model trains on (a .safetensors file, or a run folder: its newest "
                   "checkpoint). It is loaded frozen; when the run starts, the checkpoint file is recorded here.")


def default_parent_field(preset: str = "") -> Any:
    return opt(preset, "The preset `genlab-engine train` trains first (on this run's data) when no parent is given.",
               advanced=True)


def takes_parent(model: Any) -> bool:
    """Whether a [model] section (a dataclass or its table) names a parent."""
    return (PARENT in model) if isinstance(model, dict) else hasattr(model, PARENT)


def parent_of(model: Any) -> str:
    """The parent a [model] section names ("" for none, or for a family that takes none)."""
    value = model.get(PARENT, "") if isinstance(model, dict) else getattr(model, PARENT, "")
    return value if isinstance(value, str) else ""


def checkpoint_run_dir(path: str | Path) -> Path | None:
    """The run folder a parent path belongs to: the folder itself, or the run whose checkpoints/
    holds the checkpoint file; None when it is neither (a checkpoint copied elsewhere)."""
    p = Path(path)
    if (p / "config.toml").is_file():
        return p
    if p.parent.name == "checkpoints" and (p.parent.parent / "config.toml").is_file():
        return p.parent.parent
    return None
