"""Flow matching's config: the [model] section (UNet, path and time sampling, and reflow: an optional
flow_matching parent whose (noise, sample) pairs the run trains on) and its sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.parents import default_parent_field, parent_field
from engine.core.schema import ConfigError, Section, check_positive_int_list, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import solver_names
from engine.nn.backbones import BACKBONES, DIT_NORMS, DIT_POS_EMBEDS, check_backbone
from engine.families.flow_matching import SPEC

TIME_SAMPLING = ("uniform", "logit-normal")
REFLOW_INIT = ("parent", "scratch")


@dataclass
class FlowMatchingConfig(Section):
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
    time_sampling: str = opt("uniform", "How training draws t: uniform on [0, 1], or logit-normal (Esser et al. "
                                        "2024: more weight on the middle of the path).", choices=TIME_SAMPLING)
    logit_mean: float = opt(0.0, "Logit-normal t: mean of the logit.", min=-5.0, max=5.0, decimals=2, advanced=True)
    logit_std: float = opt(1.0, "Logit-normal t: standard deviation of the logit.", min=0.01, max=5.0, decimals=2,
                           advanced=True)
    sigma_min: float = opt(0.0, "Lipman et al.'s sigma_min: x_t = (1 - (1 - sigma_min)·t)·x0 + t·eps, so a trace "
                                "sigma_min of the image is left at t = 1 (0 = rectified flow's straight path).",
                           min=0.0, max=0.1, decimals=4, advanced=True)

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

    # reflow (Liu et al. 2022): train on the couplings a flow_matching parent's ODE makes (model.py, reflow.py)
    reflow: bool = opt(False, "Reflow: train on (noise, sample) pairs drawn by the parent flow_matching run's ODE, "
                              "which straightens the paths so few steps sample well (Liu et al. 2022).",
                       group="Reflow")
    parent: str = parent_field()
    default_parent_preset: str = default_parent_field()
    reflow_pairs: int = opt(2000, "Reflow: (noise, sample) pairs the parent draws before training (cached in the run).",
                            min=8, max=1_000_000)
    reflow_steps: int = opt(20, "Reflow: the parent's ODE steps for each pair (its own solver).", min=1, max=1000)
    reflow_init: str = opt("parent", "Reflow: start from the parent's weights (Liu et al.) or from scratch.",
                           choices=REFLOW_INIT)

    # the smallest sensible model, for the conformance suites: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4],
                                      "attention_heads": 2}, "sampling": {"steps": 3}}
    # overlays on TINY that the resume conformance test also runs, as "<family>:<variant>" (tests/conftest.py)
    TINY_VARIANTS: ClassVar[dict] = {"dit": {"model": {"backbone": "dit", "dit_width": 16, "dit_depth": 2,
                                                       "dit_heads": 2}}}

    def check(self, where: str, run) -> None:
        if self.parent and not self.reflow:
            raise ConfigError(f"{where}.parent is set but {where}.reflow is false: a flow_matching model takes a "
                              f"parent only to reflow it; set {where}.reflow = true or clear {where}.parent")
        check_positive_int_list(self.channel_mults, f"{where}.channel_mults", empty_ok=False)
        check_positive_int_list(self.attention_resolutions, f"{where}.attention_resolutions")
        levels = len(self.channel_mults) - 1
        res = run.data.resolution if run is not None else None
        check_backbone(self, where, res)
        if self.backbone == "unet" and res is not None and res % (2 ** levels):
            raise ConfigError(f"data.resolution = {res} must be divisible by {2 ** levels} "
                              f"for a UNet with {len(self.channel_mults)} levels ({where}.channel_mults)")


@dataclass
class FlowMatchingSampleOptions(SamplingSection):
    # decode=False: latent walks always decode with the deterministic Euler step, so x_1 -> image is a function
    sampler: str = opt("euler", "ODE solver over t: euler (one network pass per step; ddim at eta 0 is the same "
                                "step here); heun and midpoint are 2nd order (two passes per step but the last).",
                       choices=solver_names(), decode=False,
                       flag=Flag("--sampler", "ODE solver (default: the run's)", choices=True))
    steps: int = opt(20, "Integration steps from t = 1 (noise) to t = 0.", min=1, max=1000,
                     flag=Flag("--steps", "integration steps (default: the run's)", metavar="SAMPLE_STEPS"))
    guidance_scale: float = opt(2.0, "Classifier-free guidance scale (1 = off; needs class conditioning).",
                                min=0.0, max=50.0, requires="conditional.guidance", decimals=2,
                                flag=Flag("--guidance", "classifier-free guidance scale"))
