"""The family registry (light: no torch, so the GUI imports it): each model family is one line
here naming its config section, its sampling options, where its class lives (imported lazily),
the losses the Training panel shows and how its logged values group into plots.

Adding a family: one model module (engine/models/x.py, a Family subclass that also implements the
capability interfaces it supports, engine/models/interfaces.py), one config section
(engine/sections/x.py: the [model] dataclass with a TINY test size, and the sample options), a
preset file (resources/presets/x-….toml) and one `register_family` line below. The conformance
suite (tests/engine/test_family_conformance.py) then checks it like every other family."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from engine.registry import Registry, load_object

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).resolve().parent.parent / "resources" / "presets"


@dataclass(frozen=True)
class PlotGroup:
    """One plot of logged values: keys are exact names or namespaces ending in '/'."""
    key: str
    title: str
    keys: tuple[str, ...]
    log: bool = True   # log y-axis by default (turned off by itself when a value is <= 0)
    bars: bool = False  # the newest value of each key as a bar (e.g. KL per latent dimension), not curves

    def wants(self, name: str) -> bool:
        return any(name == k or (k.endswith("/") and name.startswith(k)) for k in self.keys)


LOSS_PLOT = PlotGroup("loss", "loss", ("loss/",))
# likelihood families: bits/dim of the evaluation pass (the batch's own is a loss/ value)
# VAEs: the KL of each latent dimension (VAE) or group (hierarchical VAE), nats per image
KL_TITLE = "KL per latent dimension or group (nats): a bar at 0 = unused"
BPD_PLOT = PlotGroup("bpd", "bits/dim, evaluation pass (lower is better)", ("quality/bits_per_dim",), log=False)


@dataclass(frozen=True)
class FamilySpec:
    """Where a family's parts live, as "module:Attribute" strings resolved on first use: the
    sections are light (the GUI imports them), the class is not (only engine processes do)."""
    name: str
    title: str                          # for the family picker
    config_section: str                 # its [model] section dataclass, "engine.sections.ddpm:DDPMConfig"
    options_section: str                # its [sampling] dataclass (a SamplingSection subclass)
    impl: str                           # "engine.models.ddpm:DDPMFamily"
    headline: tuple[str, ...]           # logged losses the Training panel shows beside the step
    plots: tuple[PlotGroup, ...] = (LOSS_PLOT,)

    @property
    def config(self) -> type:
        return load_object(self.config_section)

    @property
    def sample_options(self) -> type:
        return load_object(self.options_section)

    def family_class(self) -> type:
        return load_object(self.impl)

    def presets(self) -> list[str]:
        """Names of the preset files whose [model] family is this one."""
        return [name for name, fam in preset_families().items() if fam == self.name]


FAMILIES: Registry[FamilySpec] = Registry("model family")


def register_family(spec: FamilySpec) -> FamilySpec:
    return FAMILIES.register(spec.name, spec)


DEFAULT_FAMILY = "ddpm"
DEFAULT_PRESET = "ddpm-digits"   # what the app opens on and `genlab-engine train` uses without --preset
_GAN_PLOTS = (LOSS_PLOT, PlotGroup("gan", "D(real) / D(fake) / ADA p", ("gan/d_real", "gan/d_fake", "gan/ada_p"),
                                   log=False))

register_family(FamilySpec("ddpm", "DDPM (diffusion)", "engine.sections.ddpm:DDPMConfig",
                           "engine.sections.ddpm:DDPMSampleOptions", "engine.models.ddpm:DDPMFamily",
                           headline=("loss/mse",)))
register_family(FamilySpec("gan", "GAN (DCGAN generator)", "engine.sections.gan:GANConfig",
                           "engine.sections.gan:GANSampleOptions", "engine.models.gan:GANFamily",
                           headline=("loss/D", "loss/G"), plots=_GAN_PLOTS))
register_family(FamilySpec("stylegan", "StyleGAN-lite", "engine.sections.gan:StyleGANConfig",
                           "engine.sections.gan:StyleGANSampleOptions", "engine.models.gan:StyleGANFamily",
                           headline=("loss/D", "loss/G"), plots=_GAN_PLOTS))


register_family(FamilySpec("vae", "VAE (β-VAE, conditional, IWAE bound)", "engine.sections.vae:VAEConfig",
                           "engine.sections.vae:VAESampleOptions", "engine.models.vae:VAEFamily",
                           headline=("loss/recon", "loss/kl"),
                           plots=(LOSS_PLOT, PlotGroup("kl", KL_TITLE,
                                                       ("kl/",), log=False, bars=True), BPD_PLOT)))
register_family(FamilySpec("glow", "Glow / RealNVP (normalizing flow)", "engine.sections.flow:FlowConfig",
                           "engine.sections.flow:FlowSampleOptions", "engine.models.flow:FlowFamily",
                           headline=("loss/bpd",), plots=(LOSS_PLOT, BPD_PLOT)))
register_family(FamilySpec("pixelcnn", "Gated PixelCNN (autoregressive)", "engine.sections.pixelcnn:PixelCNNConfig",
                           "engine.sections.pixelcnn:PixelCNNSampleOptions", "engine.models.pixelcnn:PixelCNNFamily",
                           headline=("loss/bpd",), plots=(LOSS_PLOT, BPD_PLOT)))
register_family(FamilySpec("hvae", "Hierarchical VAE (VDVAE-lite)", "engine.sections.hvae:HVAEConfig",
                           "engine.sections.hvae:HVAESampleOptions", "engine.models.hvae:HVAEFamily",
                           headline=("loss/bpd", "loss/kl"),
                           plots=(LOSS_PLOT, PlotGroup("kl", KL_TITLE,
                                                       ("kl/",), log=False, bars=True), BPD_PLOT)))


def family_spec(name: str) -> FamilySpec:
    return FAMILIES.get(name)


def preset_families() -> dict[str, str]:
    """Preset name -> the family its [model] section names (files that do not parse are left out)."""
    out = {}
    for p in sorted(PRESET_DIR.glob("*.toml")):
        try:
            out[p.stem] = tomllib.loads(p.read_text(encoding="utf-8")).get("model", {}).get("family", DEFAULT_FAMILY)
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return out
