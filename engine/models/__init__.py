"""Model families, registered by name."""
from __future__ import annotations

from engine.models.base import Batch, Family, StepContext


def family_class(name: str) -> type[Family]:
    if name == "ddpm":
        from engine.models.ddpm import DDPMFamily
        return DDPMFamily
    if name == "gan":
        from engine.models.gan import GANFamily
        return GANFamily
    if name == "stylegan":
        from engine.models.gan import StyleGANFamily
        return StyleGANFamily
    raise ValueError(f"unknown model family {name!r}")


def build_family(cfg, channels: int, resolution: int, class_names: list[str]) -> Family:
    return family_class(cfg.model.family)(cfg, channels, resolution, class_names)


__all__ = ["Batch", "Family", "StepContext", "build_family", "family_class"]
