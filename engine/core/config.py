"""Typed run configuration: the data, model, training, sampling and metrics sections.

Part of the seam between app/ and engine/: it imports nothing heavy (no torch), so the GUI can build
forms from the schema (field metadata carries help text, allowed values and ranges) and validate a
config before any engine process starts. The generic machinery (opt(), coercion, TOML, messages)
lives in engine/core/schema.py; each family's [model] and [sampling] sections live in its folder (engine/families/<name>/section.py)
and are found through the family registry (engine/core/families.py).

A config is data, written into the run directory before work starts (config.toml) and never
changed afterwards; the checkpoint JSON carries a copy too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core import metrics as metric_registry
from engine.core.families import DEFAULT_FAMILY, FAMILIES, PRESET_DIR, family_spec
from engine.core.schema import (ConfigError, Section, dumps_toml, loads_toml, opt,  # noqa: F401 (ConfigError: re-exported)
                           section_from_dict, validate_section)
from engine.core.sections import GRID_FIELDS, LEGACY_SAMPLING_FIELDS

DATASETS = ("digits", "shapes", "faces", "textures", "folder")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# training.posthoc_ema = true: EDM2's two power-function EMA profiles (engine/training/power_ema.py);
# a σ_rel above 0.28 would need a profile exponent below 0, which EDM2 leaves out
POSTHOC_EMA_DEFAULT = [0.05, 0.10]
POSTHOC_SIGMA_MAX = 0.28
COLOR_MODES = ("auto", "rgb", "grayscale")


@dataclass
class DataConfig(Section):
    dataset: str = opt("digits", "Built-in dataset, or 'folder' for your own images.", choices=DATASETS)
    path: str = opt("", "Folder of images (only for dataset = 'folder'); subfolders become classes.")
    resolution: int = opt(16, "Images are resized and center-cropped to this size (pixels).", min=4, max=1024)
    color: str = opt("auto", "Colour mode: 'auto' keeps the dataset's own.", choices=COLOR_MODES)
    count: int = opt(4000, "How many images to generate (shapes) or crop (textures).", min=1, max=1_000_000)
    max_images: int = opt(0, "Use at most this many images (0 = all).", min=0)
    hflip: bool = opt(False, "Randomly mirror images left-right while training.")
    seed: int = opt(0, "Seed for procedural datasets (shapes, textures) and for choosing the held-out images.", min=0)
    holdout: float = opt(0.0, "Fraction of the images kept out of training (a fixed choice): bits/dim of likelihood "
                              "models is measured on them. 0 = train on all and measure on training images.",
                         min=0.0, max=0.5)

    def check(self, where: str, run) -> None:
        # a path read from a folder name that is not UTF-8 (bytes kept by Python as surrogates) cannot
        # be written to config.toml or a checkpoint's JSON: refuse it here, before a run folder exists
        try:
            self.path.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"{where}.path = {self.path!r} is not valid UTF-8; rename the folder or use a "
                              f"path without such characters") from None


@dataclass
class TrainingConfig(Section):
    steps: int = opt(3000, "Optimizer steps to train for.", min=1)
    batch_size: int = opt(64, "Images per step.", min=1, max=65536)
    lr: float = opt(2e-3, "Peak learning rate (AdamW).", min=0.0, max=10.0)
    warmup_steps: int = opt(100, "Linear learning-rate warm-up steps.", min=0)
    min_lr_ratio: float = opt(0.1, "Cosine decay ends at lr * this ratio.", min=0.0, max=1.0, advanced=True)
    weight_decay: float = opt(0.0, "AdamW weight decay.", min=0.0, max=1.0, advanced=True)
    grad_clip: float = opt(1.0, "Clip the gradient norm to this (0 = off).", min=0.0)
    ema_decay: float = opt(0.999, "Decay of the weights' exponential moving average used for sampling.", min=0.0, max=1.0)
    seed: int = opt(0, "Seed of the run (weights, batches, noise).", min=0)
    device: str = opt("auto", "Where to train: auto picks CUDA, then Apple MPS, then CPU.", choices=DEVICES)
    precision: str = opt("auto", "auto = bf16 (or fp16 with loss scaling) on CUDA, fp32 elsewhere.", choices=PRECISIONS)
    compile: bool = opt(False, "Run the networks through torch.compile for training: the first step compiles "
                               "(its time is logged apart), later steps may be faster. Falls back to eager, with one "
                               "line saying why, where it cannot compile (no C++ compiler, Apple MPS).")
    num_threads: int = opt(0, "CPU threads for PyTorch (0 = all cores).", min=0, advanced=True)
    log_every: int = opt(10, "Write a metrics line every N steps.", min=1)
    sample_every: int = opt(250, "Save a fixed-seed sample grid every N steps (0 = only at start and end).", min=0)
    checkpoint_every: int = opt(500, "Save a checkpoint every N steps (0 = only at the end).", min=0)
    keep_checkpoints: int = opt(3, "How many recent checkpoints to keep (0 = all).", min=0)
    time_budget_s: float = opt(0.0, "Stop after this many seconds of training (0 = no limit); the step count is "
                                    "then an upper bound", min=0.0, advanced=True)
    posthoc_ema: list = opt([], "Post-hoc EMA (EDM2): the sigma_rel of each power-function EMA profile kept beside the "
                                "EMA (true = 0.05, 0.1; empty = off); their snapshots let any EMA length be "
                                "reconstructed after training (genlab-engine ema, or the runs browser).",
                            advanced=True)
    posthoc_ema_every: int = opt(250, "Post-hoc EMA: store a snapshot of the profiles every N steps.", min=1,
                                 advanced=True)

    def check(self, where: str, run) -> None:
        sig = self.posthoc_ema
        if sig and (len(sig) > 4 or len(set(sig)) != len(sig) or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s <= POSTHOC_SIGMA_MAX for s in sig)):
            raise ConfigError(f"{where}.posthoc_ema = {sig!r} must be true, false, or a list of one to four different "
                              f"sigma_rel values in (0, {POSTHOC_SIGMA_MAX}], e.g. {POSTHOC_EMA_DEFAULT}")


def _training_table(d: Any) -> Any:
    """[training] as a table, with posthoc_ema = true/false written as the profiles it means."""
    if isinstance(d, dict) and isinstance(d.get("posthoc_ema"), bool):
        d = {**d, "posthoc_ema": list(POSTHOC_EMA_DEFAULT) if d["posthoc_ema"] else []}
    return d


@dataclass
class MetricsConfig:
    every: int = opt(0, "Score sample quality every N steps during training (0 = off).", min=0)
    samples: int = opt(1000, "Generated (and real) images per evaluation.", min=10, max=100_000)
    metrics: list = opt(["fid", "kid", "pr"], metric_registry.config_help())   # engine/core/metrics.py
    sampling_steps: int = opt(25, "Denoising steps for the evaluation samples.", min=1, max=10000)
    domain_steps: int = opt(300, "Training steps of GenLab's domain feature network (trained once per dataset, cached).",
                            min=10, max=100000, advanced=True)
    inception_weights: str = opt("", "Path of pt_inception-2015-12-05-6726825d.pth (empty: look in torch hub's "
                                     "cache; without it GenLab's domain features are used, reported as FD-domain).")


def _default_model():
    return family_spec(DEFAULT_FAMILY).config()


def _default_sampling():
    return family_spec(DEFAULT_FAMILY).sample_options()


@dataclass
class RunConfig:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=_default_model)          # the family's [model] section
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: Any = field(default_factory=_default_sampling)    # the family's sample options
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def family(self) -> str:
        return self.model.family

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, stored: bool = False) -> "RunConfig":
        """A config from its table form. `stored`: it was written by GenLab (a run's config.toml, a
        checkpoint), possibly an older one: sampling fields of 0.1's shared section that this
        family lacks are dropped rather than refused (new input stays strict)."""
        if not isinstance(d, dict):
            raise ConfigError("config must be a table of sections (data, model, training, sampling)")
        known = {"name", "data", "model", "training", "sampling", "metrics"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config section {unknown[0]!r}; known sections: {', '.join(sorted(known))}")
        name = d.get("name", "run")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"name = {name!r} must be a non-empty string")
        model_d = dict(d.get("model", {}))
        family = model_d.get("family", DEFAULT_FAMILY)
        if family not in FAMILIES:
            raise ConfigError(f"model.family = {family!r} is not allowed; choose one of: {', '.join(FAMILIES)}")
        spec = family_spec(family)
        sampling_d = _sampling_table(d.get("sampling", {}), spec.sample_options) if stored else d.get("sampling", {})
        cfg = cls(
            name=name,
            data=section_from_dict(DataConfig, d.get("data", {}), "data"),
            model=family_section(family, "model", model_d),
            training=section_from_dict(TrainingConfig, _training_table(d.get("training", {})), "training"),
            sampling=family_section(family, "sampling", sampling_d),
            metrics=section_from_dict(MetricsConfig, d.get("metrics", {}), "metrics"),
        )
        cfg.validate()
        return cfg

    def validate(self) -> "RunConfig":
        for section in ("data", "model", "training", "sampling", "metrics"):
            validate_section(getattr(self, section), section, self)
        if self.data.dataset == "folder" and not self.data.path:
            raise ConfigError("data.path is empty; dataset = 'folder' needs the folder of images")
        bad = [m for m in self.metrics.metrics if m not in metric_registry.MEASURES]
        if bad:
            raise ConfigError(f"metrics.metrics contains {bad[0]!r}; choose from: "
                              f"{', '.join(metric_registry.measure_names())}")
        return self

    def replace(self, **sections: dict) -> "RunConfig":
        """A copy with some fields changed, e.g. cfg.replace(training={"steps": 10}). A new
        model.family switches the model and sampling sections to that family's defaults (the old
        family's fields mean nothing to it), keeping the grid settings and the other sections
        (data, training, metrics); an error then names both families."""
        d = self.to_dict()
        old_family = d["model"].get("family")
        new_family = (sections.get("model") or {}).get("family") if isinstance(sections.get("model"), dict) else None
        switched = bool(new_family) and new_family != old_family
        if switched:
            d["model"] = {}
            d["sampling"] = {k: v for k, v in d["sampling"].items() if k in GRID_FIELDS}
        for section, values in sections.items():
            if section not in d:
                raise ConfigError(f"unknown config section {section!r}; known sections: {', '.join(sorted(d))}")
            if isinstance(values, dict) and isinstance(d[section], dict):
                d[section].update(values)
            else:
                d[section] = values
        try:
            return RunConfig.from_dict(d)
        except ConfigError as e:
            if not switched or new_family not in FAMILIES:   # an unknown family's error already names the choices
                raise
            raise ConfigError(f"model.family = {new_family!r} replaces {old_family!r} (the model and sampling "
                              f"sections start from {new_family}'s defaults): {e}") from None

    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ---- TOML --------------------------------------------------------------------------------
    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, source: str = "config", *, stored: bool = False) -> "RunConfig":
        return cls.from_dict(loads_toml(text, source), stored=stored)

    def save(self, path: str | Path) -> None:
        from engine.core.util import atomic_write_text  # local: keeps this module's imports minimal
        atomic_write_text(Path(path), self.to_toml())

    @classmethod
    def load(cls, path: str | Path, *, stored: bool = False) -> "RunConfig":
        """A config file; `stored` for one GenLab wrote (a run's config.toml), see from_dict."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            return cls.from_toml(path.read_text(encoding="utf-8"), source=str(path), stored=stored)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at position {e.start}); "
                              f"save the config as UTF-8") from None
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def family_section(family: str, section: str, table: Any):
    """The family's "model" or "sampling" section from its table. A field the family lacks that
    is another family's is named as such (a config whose family was changed by hand and kept the
    old one's fields), not only as an unknown field."""
    spec = family_spec(family)
    cls = spec.config if section == "model" else spec.sample_options
    try:
        return section_from_dict(cls, table, section)
    except ConfigError as e:
        owners = _owners_of_fields(family, section, table)
        if not owners:
            raise
        unknown = sorted(set(table) - _field_names(cls))
        head, sep, known = str(e).partition("; known fields")
        raise ConfigError(f"{head} of a {family} model: the {section} section holds {' or '.join(owners)}'s fields "
                          f"({', '.join(unknown[:3])}{', …' if len(unknown) > 3 else ''}), while model.family = "
                          f"{family!r}{sep}{known}") from None


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _owners_of_fields(family: str, section: str, table: Any) -> list[str]:
    """The other families whose `section` has every field of `table` that `family`'s lacks."""
    if not isinstance(table, dict):
        return []
    spec = family_spec(family)
    unknown = set(table) - _field_names(spec.config if section == "model" else spec.sample_options)
    if not unknown:
        return []
    return [name for name, other in FAMILIES.items() if name != family and unknown <= _field_names(
        other.config if section == "model" else other.sample_options)]


def _sampling_table(d: Any, options_cls: type) -> Any:
    """The [sampling] table, less the fields of GenLab 0.1's shared section that this family's
    options do not have (old run directories stay readable; new misspellings are still errors)."""
    if not isinstance(d, dict):
        return d
    names = {f.name for f in dataclasses.fields(options_cls)}
    return {k: v for k, v in d.items() if k in names or k not in LEGACY_SAMPLING_FIELDS}


# ---- presets ---------------------------------------------------------------------------------
def list_presets() -> dict[str, str]:
    """Preset name -> its one-line description (the first comment line of the file)."""
    out = {}
    for p in sorted(PRESET_DIR.glob("*.toml")):
        first = p.read_text(encoding="utf-8").splitlines()[:1]
        desc = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
        out[p.stem] = desc
    return out


def load_preset(name: str) -> RunConfig:
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets()) or 'none'}")
    return RunConfig.load(path)
