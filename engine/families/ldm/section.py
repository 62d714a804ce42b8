"""Latent diffusion's config: the [model] section (the parent VAE or tokenizer, the latent denoiser
and the noise schedule) and its sampling options (as DDPM's)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.parents import default_parent_field, parent_field
from engine.core.schema import ConfigError, Section, check_positive_int_list, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import SPACINGS, solver_names
from engine.families.ldm import SPEC

# the latent denoiser's networks; "auto": the MLP for a vector latent (vae), the UNet for a map (vqvae)
BACKBONES = ("auto", "mlp", "unet", "dit")


@dataclass
class LDMConfig(Section):
    family: str = family_field(SPEC)
    parent: str = parent_field()
    default_parent_preset: str = default_parent_field()
    backbone: str = opt("auto", "Latent denoiser: an MLP over a VAE's latent vector, the UNet or a DiT over a "
                                "tokenizer's latent map (vqvae parent); auto picks the MLP for a vector, the UNet "
                                "for a map.", choices=BACKBONES)
    width: int = opt(256, "Width of the latent denoiser: the MLP's width, the UNet's base channels or the DiT's "
                          "token width.", min=8, max=4096)
    depth: int = opt(4, "Depth of the latent denoiser: the MLP's residual blocks, the UNet's per level or the "
                        "DiT's transformer blocks.", min=1, max=32)
    channel_mults: list = opt([1, 2], "UNet: channel multiplier per level; each level halves the latent map.",
                              advanced=True)
    attention_resolutions: list = opt([4], "UNet: latent-map sizes that get self-attention.", advanced=True)
    heads: int = opt(4, "Attention heads of the UNet's attention layers and the DiT's blocks.", min=1, max=64,
                     advanced=True)
    dit_patch_size: int = opt(1, "DiT: side of the patches the latent map is cut into.", min=1, max=16,
                              advanced=True)
    dropout: float = opt(0.0, "Dropout inside the residual blocks.", min=0.0, max=0.9)
    class_conditional: bool = opt(True, "Condition on class labels (when the dataset has more than one class).")
    label_dropout: float = opt(0.1, "Probability of dropping the label while training (enables classifier-free "
                                    "guidance).", min=0.0, max=1.0)
    schedule: str = opt("cosine", "Noise schedule.", choices=("linear", "cosine"))
    timesteps: int = opt(1000, "Number of diffusion steps T.", min=2, max=10000)

    # the conformance suites give it a tiny VAE parent (tests/conftest.py: tiny_parent)
    TINY: ClassVar[dict] = {"model": {"width": 16, "depth": 1, "timesteps": 50}, "sampling": {"steps": 3}}
    # on a tiny vqvae tokenizer's 8x4x4 map, with the UNet (tests/conftest.py: parent_family)
    TINY_VARIANTS: ClassVar[dict] = {"vq": {"parent_family": "vqvae", "model": {
        "channel_mults": [1, 2], "attention_resolutions": [2], "heads": 2}}}

    def check(self, where: str, run) -> None:
        check_positive_int_list(self.channel_mults, f"{where}.channel_mults", empty_ok=False)
        check_positive_int_list(self.attention_resolutions, f"{where}.attention_resolutions")
        if self.backbone == "dit" and self.width % self.heads:
            raise ConfigError(f"{where}.width = {self.width} must be divisible by {where}.heads = {self.heads} "
                              f"(the DiT splits each token into whole heads)")


@dataclass
class LDMSampleOptions(SamplingSection):
    # decode=False: latent walks always decode with deterministic DDIM (eta 0), so x_T -> image is a function
    sampler: str = opt("ddim", "Solver: DDIM (deterministic at eta 0), ancestral DDPM, or Heun (2nd order).",
                       choices=solver_names(), decode=False,
                       flag=Flag("--sampler", "diffusion solver (default: the run's)", choices=True))
    steps: int = opt(50, "Denoising steps used for sampling.", min=1, max=10000,
                     flag=Flag("--steps", "denoising steps (default: the run's)", metavar="SAMPLE_STEPS"))
    eta: float = opt(0.0, "DDIM noise: 0 = deterministic, 1 = like DDPM.", min=0.0, max=1.0, decode=False, decimals=2,
                     flag=Flag("--eta"))
    guidance_scale: float = opt(2.0, "Classifier-free guidance scale (1 = off; needs class conditioning).",
                                min=0.0, max=50.0, requires="conditional.guidance", decimals=2,
                                flag=Flag("--guidance", "classifier-free guidance scale"))
    spacing: str = opt("linspace", "Which of the T steps the sampler visits: linspace, leading or trailing.",
                       choices=SPACINGS, advanced=True)
