"""The family registry (light: no torch, so the GUI imports it). Each model family is one folder,
engine/families/<folder>/, found here by discovery (nothing to list by hand): its __init__.py
holds its FamilySpec, `SPEC` (or `SPECS`, for a folder of several families such as gan/: the DCGAN
and StyleGAN-lite), and imports nothing heavy. The spec names its parts relative to its folder
(".section:DDPMConfig", ".model:DDPMFamily"), imported on first use, and is the one place the
family's name is written: its config section's `family` field (engine/core/sections.family_field)
and its class's `name` read it from there.

Adding a family: README.md, "Adding a family"."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from engine.core import metrics
from engine.core.logkeys import QUALITY, wants
from engine.core.capabilities import InpaintMethod
from engine.core.registry import Registry, absolute_ref, load_object

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).resolve().parents[2] / "resources" / "presets"
FAMILIES_PACKAGE = "engine.families"


@dataclass(frozen=True)
class PlotGroup:
    """One plot of logged values: keys are exact names or namespaces ending in '/'."""
    key: str
    title: str
    keys: tuple[str, ...]
    log: bool = True   # log y-axis by default (turned off by itself when a value is <= 0)
    bars: bool = False  # the newest value of each key as a bar (e.g. KL per latent dimension), not curves

    def wants(self, name: str) -> bool:
        return wants(self.keys, name)


LOSS_PLOT = PlotGroup("loss", "loss", ("loss/",))


def quality_plot(key: str, value: str) -> PlotGroup:
    """A plot of one quality/ value over the evaluation passes: title and way from its metric spec."""
    v = metrics.value(value)
    return PlotGroup(key, f"{v.title}, evaluation pass ({v.better_words})", (QUALITY + v.key,), log=False)


# likelihood families: bits/dim of the evaluation pass (the batch's own is a loss/ value)
BPD_PLOT = quality_plot("bpd", "bits_per_dim")
# VAEs: the KL of each latent dimension (VAE) or group (hierarchical VAE), nats per image
KL_PLOT = PlotGroup("kl", "KL per latent dimension or group (nats): a bar at 0 = unused", ("kl/",), log=False,
                    bars=True)


@dataclass(frozen=True)
class FamilySpec:
    """A family: its name (written here once), its title, and where its parts live, as
    "module:Attribute" references relative to `package` (its folder) resolved on first use: the
    sections are light (the GUI imports them), the class is not (only engine processes do)."""
    package: str                        # the folder's package: __name__ of its __init__.py
    name: str
    title: str                          # for the family picker
    config_section: str                 # its [model] section dataclass, ".section:DDPMConfig"
    options_section: str                # its [sampling] dataclass (a SamplingSection subclass)
    impl: str                           # ".model:DDPMFamily"
    headline: tuple[str, ...]           # logged losses the Training panel shows beside the step
    plots: tuple[PlotGroup, ...] = (LOSS_PLOT,)
    order: int = 100                    # its place in the family picker (then by name)
    # an Inpainter's methods, the default first (its class reads them: `inpaint_methods = SPEC.inpaint_methods`)
    inpaint_methods: tuple[InpaintMethod, ...] = ()

    def refs(self) -> tuple[str, ...]:
        """Its parts as absolute "module:Attribute" references (for packaging)."""
        return tuple(absolute_ref(r, self.package) for r in (self.config_section, self.options_section, self.impl))

    @property
    def config(self) -> type:
        return load_object(self.config_section, self.package)

    @property
    def sample_options(self) -> type:
        return load_object(self.options_section, self.package)

    def family_class(self) -> type:
        return load_object(self.impl, self.package)

    def presets(self) -> list[str]:
        """Names of the preset files whose [model] family is this one."""
        return [name for name, fam in preset_families().items() if fam == self.name]


def discover_families():
    """(name, spec) of every family folder under engine/families/, in picker order. A folder
    without a spec is an error naming it (a half-added family should not vanish silently)."""
    import importlib
    import pkgutil
    package = importlib.import_module(FAMILIES_PACKAGE)
    specs = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{FAMILIES_PACKAGE}.{info.name}")
        found = getattr(module, "SPECS", None) or ((module.SPEC,) if hasattr(module, "SPEC") else ())
        if not found:
            raise ImportError(f"{module.__name__}: a family folder's __init__.py must define SPEC (a FamilySpec) "
                              f"or SPECS (several)")
        for spec in found:
            if spec.package != module.__name__:
                raise ImportError(f"{module.__name__}: {spec.name}'s FamilySpec names package {spec.package!r}; "
                                  f"pass __name__")
        specs.extend(found)
    return [(s.name, s) for s in sorted(specs, key=lambda s: (s.order, s.name))]


FAMILIES: Registry[FamilySpec] = Registry("model family", discover_families)

DEFAULT_FAMILY = "ddpm"
DEFAULT_PRESET = "ddpm-digits"   # what the app opens on and `genlab-engine train` uses without --preset


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
