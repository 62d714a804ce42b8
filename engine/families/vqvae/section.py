"""The tokenizer's config: the [model] section (encoder/decoder size, the token grid, which
quantizer and its settings) and its sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.schema import ConfigError, Section, check_positive_int_list, opt
from engine.core.sections import SamplingSection, family_field
from engine.families.vqvae import SPEC

QUANTIZERS = ("vq", "fsq", "msrq")
RECON_LOSSES = ("mse", "l1")


@dataclass
class VQVAEConfig(Section):
    family: str = family_field(SPEC)
    quantizer: str = opt("vq", "The bottleneck: vq = a learned codebook moved by EMA (VQ-VAE), fsq = finite scalar "
                               "quantization (a few bounded dims rounded to fixed levels; no codebook to collapse), "
                               "msrq = one VQ codebook quantizing residuals at 1x1, 2x2, ... up to the token grid "
                               "(the tokens of a next-scale / VAR prior).", choices=QUANTIZERS, group="Tokens")
    downsample: int = opt(4, "How much smaller the token grid is than the image (a power of 2): 16x16 digits give "
                             "a 4x4 grid at 4, 8x8 at 2. Fewer tokens = a shorter sequence for the prior, blurrier "
                             "reconstructions.", min=1, max=64)
    latent_dim: int = opt(32, "Channels of the encoder's output, the vector each token position carries.",
                          min=1, max=1024)
    codebook_size: int = opt(512, "vq, msrq: number of codes K.", min=2, max=65536)
    levels: list = opt([8, 5, 5, 5], "fsq: levels per quantized dimension; the code count is their product "
                                     "([8,5,5,5] = 1000, [8,8,8] = 512, [8,6,5] = 240; Mentzer et al.'s table).")
    scales: list = opt([], "msrq: the side of each scale's token map, coarse to fine, ending at the token grid; "
                           "empty = 1, 2, 4, ... doubling up to the grid.")
    channels: int = opt(32, "Conv channels at full resolution, doubled at each halving.", min=4, max=1024,
                        group="Networks")
    max_channels: int = opt(128, "Cap on the channels of any level.", min=4, max=2048, advanced=True)
    res_blocks: int = opt(1, "Residual blocks per level of the encoder and decoder.", min=0, max=8)
    recon_loss: str = opt("mse", "Reconstruction loss on [-1, 1] pixels.", choices=RECON_LOSSES, group="Loss")
    beta: float = opt(0.25, "vq, msrq: weight of the commitment loss ||z - sg(code)||^2 (van den Oord et al.'s "
                            "beta), which keeps the encoder near its codes.", min=0.0, max=100.0)
    codebook_decay: float = opt(0.99, "vq, msrq: EMA decay of the codebook updates (closer to 1 = slower, steadier "
                                      "codes).", min=0.0, max=0.99999, group="Codebook")
    laplace_eps: float = opt(1e-5, "vq, msrq: Laplace smoothing of the EMA code counts, so a rarely used code "
                                   "never divides by zero.", min=0.0, max=1.0, advanced=True)
    dead_code_steps: int = opt(100, "vq, msrq: a code not chosen for this many steps is restarted at a recent "
                                    "encoder output; 0 = never.", min=0)
    restart_pool: int = opt(1024, "vq, msrq: how many recent encoder vectors dead codes are re-seeded from.",
                            min=1, max=1_000_000, advanced=True)
    l2_codes: bool = opt(False, "vq: l2-normalise vectors and codes (a cosine-similarity lookup; Yu et al. 2022), "
                                "which tends to use more of the codebook.")
    code_dim: int = opt(0, "vq: factorised codes: look codes up in this many dims (a projection down and back up; "
                           "Yu et al. 2022); 0 = latent_dim (no projection).", min=0, max=1024)
    usage_window: int = opt(100, "Codebook usage is the fraction of codes chosen in the last this many steps.",
                            min=1, advanced=True)
    gan: bool = opt(False, "VQGAN-lite (Esser et al. 2021): add a patch discriminator's hinge loss, balanced "
                           "against the reconstruction by the paper's adaptive weight, and a feature-matching "
                           "loss in the discriminator's own features, for sharper reconstructions.", group="VQGAN")
    disc_start: int = opt(500, "gan: steps of plain reconstruction training before the discriminator and its "
                               "losses start (a warm-up: a GAN on an untrained decoder only adds noise).", min=0)
    disc_weight: float = opt(0.8, "gan: the adversarial loss's weight, times the adaptive weight.", min=0.0,
                             max=100.0)
    adaptive_max: float = opt(1e4, "gan: clamp of the adaptive weight ||grad L_rec|| / (||grad L_GAN|| + 1e-4) at "
                                   "the decoder's last layer.", min=0.0, max=1e6, advanced=True)
    feature_weight: float = opt(1.0, "gan: weight of the L1 distance between the discriminator's features of an "
                                     "image and of its reconstruction (0 = off).", min=0.0, max=100.0)
    disc_channels: int = opt(32, "gan: discriminator channels after its first conv, doubled at each halving.",
                             min=4, max=1024)
    disc_layers: int = opt(2, "gan: strided convs of the discriminator: each score sees a patch, the map is "
                              "resolution / 2^layers on a side.", min=1, max=8)
    disc_spectral_norm: bool = opt(False, "gan: spectral normalization on the discriminator's convs.")
    disc_lr_ratio: float = opt(1.0, "gan: discriminator learning rate = training.lr times this (Adam, betas "
                                    "0.5 / 0.9).", min=0.0, max=100.0, advanced=True)

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"downsample": 2, "latent_dim": 8, "codebook_size": 16, "levels": [4, 3],
                                      "scales": [], "channels": 8, "max_channels": 16, "restart_pool": 64,
                                      "dead_code_steps": 1}}
    # overlays on TINY that the resume conformance test also runs, as "vqvae:<variant>" (tests/conftest.py):
    # the discriminator starts at step 1, so a resume at step 2 carries its optimizer state
    TINY_VARIANTS: ClassVar[dict] = {"gan": {"model": {"gan": True, "disc_start": 1, "disc_channels": 8,
                                                       "disc_layers": 1}}}

    def check(self, where: str, run) -> None:
        if self.downsample & (self.downsample - 1):
            raise ConfigError(f"{where}.downsample = {self.downsample} must be a power of 2 (1, 2, 4, 8, ...)")
        check_positive_int_list(self.levels, f"{where}.levels", empty_ok=False)
        if any(l < 2 for l in self.levels):
            raise ConfigError(f"{where}.levels = {self.levels}: each dimension needs at least 2 levels")
        check_positive_int_list(self.scales, f"{where}.scales")
        if self.scales != sorted(set(self.scales)):
            raise ConfigError(f"{where}.scales = {self.scales} must increase (coarse to fine)")
        if self.quantizer == "msrq" and (self.code_dim or self.l2_codes):
            raise ConfigError(f"{where}: quantizer = 'msrq' sums residuals in the encoder's space, so it takes no "
                              f"factorised or l2-normalised codes (set code_dim = 0 and l2_codes = false)")
        res = run.data.resolution if run is not None else None
        if res is None:
            return
        if res % self.downsample:
            raise ConfigError(f"data.resolution = {res} must be divisible by {where}.downsample = {self.downsample}")
        grid = res // self.downsample
        if self.gan and res % 2 ** self.disc_layers:
            raise ConfigError(f"data.resolution = {res} must be divisible by 2^{where}.disc_layers = "
                              f"{2 ** self.disc_layers} (each discriminator layer halves the image)")
        if self.scales and self.scales[-1] != grid:
            raise ConfigError(f"{where}.scales = {self.scales} must end at the token grid, {grid} "
                              f"(data.resolution {res} / downsample {self.downsample})")


@dataclass
class VQVAESampleOptions(SamplingSection):
    temperature: float = opt(1.0, "Sampling draws each token independently from how often the training set used "
                                  "that code at that position (a baseline; the priors of the next stage model the "
                                  "tokens jointly). Below 1 favours the common codes.", min=0.05, max=2.0,
                             slider=True, decimals=2, decode=False)
