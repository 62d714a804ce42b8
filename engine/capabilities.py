"""What a loaded checkpoint can do. The GUI enables canvases from this, never from a family's name."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Capabilities:
    family: str
    sample: bool = True
    samplers: list[str] = field(default_factory=list)   # sampler names the family accepts
    guidance: bool = False                               # classifier-free guidance scale applies
    class_labels: list[str] = field(default_factory=list)  # empty = unconditional
    resolution: int = 0
    channels: int = 0
    encode: bool = False      # image -> latent
    invert: bool = False      # image -> noise (e.g. DDIM inversion)
    log_prob: bool = False    # likelihood / bits per dim
    inpaint: bool = False
    style_mix: bool = False
    interpolate: bool = False
    truncation: bool = False  # GANs: the truncation psi applies
    noise_modes: list[str] = field(default_factory=list)  # StyleGAN's per-layer noise: const/random/off
    style_layers: list[int] = field(default_factory=list)  # resolution of each style (w) input, in order
    style_groups: dict = field(default_factory=dict)       # coarse / middle / fine -> style indices
    latent_space: str = ""    # what interpolation moves through: "z", "w+", "noise"
    encode_method: str = ""   # how images enter that space: "projection", "ddim-inversion"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Capabilities":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
