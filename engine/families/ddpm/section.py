"""DDPM's config: the [model] section (UNet, noise schedule, prediction target and loss weighting)
and its sampling options."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import VP_SPACINGS, solver_names
from engine.families.ddpm import SPEC
from engine.nn.backbones import TINY_DIT, TINY_UNET, backbone_fields, check_backbone, check_unet_lists


@dataclass
@backbone_fields()   # + backbone, the UNet, label and DiT fields (engine/nn/backbones.py)
class DDPMConfig(Section):
    family: str = family_field(SPEC)
    schedule: str = opt("cosine", "Noise schedule: linear (Ho et al.), cosine (Nichol & Dhariwal) or sigmoid "
                                  "(Chen 2023: keeps more signal at large t, for larger images).",
                        choices=("linear", "cosine", "sigmoid"))
    timesteps: int = opt(1000, "Number of diffusion steps T.", min=2, max=10000)
    zero_terminal_snr: bool = opt(False, "Rescale the schedule so that the last step is pure noise (Lin et al. "
                                         "2024): sampling then starts from what it trained on. Needs prediction "
                                         "x0 or v.", advanced=True)
    prediction: str = opt("eps", "What the UNet predicts: eps (the noise, Ho et al.), x0 (the clean image) or v "
                                 "(alpha·eps - sigma·x0, Salimans & Ho 2022: well-scaled at every noise level).",
                          choices=("eps", "x0", "v"), group="Objective")
    loss_weighting: str = opt("uniform", "Weight of each timestep's loss: uniform (the plain MSE of the target) "
                                         "or min_snr (Hang et al. 2023: the x0 error weighted by min(SNR, gamma), "
                                         "expressed for the prediction target; faster convergence).",
                              choices=("uniform", "min_snr"))
    min_snr_gamma: float = opt(5.0, "Min-SNR-gamma's cap gamma on the signal-to-noise ratio (5 in the paper).",
                               min=0.1, max=100.0, decimals=1, advanced=True)

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {**TINY_UNET, "timesteps": 50}, "sampling": {"steps": 3}}
    # overlays on TINY that the resume conformance test also runs, as "ddpm:<variant>" (tests/conftest.py)
    TINY_VARIANTS: ClassVar[dict] = {"dit": {"model": TINY_DIT}}

    def check(self, where: str, run) -> None:
        check_unet_lists(self, where)
        check_backbone(self, where, run.data.resolution if run is not None else None)
        if self.zero_terminal_snr and self.prediction == "eps":
            raise ConfigError(f"{where}.zero_terminal_snr needs {where}.prediction = \"v\" or \"x0\": at the last "
                              f"step x is pure noise, so an eps prediction says nothing about the image")


@dataclass
class DDPMSampleOptions(SamplingSection):
    # decode=False: latent walks always decode with deterministic DDIM (eta 0), so x_T -> image is a function
    sampler: str = opt("ddim", "Solver: ddim (deterministic at eta 0), ddpm (ancestral), euler and heun (EDM's "
                               "1st and 2nd order; heun: two network passes per step), euler_ancestral, "
                               "dpmpp_2m (DPM-Solver++(2M): good images in 10-20 steps; with spacing karras: "
                               "\"DPM++ 2M Karras\") or unipc (UniPC: DPM-Solver++'s predictor with a corrector, "
                               "one pass per step, third order).", choices=solver_names(),
                       decode=False, flag=Flag("--sampler", "diffusion solver (default: the run's)", choices=True))
    steps: int = opt(50, "Denoising steps used for sampling.", min=1, max=10000,
                     flag=Flag("--steps", "denoising steps (default: the run's)", metavar="SAMPLE_STEPS"))
    eta: float = opt(0.0, "DDIM noise: 0 = deterministic, 1 = like DDPM.", min=0.0, max=1.0, decode=False, decimals=2,
                     flag=Flag("--eta"))
    churn: float = opt(0.0, "EDM's S_churn for euler and heun (Karras et al. 2022, Algorithm 2): noise added and "
                            "removed again at every step, which can correct earlier errors; 0 = the plain ODE.",
                       min=0.0, max=100.0, decimals=1, decode=False, advanced=True)
    guidance_scale: float = opt(2.0, "Classifier-free guidance scale (1 = off; needs class conditioning).",
                                min=0.0, max=50.0, requires="conditional.guidance", decimals=2,
                                flag=Flag("--guidance", "classifier-free guidance scale"))
    spacing: str = opt("linspace", "Which of the T steps the sampler visits: linspace (evenly, both ends), "
                                   "leading (0, k, 2k, …) or trailing (from T-1 down), as in diffusers; karras: "
                                   "Karras et al.'s rho-spaced noise levels between the steps (more of them at "
                                   "low noise).", choices=VP_SPACINGS, advanced=True)
    # decode=False: a latent walk's frames are guided at every level (one option less beside its frames)
    guidance_interval: list = opt([], "Apply classifier-free guidance only at noise levels sigma/alpha in [low, "
                                      "high] (Kynkäänniemi et al. 2024, e.g. [0.28, 5.42]); elsewhere the "
                                      "conditional prediction alone, one network pass. Empty: every level.",
                                  requires="conditional.guidance", advanced=True, decode=False)

    def check(self, where: str, run) -> None:
        check_guidance_interval(self.guidance_interval, f"{where}.guidance_interval")


def check_guidance_interval(value, where: str) -> tuple[float, float] | None:
    """(low, high) of a guidance interval, or None for none (every level guided)."""
    if value in ([], None):
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) for v in value)
            and 0 <= value[0] <= value[1]):
        raise ConfigError(f"{where} = {value!r} must be [] or [low, high] with 0 <= low <= high (sigma/alpha)")
    return float(value[0]), float(value[1])
