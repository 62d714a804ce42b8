"""Flow matching's config: the [model] section (UNet, path and time sampling, and reflow: an optional
flow_matching parent whose (noise, sample) pairs the run trains on) and its sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.parents import default_parent_field, parent_field
from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.core.solvers import solver_names
from engine.nn.backbones import TINY_DIT, TINY_UNET, backbone_fields, check_backbone, check_unet_lists
from engine.families.flow_matching import SPEC

TIME_SAMPLING = ("uniform", "logit-normal")
REFLOW_INIT = ("parent", "scratch")


@dataclass
@backbone_fields(dit_before="reflow")   # + backbone, the UNet, label and DiT fields (engine/nn/backbones.py)
class FlowMatchingConfig(Section):
    family: str = family_field(SPEC)
    time_sampling: str = opt("uniform", "How training draws t: uniform on [0, 1], or logit-normal (Esser et al. "
                                        "2024: more weight on the middle of the path).", choices=TIME_SAMPLING)
    logit_mean: float = opt(0.0, "Logit-normal t: mean of the logit.", min=-5.0, max=5.0, decimals=2, advanced=True)
    logit_std: float = opt(1.0, "Logit-normal t: standard deviation of the logit.", min=0.01, max=5.0, decimals=2,
                           advanced=True)
    sigma_min: float = opt(0.0, "Lipman et al.'s sigma_min: x_t = (1 - (1 - sigma_min)·t)·x0 + t·eps, so a trace "
                                "sigma_min of the image is left at t = 1 (0 = rectified flow's straight path).",
                           min=0.0, max=0.1, decimals=4, advanced=True)

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
    TINY: ClassVar[dict] = {"model": {**TINY_UNET}, "sampling": {"steps": 3}}
    # overlays on TINY that the resume conformance test also runs, as "<family>:<variant>" (tests/conftest.py)
    TINY_VARIANTS: ClassVar[dict] = {"dit": {"model": TINY_DIT}}

    def check(self, where: str, run) -> None:
        if self.parent and not self.reflow:
            raise ConfigError(f"{where}.parent is set but {where}.reflow is false: a flow_matching model takes a "
                              f"parent only to reflow it; set {where}.reflow = true or clear {where}.parent")
        check_unet_lists(self, where)
        check_backbone(self, where, run.data.resolution if run is not None else None)


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
