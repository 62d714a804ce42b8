"""The GAN families' config: [model] sections of DCGAN and StyleGAN-lite and their sampling options."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.core.flags import Flag
from engine.core.schema import ConfigError, Section, opt
from engine.core.sections import SamplingSection, family_field
from engine.families.gan import GAN_SPEC, STYLEGAN_SPEC

GAN_LOSSES = ("ns", "wgan-gp", "hinge")
GAN_AUGMENTS = ("none", "diffaug", "ada")
DIFFAUG_POLICIES = ("color", "translation", "cutout")
NOISE_MODES = ("const", "random", "off")


@dataclass
class GANConfig(Section):
    family: str = family_field(GAN_SPEC)
    z_dim: int = opt(64, "Size of the latent vector z.", min=1, max=4096, group="Networks")
    g_channels: int = opt(32, "Generator channels at full resolution; doubled at each coarser level.", min=4, max=1024)
    d_channels: int = opt(32, "Discriminator channels at full resolution; doubled at each coarser level.", min=4, max=1024)
    max_channels: int = opt(256, "Cap on the channels of any level.", min=4, max=2048, advanced=True)
    loss: str = opt("ns", "ns = non-saturating, wgan-gp = Wasserstein with gradient penalty, hinge.", choices=GAN_LOSSES,
                    group="Loss and regularisation")
    n_critic: int = opt(1, "Discriminator steps per generator step (5 is usual for WGAN-GP).", min=1, max=20)
    gp_weight: float = opt(10.0, "Weight of WGAN-GP's gradient penalty.", min=0.0, max=1000.0, advanced=True)
    r1_gamma: float = opt(0.0, "R1 penalty on real images (0 = off).", min=0.0, max=1000.0)
    r1_every: int = opt(16, "Lazy regularization: apply R1 every N steps (scaled by N).", min=1, max=1000, advanced=True)
    spectral_norm: bool = opt(False, "Spectral normalization on the discriminator's layers.")
    minibatch_std: bool = opt(True, "Minibatch standard-deviation feature in the discriminator (fights mode collapse).")
    class_conditional: bool = opt(False, "Condition on class labels (when the dataset has more than one class).",
                                  group="Conditioning")
    conditioning: str = opt("projection", "How D uses labels: projection discriminator, or AC-GAN's auxiliary classifier.",
                            choices=("projection", "acgan"))
    acgan_weight: float = opt(1.0, "Weight of AC-GAN's classification loss.", min=0.0, max=100.0, advanced=True)
    augment: str = opt("diffaug", "Small-data aid: DiffAugment (always on), ADA (adaptive probability p), or none.",
                       choices=GAN_AUGMENTS, group="Augmentation")
    diffaug_policy: str = opt("color,translation,cutout", "DiffAugment's transforms (comma-separated).", advanced=True)
    ada_target: float = opt(0.6, "ADA raises p while E[sign D(real)] is above this.", min=0.0, max=1.0)
    ada_interval: int = opt(4, "ADA adjusts p every N steps.", min=1, max=1000, advanced=True)
    ada_kimg: float = opt(20.0, "ADA's speed: thousands of images for p to go from 0 to 1.", min=0.01, max=10000.0,
                          advanced=True)
    adam_beta1: float = opt(0.5, "Adam beta1 for both networks.", min=0.0, max=0.999, advanced=True,
                            group="Optimizer")
    adam_beta2: float = opt(0.999, "Adam beta2 for both networks.", min=0.0, max=0.9999, advanced=True)
    d_lr_ratio: float = opt(1.0, "Discriminator learning rate = training.lr times this.", min=0.0, max=100.0,
                            advanced=True)

    # the smallest sensible model, for the conformance suite: a few steps on 8x8 images in a second
    TINY: ClassVar[dict] = {"model": {"z_dim": 8, "g_channels": 8, "d_channels": 8, "max_channels": 16,
                                      "class_conditional": True}}

    def check(self, where: str, run) -> None:
        r = run.data.resolution if run is not None else None
        if r is not None and (r < 8 or r & (r - 1)):
            raise ConfigError(f"data.resolution = {r} must be a power of two of at least 8 for a GAN "
                              f"(its networks double or halve the size at each level)")
        if self.augment == "diffaug":
            bad = [p for p in self.diffaug_policy.split(",") if p.strip() not in DIFFAUG_POLICIES]
            if bad:
                raise ConfigError(f"{where}.diffaug_policy contains {bad[0]!r}; choose from: "
                                  f"{', '.join(DIFFAUG_POLICIES)}")


@dataclass
class StyleGANConfig(GANConfig):
    family: str = family_field(STYLEGAN_SPEC)
    w_dim: int = opt(128, "Size of the intermediate latent w.", min=4, max=2048, group="Style")
    mapping_layers: int = opt(4, "Depth of the mapping network z -> w.", min=1, max=16)
    mapping_lr_mult: float = opt(0.01, "Learning-rate multiplier of the mapping network.", min=0.0, max=1.0,
                                 advanced=True)
    style_mixing_prob: float = opt(0.9, "Probability of mixing two w's at a random crossover layer while training.",
                                   min=0.0, max=1.0)
    w_avg_beta: float = opt(0.995, "Decay of the tracked average w (the centre of truncation).", min=0.0, max=1.0,
                            advanced=True)
    pl_weight: float = opt(0.0, "Path-length regularization weight (0 = off).", min=0.0, max=100.0)
    pl_every: int = opt(4, "Apply path-length regularization every N generator steps.", min=1, max=1000,
                        advanced=True)

    TINY: ClassVar[dict] = {"model": {**GANConfig.TINY["model"], "w_dim": 8, "mapping_layers": 1}}


@dataclass
class GANSampleOptions(SamplingSection):
    truncation_psi: float = opt(1.0, "Truncation psi (1 = off; lower trades variety for typical images).",
                                min=0.0, max=2.0, slider=True, flag=Flag("--psi", "GANs: truncation psi (default: the run's)"))


@dataclass
class StyleGANSampleOptions(GANSampleOptions):
    noise_mode: str = opt("const", "Per-layer noise inputs: const (fixed), random (fresh each time), or off.",
                          choices=NOISE_MODES,
                          flag=Flag("--noise", "per-layer noise: const, random or off (default: the run's)"))
