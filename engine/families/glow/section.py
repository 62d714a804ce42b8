"""Glow / RealNVP's config: the [model] section (which flow parts to use, and their sizes) and its
sampling options (the prior's temperature)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.families.glow import SPEC

COUPLINGS = ("affine", "additive")
COUPLING_MASKS = ("channel", "checkerboard")
INVERTIBLE_CONVS = ("lu", "plain", "none")


@dataclass
class FlowConfig(Section):
    family: str = family_field(SPEC)
    levels: int = opt(3, "Scales of the flow: each halves the image size, and all but the last set aside half "
                         "of their channels as latents; more levels see larger shapes.", min=1, max=8)
    steps_per_level: int = opt(8, "Flow steps (ActNorm, channel mixing, coupling) at each scale; more steps "
                                  "fit the data better but train and sample more slowly.", min=1, max=64)
    hidden_channels: int = opt(64, "Channels of the small CNN inside each coupling layer; raise it for a "
                                   "stronger model, lower it for speed.", min=4, max=1024)
    coupling: str = opt("affine", "affine scales and shifts half of the values in each coupling (Glow, RealNVP); "
                                  "additive only shifts them (NICE), which is more stable but less expressive.",
                        choices=COUPLINGS)
    coupling_mask: str = opt("channel", "Which half a coupling changes: channel splits the channels (Glow); "
                                        "checkerboard alternates pixels like a chessboard (RealNVP).",
                             choices=COUPLING_MASKS)
    invertible_conv: str = opt("lu", "How each step mixes channels: a learned invertible 1x1 convolution, "
                                     "LU-decomposed (Glow's fast log-determinant) or plain; none keeps only the "
                                     "alternating coupling masks (RealNVP).", choices=INVERTIBLE_CONVS)
    class_conditional: bool = opt(True, "Make the latent priors depend on the class label (when the dataset has "
                                        "more than one class), so you can ask for a class when sampling.")

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"levels": 2, "steps_per_level": 2, "hidden_channels": 8}}

    def check(self, where: str, run) -> None:
        res = run.data.resolution if run is not None else None
        if res is None:
            return
        if res % (2 ** self.levels):
            raise ConfigError(f"data.resolution = {res} must be divisible by {2 ** self.levels} for a flow with "
                              f"{self.levels} levels ({where}.levels): each level halves the image size")
        if self.coupling_mask == "checkerboard" and res // 2 ** self.levels < 2:
            raise ConfigError(f"{where}.coupling_mask = 'checkerboard' needs at least 2x2 pixels at the last "
                              f"level, but data.resolution = {res} with {where}.levels = {self.levels} leaves "
                              f"{res // 2 ** self.levels}x{res // 2 ** self.levels}; use fewer levels")


@dataclass
class FlowSampleOptions(SamplingSection):
    temperature: float = opt(0.7, "Scales the spread of the latent prior: 1 samples the density as learned, lower "
                                  "values (Glow used 0.7) give cleaner but less varied images, and 0 gives one "
                                  "image per class.", min=0.0, max=1.5, slider=True, decimals=2)
