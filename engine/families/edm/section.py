"""EDM's config: the [model] section (UNet, preconditioning, training noise levels, sampling sigmas)
and its sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import solver_names
from engine.nn.backbones import TINY_DIT, TINY_UNET, backbone_fields, check_backbone, check_unet_lists
from engine.families.edm import SPEC


@dataclass
@backbone_fields()   # + backbone, the UNet, label and DiT fields (engine/nn/backbones.py)
class EDMConfig(Section):
    family: str = family_field(SPEC)
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


    # the smallest sensible model, for the conformance suites: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {**TINY_UNET}, "sampling": {"steps": 3}}
    # overlays on TINY that the resume conformance test also runs, as "<family>:<variant>" (tests/conftest.py)
    TINY_VARIANTS: ClassVar[dict] = {"dit": {"model": TINY_DIT}}

    def check(self, where: str, run) -> None:
        check_unet_lists(self, where)
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"{where}.sigma_min = {self.sigma_min} must be below {where}.sigma_max = {self.sigma_max}")
        check_backbone(self, where, run.data.resolution if run is not None else None)


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
