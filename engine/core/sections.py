"""What every family's [sampling] section has: the training sample grid's size and seed. A family's
sample options subclass this and add their own fields (steps and solver for diffusion, psi for a GAN)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.core.schema import Section, opt


@dataclass
class SamplingSection(Section):
    grid_size: int = opt(100, "Images in each training sample grid.", min=1, max=1024)
    seed: int = opt(0, "Seed of the fixed-noise sample grids.", min=0)


GRID_FIELDS = tuple(f.name for f in dataclasses.fields(SamplingSection))

# Fields the one shared [sampling] section of GenLab <= 0.1 had. A run directory written then keeps
# them for every family; when reading it, the ones a family's options do not have are dropped.
LEGACY_SAMPLING_FIELDS = ("sampler", "steps", "eta", "guidance_scale", "truncation_psi", "noise_mode")


def option_fields(options_cls: type, *, decode_only: bool = False) -> list[dataclasses.Field]:
    """The sampling options a person sets per request (not the grid's size and seed); with
    decode_only, only those that also apply when decoding latents (latent walks)."""
    return [f for f in dataclasses.fields(options_cls) if f.name not in GRID_FIELDS
            and not (decode_only and f.metadata.get("decode") is False)]


def option_values(options) -> dict:
    return {f.name: getattr(options, f.name) for f in option_fields(type(options))}


def family_field(spec) -> str:
    """The [model] section's `family` field, from the family's FamilySpec (where its name is
    written once): `family: str = family_field(SPEC)`."""
    return opt(spec.name, "Model family.", choices=(spec.name,))
