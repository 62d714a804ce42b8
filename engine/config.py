"""Typed run configuration: data, model, training and sampling sections.

This module is part of the seam between app/ and engine/: it imports nothing heavy (no torch), so
the GUI can build forms from the schema (field metadata carries help text, allowed values and
ranges) and validate a config before any engine process starts.

A config is data, written into the run directory before work starts (config.toml) and never
changed afterwards; the checkpoint JSON carries a copy too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

PRESET_DIR = Path(__file__).resolve().parent.parent / "resources" / "presets"

DATASETS = ("digits", "shapes", "faces", "textures", "folder")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COLOR_MODES = ("auto", "rgb", "grayscale")


class ConfigError(ValueError):
    """A config value is wrong. The message names the field, the value and what is allowed."""


def opt(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None, advanced: bool = False) -> Any:
    """A config field with the metadata the GUI form and the validator read."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "advanced": advanced}
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    dataset: str = opt("digits", "Built-in dataset, or 'folder' for your own images.", choices=DATASETS)
    path: str = opt("", "Folder of images (only for dataset = 'folder'); subfolders become classes.")
    resolution: int = opt(16, "Images are resized and center-cropped to this size (pixels).", min=4, max=1024)
    color: str = opt("auto", "Colour mode: 'auto' keeps the dataset's own.", choices=COLOR_MODES)
    count: int = opt(4000, "How many images to generate (shapes) or crop (textures).", min=1, max=1_000_000)
    max_images: int = opt(0, "Use at most this many images (0 = all).", min=0)
    hflip: bool = opt(False, "Randomly mirror images left-right while training.")
    seed: int = opt(0, "Seed for procedural datasets (shapes, textures).", min=0)


@dataclass
class DDPMConfig:
    family: str = opt("ddpm", "Model family.", choices=("ddpm",))
    base_channels: int = opt(32, "Channels of the UNet's first level.", min=4, max=1024)
    channel_mults: list = opt([1, 2, 2], "Channel multiplier per UNet level; each level halves the resolution.")
    num_res_blocks: int = opt(1, "Residual blocks per UNet level.", min=1, max=8)
    attention_resolutions: list = opt([4], "Feature-map sizes (pixels) that get self-attention.")
    attention_heads: int = opt(4, "Heads of each self-attention layer.", min=1, max=64, advanced=True)
    dropout: float = opt(0.0, "Dropout inside residual blocks.", min=0.0, max=0.9)
    class_conditional: bool = opt(True, "Condition on class labels (when the dataset has more than one class).")
    label_dropout: float = opt(0.1, "Probability of dropping the label while training (enables classifier-free guidance).",
                               min=0.0, max=1.0)
    schedule: str = opt("cosine", "Noise schedule.", choices=("linear", "cosine"))
    timesteps: int = opt(1000, "Number of diffusion steps T.", min=2, max=10000)


GAN_LOSSES = ("ns", "wgan-gp", "hinge")
GAN_AUGMENTS = ("none", "diffaug", "ada")
DIFFAUG_POLICIES = ("color", "translation", "cutout")


@dataclass
class GANConfig:
    family: str = opt("gan", "Model family.", choices=("gan",))
    z_dim: int = opt(64, "Size of the latent vector z.", min=1, max=4096)
    g_channels: int = opt(32, "Generator channels at full resolution; doubled at each coarser level.", min=4, max=1024)
    d_channels: int = opt(32, "Discriminator channels at full resolution; doubled at each coarser level.", min=4, max=1024)
    max_channels: int = opt(256, "Cap on the channels of any level.", min=4, max=2048, advanced=True)
    loss: str = opt("ns", "ns = non-saturating, wgan-gp = Wasserstein with gradient penalty, hinge.", choices=GAN_LOSSES)
    n_critic: int = opt(1, "Discriminator steps per generator step (5 is usual for WGAN-GP).", min=1, max=20)
    gp_weight: float = opt(10.0, "Weight of WGAN-GP's gradient penalty.", min=0.0, max=1000.0, advanced=True)
    r1_gamma: float = opt(0.0, "R1 penalty on real images (0 = off).", min=0.0, max=1000.0)
    r1_every: int = opt(16, "Lazy regularization: apply R1 every N steps (scaled by N).", min=1, max=1000, advanced=True)
    spectral_norm: bool = opt(False, "Spectral normalization on the discriminator's layers.")
    minibatch_std: bool = opt(True, "Minibatch standard-deviation feature in the discriminator (fights mode collapse).")
    class_conditional: bool = opt(False, "Condition on class labels (when the dataset has more than one class).")
    conditioning: str = opt("projection", "How D uses labels: projection discriminator, or AC-GAN's auxiliary classifier.",
                            choices=("projection", "acgan"))
    acgan_weight: float = opt(1.0, "Weight of AC-GAN's classification loss.", min=0.0, max=100.0, advanced=True)
    augment: str = opt("diffaug", "Small-data aid: DiffAugment (always on), ADA (adaptive probability p), or none.",
                       choices=GAN_AUGMENTS)
    diffaug_policy: str = opt("color,translation,cutout", "DiffAugment's transforms (comma-separated).", advanced=True)
    ada_target: float = opt(0.6, "ADA raises p while E[sign D(real)] is above this.", min=0.0, max=1.0)
    ada_interval: int = opt(4, "ADA adjusts p every N steps.", min=1, max=1000, advanced=True)
    ada_kimg: float = opt(20.0, "ADA's speed: thousands of images for p to go from 0 to 1.", min=0.01, max=10000.0,
                          advanced=True)
    adam_beta1: float = opt(0.5, "Adam beta1 for both networks.", min=0.0, max=0.999, advanced=True)
    adam_beta2: float = opt(0.999, "Adam beta2 for both networks.", min=0.0, max=0.9999, advanced=True)
    d_lr_ratio: float = opt(1.0, "Discriminator learning rate = training.lr times this.", min=0.0, max=100.0,
                            advanced=True)


@dataclass
class StyleGANConfig(GANConfig):
    family: str = opt("stylegan", "Model family.", choices=("stylegan",))
    w_dim: int = opt(128, "Size of the intermediate latent w.", min=4, max=2048)
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


# Each family registers the dataclass of its [model] section here (light: no torch).
MODEL_CONFIGS: dict[str, type] = {"ddpm": DDPMConfig, "gan": GANConfig, "stylegan": StyleGANConfig}


@dataclass
class TrainingConfig:
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
    num_threads: int = opt(0, "CPU threads for PyTorch (0 = all cores).", min=0, advanced=True)
    log_every: int = opt(10, "Write a metrics line every N steps.", min=1)
    sample_every: int = opt(250, "Save a fixed-seed sample grid every N steps (0 = only at start and end).", min=0)
    checkpoint_every: int = opt(500, "Save a checkpoint every N steps (0 = only at the end).", min=0)
    keep_checkpoints: int = opt(3, "How many recent checkpoints to keep (0 = all).", min=0)


@dataclass
class SamplingConfig:
    sampler: str = opt("ddim", "Sampler: DDIM (deterministic at eta 0) or ancestral DDPM.", choices=("ddim", "ddpm"))
    steps: int = opt(50, "Denoising steps used for sampling.", min=1, max=10000)
    eta: float = opt(0.0, "DDIM noise: 0 = deterministic, 1 = like DDPM.", min=0.0, max=1.0)
    guidance_scale: float = opt(2.0, "Classifier-free guidance scale (1 = off; needs class conditioning).", min=0.0, max=50.0)
    truncation_psi: float = opt(1.0, "GANs: truncation psi (1 = off; lower trades variety for typical images).",
                                min=0.0, max=2.0)
    noise_mode: str = opt("const", "StyleGAN noise inputs: const (fixed), random, or off.",
                          choices=("const", "random", "off"))
    grid_size: int = opt(100, "Images in each training sample grid.", min=1, max=1024)
    seed: int = opt(0, "Seed of the fixed-noise sample grids.", min=0)


def sampling_options(s: "SamplingConfig", **overrides) -> dict:
    """The keyword options a family's sample() takes from the sampling section (every family
    ignores the ones it has no use for)."""
    d = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("grid_size", "seed")}
    d.update({k: v for k, v in overrides.items() if v is not None})
    return d


METRIC_NAMES = ("fid", "kid", "pr", "is")


@dataclass
class MetricsConfig:
    every: int = opt(0, "Score sample quality every N steps during training (0 = off).", min=0)
    samples: int = opt(1000, "Generated (and real) images per evaluation.", min=10, max=100_000)
    metrics: list = opt(["fid", "kid", "pr"], "Which metrics: fid (Fréchet distance), kid, pr (precision/recall), is.")
    sampling_steps: int = opt(25, "Denoising steps for the evaluation samples.", min=1, max=10000)
    domain_steps: int = opt(300, "Training steps of GenLab's domain feature network (trained once per dataset, cached).",
                            min=10, max=100000, advanced=True)
    inception_weights: str = opt("", "Path of pt_inception-2015-12-05-6726825d.pth (empty: look in torch hub's "
                                     "cache; without it GenLab's domain features are used, reported as FD-domain).")


@dataclass
class RunConfig:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = field(default_factory=DDPMConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
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
        family = model_d.get("family", "ddpm")
        if family not in MODEL_CONFIGS:
            raise ConfigError(f"model.family = {family!r} is not allowed; choose one of: {', '.join(MODEL_CONFIGS)}")
        cfg = cls(
            name=name,
            data=_section_from_dict(DataConfig, d.get("data", {}), "data"),
            model=_section_from_dict(MODEL_CONFIGS[family], model_d, "model"),
            training=_section_from_dict(TrainingConfig, d.get("training", {}), "training"),
            sampling=_section_from_dict(SamplingConfig, d.get("sampling", {}), "sampling"),
            metrics=_section_from_dict(MetricsConfig, d.get("metrics", {}), "metrics"),
        )
        cfg.validate()
        return cfg

    def validate(self) -> "RunConfig":
        for section in ("data", "model", "training", "sampling", "metrics"):
            _validate_section(getattr(self, section), section)
        if self.data.dataset == "folder" and not self.data.path:
            raise ConfigError("data.path is empty; dataset = 'folder' needs the folder of images")
        mults = self.model.channel_mults if hasattr(self.model, "channel_mults") else None
        if mults is not None:
            if not mults or not all(isinstance(m, int) and m >= 1 for m in mults):
                raise ConfigError(f"model.channel_mults = {mults!r} must be a non-empty list of positive integers")
            levels = len(mults) - 1
            if self.data.resolution % (2 ** levels):
                raise ConfigError(f"data.resolution = {self.data.resolution} must be divisible by {2 ** levels} "
                                  f"for a UNet with {len(mults)} levels (model.channel_mults)")
        bad = [m for m in self.metrics.metrics if m not in METRIC_NAMES]
        if bad:
            raise ConfigError(f"metrics.metrics contains {bad[0]!r}; choose from: {', '.join(METRIC_NAMES)}")
        if self.model.family in ("gan", "stylegan"):
            r = self.data.resolution
            if r < 8 or r & (r - 1):
                raise ConfigError(f"data.resolution = {r} must be a power of two of at least 8 for a GAN "
                                  f"(its networks double or halve the size at each level)")
            if self.model.augment == "diffaug":
                bad = [p for p in self.model.diffaug_policy.split(",") if p.strip() not in DIFFAUG_POLICIES]
                if bad:
                    raise ConfigError(f"model.diffaug_policy contains {bad[0]!r}; choose from: "
                                      f"{', '.join(DIFFAUG_POLICIES)}")
        attn = getattr(self.model, "attention_resolutions", None)
        if attn is not None and not all(isinstance(a, int) and a >= 1 for a in attn):
            raise ConfigError(f"model.attention_resolutions = {attn!r} must be a list of positive integers")
        return self

    def replace(self, **sections: dict) -> "RunConfig":
        """A copy with some fields changed, e.g. cfg.replace(training={"steps": 10})."""
        d = self.to_dict()
        new_family = (sections.get("model") or {}).get("family")
        if new_family and new_family != d["model"].get("family"):
            d["model"] = {}  # another family: its own fields, from its defaults
        for section, values in sections.items():
            if isinstance(values, dict):
                d[section].update(values)
            else:
                d[section] = values
        return RunConfig.from_dict(d)

    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ---- TOML --------------------------------------------------------------------------------
    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, source: str = "config") -> "RunConfig":
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
        return cls.from_dict(d)

    def save(self, path: str | Path) -> None:
        from engine.util import atomic_write_text  # local: keeps this module's imports minimal
        atomic_write_text(Path(path), self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            return cls.from_toml(path.read_text(encoding="utf-8"), source=str(path))
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def section_fields(section_cls: type) -> list[dataclasses.Field]:
    """The fields of a section, for forms: name, type, default and metadata (help, choices, min, max)."""
    return list(dataclasses.fields(section_cls))


def _section_from_dict(section_cls: type, d: Any, section: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{section} must be a table, got {d!r}")
    hints = get_type_hints(section_cls)
    names = {f.name for f in dataclasses.fields(section_cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown field {section}.{unknown[0]}; known fields: {', '.join(sorted(names))}")
    values = {}
    for name, value in d.items():
        values[name] = _coerce(value, hints[name], f"{section}.{name}")
    return section_cls(**values)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in _TYPE_NAMES:
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{where} = {value!r} must be {_TYPE_NAMES[typ]}")
        if typ is float and not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} must be a finite number")
        return list(value) if typ is list else value
    return value


def _validate_section(obj: Any, section: str) -> None:
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        where = f"{section}.{f.name}"
        value = _coerce(getattr(obj, f.name), hints[f.name], where)
        meta = f.metadata
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{where} = {value!r} is not allowed; choose one of: {', '.join(map(str, choices))}")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and value < lo:
            raise ConfigError(f"{where} = {value!r} is too small; the minimum is {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{where} = {value!r} is too large; the maximum is {hi}")


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


# ---- a small TOML writer (tomllib only reads) -------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(d: dict) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
