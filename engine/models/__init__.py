"""Model families: each registered by name in engine/families.py, its class imported on first use."""
from __future__ import annotations

from engine.families import family_spec
from engine.models.base import Batch, Family, StepContext


def family_class(name: str) -> type[Family]:
    try:
        return family_spec(name).family_class()
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def build_family(cfg, channels: int, resolution: int, class_names: list[str]) -> Family:
    return family_class(cfg.model.family)(cfg, channels, resolution, class_names)


__all__ = ["Batch", "Family", "StepContext", "build_family", "family_class"]
