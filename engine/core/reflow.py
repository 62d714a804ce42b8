"""Reflow as the GUI and the CLI see it (light: no torch): which runs can be reflowed, and the
config of a reflow child of a run. The training itself is engine/families/flow_matching/reflow.py's."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from engine.core.config import RunConfig
from engine.core.families import FAMILIES, family_spec
from engine.core.parents import DEFAULT_PARENT_PRESET, PARENT

REFLOW = "reflow"   # the [model] switch of a family whose runs can be reflowed


def can_reflow(family: str) -> bool:
    """Whether runs of `family` can have a reflow child: its [model] section has the reflow switch
    and a parent (asked of the section, never of the family's name)."""
    if family not in FAMILIES:
        return False
    names = {f.name for f in dataclasses.fields(family_spec(family).config)}
    return {REFLOW, PARENT} <= names


def reflow_child_config(parent_cfg: RunConfig, checkpoint: str | Path) -> RunConfig:
    """The parent run's config as a reflow child of `checkpoint` (its model fields, so the child
    starts from the parent's weights; the same data, training and sampling), named <name>-reflow."""
    if not can_reflow(parent_cfg.family):
        raise ValueError(f"a {parent_cfg.family} run cannot be reflowed")
    child = parent_cfg.replace(model={REFLOW: True, PARENT: str(checkpoint), DEFAULT_PARENT_PRESET: ""})
    return dataclasses.replace(child, name=f"{parent_cfg.name}-reflow")
