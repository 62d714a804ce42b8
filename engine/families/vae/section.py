"""The VAE's config: the [model] section (conv encoder/decoder, decoder distribution, β, capacity,
free bits, class conditioning, the IWAE bound's K) and its sampling options (temperature)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.schema import Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.nn.pixel_choices import GAUSSIAN_VARIANCES, PIXEL_DISTRIBUTIONS
from engine.families.vae import SPEC



@dataclass
class VAEConfig(Section):
    family: str = family_field(SPEC)
    latent_dim: int = opt(16, "Size of the latent vector z; each dimension gets its own KL curve, so you can see "
                              "which ones the model uses (flat at 0 = collapsed, unused).", min=1, max=1024)
    channels: int = opt(32, "Conv channels at full resolution, doubled at each halving; more = a stronger "
                            "encoder and decoder, slower steps.", min=4, max=1024)
    max_channels: int = opt(128, "Cap on the channels of any level.", min=4, max=2048, advanced=True)
    decoder: str = opt("gaussian", "What the decoder predicts per pixel: a Gaussian or a discretized logistic (both "
                                   "real likelihoods of 8-bit pixels), or a Bernoulli on pixels mapped to [0, 1], "
                                   "whose bits/dim is only a surrogate and not comparable with other models'.",
                       choices=PIXEL_DISTRIBUTIONS)
    gaussian_variance: str = opt("learned", "Gaussian decoder only: learn a variance for every pixel, or keep it "
                                            "fixed at fixed_std (a fixed variance acts like a weight on the "
                                            "reconstruction: smaller = sharper, less use of the prior).",
                                 choices=GAUSSIAN_VARIANCES)
    fixed_std: float = opt(0.1, "Gaussian decoder with a fixed variance: its standard deviation on the [-1, 1] "
                                "pixel scale; lower it for sharper reconstructions, raise it for smoother samples.",
                           min=0.001, max=10.0, advanced=True)
    beta: float = opt(1.0, "Weight of the KL term (β-VAE, Higgins et al. 2017): 1 = the plain ELBO; above 1 trades "
                           "reconstruction for a smoother, more disentangled latent space; below 1, the reverse.",
                      min=0.0, max=1000.0)
    capacity: bool = opt(False, "Use the capacity objective recon + γ·|KL − C| (Burgess et al. 2018) instead of β: "
                                "the KL is held near a target C that rises from 0 to capacity_max, so the latent "
                                "dimensions switch on one by one.")
    capacity_max: float = opt(25.0, "Capacity objective: the KL target C reached at the end (nats per image); "
                                    "raise it for sharper reconstructions.", min=0.0, max=10000.0)
    capacity_steps: int = opt(2000, "Capacity objective: steps over which C rises linearly from 0 to capacity_max.",
                              min=1)
    capacity_gamma: float = opt(100.0, "Capacity objective: γ, how hard the KL is held at C; lower it if the "
                                       "reconstruction stops improving.", min=0.0, max=100000.0, advanced=True)
    free_bits: float = opt(0.0, "Free bits (Kingma et al. 2016): no KL penalty below this many nats per latent "
                                "dimension (batch mean), which keeps dimensions from collapsing; 0 = off.",
                           min=0.0, max=100.0)
    class_conditional: bool = opt(False, "Conditional VAE: give the class to the encoder and the decoder (when the "
                                         "dataset has more than one class), so you can pick the digit you sample.")
    iwae_k: int = opt(16, "Importance samples of the IWAE bound used for bits/dim (Burda et al. 2016): 1 = the "
                          "ELBO; more gives a tighter (lower) bits/dim but costs K decoder passes per image.",
                      min=1, max=4096)

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"latent_dim": 4, "channels": 8, "max_channels": 16, "class_conditional": True,
                                      "iwae_k": 4}}


@dataclass
class VAESampleOptions(SamplingSection):
    temperature: float = opt(1.0, "Scales the spread of the latents drawn from the prior (1 = the model): lower "
                                  "gives more typical, less varied images.", min=0.0, max=2.0, slider=True,
                             decimals=2, decode=False)  # a latent walk decodes the latents it is given
