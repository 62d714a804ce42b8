"""DDPM's config: the [model] section (UNet and noise schedule) and its sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.schema import ConfigError, Section, check_positive_int_list, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import SPACINGS, solver_names
from engine.families.ddpm import SPEC
from engine.nn.backbones import BACKBONES, DIT_NORMS, DIT_POS_EMBEDS, check_backbone


@dataclass
class DDPMConfig(Section):
    family: str = family_field(SPEC)
    backbone: str = opt("unet", "Denoising network: the UNet (the fields below) or a DiT transformer (the DiT "
                                "fields).", choices=BACKBONES)
    base_channels: int = opt(32, "Channels of the UNet's first level.", min=4, max=1024)
    channel_mults: list = opt([1, 2, 2], "Channel multiplier per UNet level; each level halves the resolution.")
    num_res_blocks: int = opt(1, "Residual blocks per UNet level.", min=1, max=8)
    attention_resolutions: list = opt([4], "Feature-map sizes (pixels) that get self-attention.")
    attention_heads: int = opt(4, "Heads of each self-attention layer.", min=1, max=64, advanced=True)
    dropout: float = opt(0.0, "Dropout inside residual blocks.", min=0.0, max=0.9)
    class_conditional: bool = opt(True, "Condition on class labels (when the dataset has more than one class).")
    label_dropout: float = opt(0.1, "Probability of dropping the label while training (enables classifier-free guidance).",
                               min=0.0, max=1.0)
    schedule: str = opt("cosine", "Noise schedule.", choices=("linear", "cosine"))
    timesteps: int = opt(1000, "Number of diffusion steps T.", min=2, max=10000)
    # the DiT backbone's fields (engine/nn/dit.py), read when backbone = "dit"
    dit_patch_size: int = opt(2, "DiT: side of the square patches (tokens = (resolution / patch)²).", min=1, max=32,
                              group="DiT")
    dit_width: int = opt(128, "DiT: width of each token.", min=8, max=4096)
    dit_depth: int = opt(4, "DiT: transformer blocks.", min=1, max=64)
    dit_heads: int = opt(4, "DiT: attention heads (must divide the width).", min=1, max=64)
    dit_mlp_ratio: float = opt(4.0, "DiT: MLP width as a multiple of the token width.", min=0.5, max=16.0,
                               advanced=True)
    dit_pos_embed: str = opt("sincos", "DiT: fixed 2D sine-cosine position embedding, or learned (starting from it).",
                             choices=DIT_POS_EMBEDS, advanced=True)
    dit_norm: str = opt("adaln-zero", "DiT: how the time conditions the blocks: adaLN-Zero (DiT's) or the "
                                      "time-dependent layer norm of DiMR (TD-LN: far fewer parameters).",
                        choices=DIT_NORMS)

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4],
                                      "attention_heads": 2, "timesteps": 50}, "sampling": {"steps": 3}}
    # overlays on TINY that the resume conformance test also runs, as "ddpm:<variant>" (tests/conftest.py)
    TINY_VARIANTS: ClassVar[dict] = {"dit": {"model": {"backbone": "dit", "dit_width": 16, "dit_depth": 2,
                                                       "dit_heads": 2}}}

    def check(self, where: str, run) -> None:
        check_positive_int_list(self.channel_mults, f"{where}.channel_mults", empty_ok=False)
        check_positive_int_list(self.attention_resolutions, f"{where}.attention_resolutions")
        levels = len(self.channel_mults) - 1
        res = run.data.resolution if run is not None else None
        check_backbone(self, where, res)
        if self.backbone == "unet" and res is not None and res % (2 ** levels):
            raise ConfigError(f"data.resolution = {res} must be divisible by {2 ** levels} "
                              f"for a UNet with {len(self.channel_mults)} levels ({where}.channel_mults)")


@dataclass
class DDPMSampleOptions(SamplingSection):
    # decode=False: latent walks always decode with deterministic DDIM (eta 0), so x_T -> image is a function
    sampler: str = opt("ddim", "Solver: DDIM (deterministic at eta 0), ancestral DDPM, or Heun (EDM's 2nd order: "
                               "better at few steps, two network passes per step).", choices=solver_names(),
                       decode=False, flag=Flag("--sampler", "diffusion solver (default: the run's)", choices=True))
    steps: int = opt(50, "Denoising steps used for sampling.", min=1, max=10000,
                     flag=Flag("--steps", "denoising steps (default: the run's)", metavar="SAMPLE_STEPS"))
    eta: float = opt(0.0, "DDIM noise: 0 = deterministic, 1 = like DDPM.", min=0.0, max=1.0, decode=False, decimals=2,
                     flag=Flag("--eta"))
    guidance_scale: float = opt(2.0, "Classifier-free guidance scale (1 = off; needs class conditioning).",
                                min=0.0, max=50.0, requires="conditional.guidance", decimals=2,
                                flag=Flag("--guidance", "classifier-free guidance scale"))
    spacing: str = opt("linspace", "Which of the T steps the sampler visits: linspace (evenly, both ends), "
                                   "leading (0, k, 2k, …) or trailing (from T-1 down), as in diffusers.",
                       choices=SPACINGS, advanced=True)
