"""EDM's config: the [model] section (UNet, preconditioning, training noise levels, sampling sigmas)
and its sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.schema import ConfigError, Section, check_positive_int_list, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import solver_names
from engine.nn.backbones import BACKBONES, DIT_NORMS, DIT_POS_EMBEDS, check_backbone
from engine.families.edm import SPEC


@dataclass
class EDMConfig(Section):
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
    sigma_data: float = opt(0.5, "Standard deviation of the data, for the preconditioning and the loss weight "
                                 "(EDM's 0.5 for images in [-1, 1]).", min=0.01, max=10.0, decimals=3)
    p_mean: float = opt(-1.2, "Training noise levels: ln(sigma) ~ N(P_mean, P_std²).", min=-10.0, max=10.0,
                        decimals=2)
    p_std: float = opt(1.2, "Training noise levels: standard deviation of ln(sigma).", min=0.01, max=10.0, decimals=2)
    sigma_min: float = opt(0.002, "Smallest sigma sampling visits before the clean image.", min=1e-5, max=10.0,
                           decimals=4, advanced=True)
    sigma_max: float = opt(80.0, "Sigma sampling starts from (noise of standard deviation sigma_max).", min=0.1,
                           max=1000.0, decimals=1, advanced=True)
    rho: float = opt(7.0, "Sampling sigmas are evenly spaced in sigma^(1/rho) (EDM's eq. 5).", min=1.0, max=20.0,
                     decimals=1, advanced=True)

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

    # the smallest sensible model, for the conformance suites: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4],
                                      "attention_heads": 2}, "sampling": {"steps": 3}}
    # overlays on TINY that the resume conformance test also runs, as "<family>:<variant>" (tests/conftest.py)
    TINY_VARIANTS: ClassVar[dict] = {"dit": {"model": {"backbone": "dit", "dit_width": 16, "dit_depth": 2,
                                                       "dit_heads": 2}}}

    def check(self, where: str, run) -> None:
        check_positive_int_list(self.channel_mults, f"{where}.channel_mults", empty_ok=False)
        check_positive_int_list(self.attention_resolutions, f"{where}.attention_resolutions")
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"{where}.sigma_min = {self.sigma_min} must be below {where}.sigma_max = {self.sigma_max}")
        levels = len(self.channel_mults) - 1
        res = run.data.resolution if run is not None else None
        check_backbone(self, where, res)
        if self.backbone == "unet" and res is not None and res % (2 ** levels):
            raise ConfigError(f"data.resolution = {res} must be divisible by {2 ** levels} "
                              f"for a UNet with {len(self.channel_mults)} levels ({where}.channel_mults)")


@dataclass
class EDMSampleOptions(SamplingSection):
    # decode=False: latent walks always decode with the deterministic Euler step, so noise -> image is a function
    sampler: str = opt("heun", "Solver over the sigmas: heun is EDM's 2nd-order sampler (two network passes per "
                               "step but the last: 18 steps = 35 passes); ddim is the Euler step in sigma.",
                       choices=solver_names(), decode=False,
                       flag=Flag("--sampler", "diffusion solver (default: the run's)", choices=True))
    steps: int = opt(18, "Noise levels visited from sigma_max down to sigma_min.", min=1, max=1000,
                     flag=Flag("--steps", "denoising steps (default: the run's)", metavar="SAMPLE_STEPS"))
    guidance_scale: float = opt(2.0, "Classifier-free guidance scale (1 = off; needs class conditioning).",
                                min=0.0, max=50.0, requires="conditional.guidance", decimals=2,
                                flag=Flag("--guidance", "classifier-free guidance scale"))
