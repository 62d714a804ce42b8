"""The hierarchical VAE's config (VDVAE-lite, after Child 2021): the [model] section (residual stream
width, latent groups per resolution, pixel distribution, gradient skipping, the IWAE bound's K) and
its sampling options (a temperature for every latent group)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from engine.core.schema import ConfigError, Section, check_positive_int_list, opt
from engine.core.sections import SamplingSection, family_field
from engine.nn.pixel_choices import GAUSSIAN_VARIANCES, PIXEL_DISTRIBUTIONS
from engine.families.hvae import SPEC

MAX_TEMPERATURE = 2.0


def hvae_sizes(resolution: int, top_1x1: bool) -> list[int]:
    """The feature-map sizes of the hierarchy, from the top (smallest) down to the image size: the
    image size halved while even and above 4 (16 -> 4, 8, 16), with a 1x1 level on top if asked."""
    sizes = [resolution]
    while sizes[-1] > 4 and sizes[-1] % 2 == 0:
        sizes.append(sizes[-1] // 2)
    if top_1x1 and sizes[-1] > 1:
        sizes.append(1)
    return sizes[::-1]


def check_level_list(value: list, name: str, where: str, resolution: int | None, top_1x1: bool) -> None:
    """One positive count per resolution of the hierarchy (from the top), or an error naming the sizes."""
    check_positive_int_list(value, f"{where}.{name}", empty_ok=False)
    if resolution is None:
        return
    sizes = hvae_sizes(resolution, top_1x1)
    if len(value) != len(sizes):
        raise ConfigError(f"{where}.{name} = {value!r} must give one count per resolution: a {resolution}x{resolution} "
                          f"model {'with a 1x1 top ' if top_1x1 else ''}has {len(sizes)} "
                          f"({', '.join(f'{s}x{s}' for s in sizes)}, from the top)")


@dataclass
class HVAEConfig(Section):
    family: str = family_field(SPEC)
    width: int = opt(64, "Channels of the residual stream at every resolution, in the encoder and the top-down "
                         "decoder; more = a stronger model, slower steps.", min=4, max=2048)
    bottleneck: float = opt(0.25, "Width of the inside of each residual block as a fraction of `width` (the "
                                  "1x1 -> 3x3 -> 3x3 -> 1x1 bottleneck of Very Deep VAEs).", min=0.05, max=4.0,
                            advanced=True)
    zdim: int = opt(8, "Latent channels of each group: a group at an s x s resolution has zdim*s*s latent "
                       "variables.", min=1, max=256)
    top_1x1: bool = opt(True, "Put a 1x1 resolution on top of the hierarchy (pooled from the 4x4 maps), so the "
                              "top group is one latent vector of zdim numbers: what interpolation walks through.")
    decoder_groups: list = opt([1, 2, 2, 1], "Latent groups (top-down residual blocks, each with its own prior, "
                                             "posterior and KL curve) per resolution, from the top (smallest) to "
                                             "the image size; one count per resolution.")
    encoder_blocks: list = opt([1, 2, 2, 1], "Residual blocks of the bottom-up encoder per resolution, from the "
                                             "top (smallest) to the image size; one count per resolution.",
                               advanced=True)
    latent_groups: int = opt(0, "How many groups, from the top, make up the latent space that interpolation walks "
                                "through and images encode into; 0 = all the groups at the top resolution. The "
                                "groups below are drawn from their priors with one fixed noise when decoding. Raise "
                                "it when the top groups carry little (their KL curves stay near 0).",
                             min=0, max=4096)
    decoder: str = opt("logistic", "What the output predicts per pixel: a discretized logistic or Gaussian (both "
                                   "real likelihoods of 8-bit pixels), or a Bernoulli on pixels mapped to [0, 1], "
                                   "whose bits/dim is only a surrogate.", choices=PIXEL_DISTRIBUTIONS)
    gaussian_variance: str = opt("learned", "Gaussian decoder only: learn a variance for every pixel, or keep it "
                                            "fixed at fixed_std.", choices=GAUSSIAN_VARIANCES, advanced=True)
    fixed_std: float = opt(0.1, "Gaussian decoder with a fixed variance: its standard deviation on the [-1, 1] "
                                "pixel scale.", min=0.001, max=10.0, advanced=True)
    grad_skip_threshold: float = opt(
        0.0, "Skip the update (no optimizer step) of a batch whose gradient norm, before clipping, is above this, "
             "as Very Deep VAEs do against rare huge gradients; a non-finite norm is always skipped. The count "
             "is logged as train/skipped_updates. 0 = skip only non-finite gradients. The norm is of the "
             "per-dimension loss (nats per sub-pixel): see the grad/hvae curve for typical values.",
        min=0.0, max=1e9)
    class_conditional: bool = opt(False, "Give the class to the top-down decoder (when the dataset has more than one "
                                         "class), so you can pick the digit you sample.")
    iwae_k: int = opt(8, "Importance samples of the bound used for bits/dim (Burda et al. 2016): 1 = the ELBO "
                         "(with the KL terms in closed form); more gives a tighter (lower) bits/dim but costs K "
                         "passes per image.", min=1, max=4096)

    # the smallest sensible model, for the conformance suite: 8x8 images, 2 resolutions (4x4, 8x8)
    TINY: ClassVar[dict] = {"model": {"width": 8, "zdim": 2, "top_1x1": False, "decoder_groups": [1, 1],
                                      "encoder_blocks": [1, 1], "class_conditional": True, "iwae_k": 2}}

    def check(self, where: str, run) -> None:
        res = run.data.resolution if run is not None else None
        check_level_list(self.decoder_groups, "decoder_groups", where, res, self.top_1x1)
        check_level_list(self.encoder_blocks, "encoder_blocks", where, res, self.top_1x1)
        if self.latent_groups > sum(self.decoder_groups):  # (the list's own check came first)
            raise ConfigError(f"{where}.latent_groups = {self.latent_groups} is more than the model's "
                              f"{sum(self.decoder_groups)} latent groups ({where}.decoder_groups)")

    def sizes(self, resolution: int) -> list[int]:
        return hvae_sizes(resolution, self.top_1x1)

    def num_latent_groups(self) -> int:
        """latent_groups, with 0 meaning the groups of the top resolution."""
        return self.latent_groups or self.decoder_groups[0]


def check_temperatures(value, where: str, groups: int | None = None) -> list[float]:
    """A list of temperatures in [0, 2] (ints allowed), at most one per group when `groups` is known."""
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) and 0 <= v <= MAX_TEMPERATURE for v in value):
        raise ConfigError(f"{where} = {value!r} must be a list of numbers between 0 and {MAX_TEMPERATURE:g}")
    if groups is not None and len(value) > groups:
        raise ConfigError(f"{where} = {value!r} gives {len(value)} temperatures but the model has {groups} latent "
                          f"groups")
    return [float(v) for v in value]


@dataclass
class HVAESampleOptions(SamplingSection):
    temperature: float = opt(1.0, "Scales the spread of every latent group's prior when sampling (1 = the model): "
                                  "lower gives cleaner, more typical images. Groups listed in group_temperatures "
                                  "use their own value.", min=0.0, max=MAX_TEMPERATURE, slider=True, decimals=2)
    group_temperatures: list = opt([], "Temperature per latent group, from the top group down (group 0 = the top, "
                                       "the coarsest); groups past the end of the list use `temperature`. E.g. "
                                       "[1, 1, 0, 0, 0, 0]: varied shapes, the lower groups' details at their prior "
                                       "mean. A latent walk decodes its top latents as given and draws the lower "
                                       "groups from one fixed noise scaled by these.")

    def check(self, where: str, run) -> None:
        groups = None
        model = getattr(run, "model", None) if run is not None else None
        if model is not None and isinstance(getattr(model, "decoder_groups", None), list):
            groups = sum(model.decoder_groups)
        check_temperatures(self.group_temperatures, f"{where}.group_temperatures", groups)
