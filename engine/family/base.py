"""The interface every model family implements.

A family owns its networks (and their EMA copies), creates its optimizers, says how one training
step goes (calling ctx.optimize for each optimizer step: one for diffusion, two for a GAN), how to
sample (`generate`, with its typed sample options), and which capability interfaces it implements
(engine/family/interfaces.py), from which its Capabilities are built. The training loop knows
nothing else about it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from engine.core.capabilities import Capabilities
from engine.core.config import RunConfig
from engine.family.noise import seeded_rows
from engine.core.schema import ConfigError, replace_fields
from engine.core.sections import option_fields


def seed_noise(seeds: list[int], dim: int) -> torch.Tensor:
    """One standard-normal vector per seed, each from its own CPU generator."""
    return seeded_rows(seeds, (dim,))


@dataclass
class Batch:
    images: torch.Tensor   # B, C, H, W float in [-1, 1] on the training device
    labels: torch.Tensor   # B int64
    # which dataset images these are, and which of them are mirrored: for a family that trains on
    # an encoding of the dataset it prepared once (prepare_data), e.g. a parent's latents
    index: torch.Tensor | None = None   # B int64
    flips: torch.Tensor | None = None   # B bool, or None when nothing is mirrored


class StepContext:
    """What a family's training_step may use: device, a seeded generator, autocast, optimize().

    In a distributed run the batch a family sees is this process's share of the global batch,
    the generator is seeded per process, and `reduce_grads` (set by the loop) averages the
    gradients over the processes inside optimize(), so every process takes the same step."""

    def __init__(self, device: torch.device, generator: torch.Generator, optimizers: dict,
                 *, amp_dtype: torch.dtype | None = None, scaler: Any = None, grad_clip: float = 0.0,
                 reduce_grads: Callable[[list[torch.Tensor]], None] | None = None):
        self.device, self.generator, self.optimizers = device, generator, optimizers
        self.amp_dtype, self.scaler, self.grad_clip = amp_dtype, scaler, grad_clip
        self.reduce_grads = reduce_grads
        # a distributed run's sum_ / broadcast_ (engine/training/distributed.py), set by the loop, for
        # state a network updates from its share of the batch (a VQ codebook); None in one process
        self.collectives = None
        self.world_size = 1  # processes sharing each global batch (the batch a family sees is 1/world_size of it)
        self.grad_norms: dict[str, torch.Tensor] = {}
        self.step = 0  # the step being taken (0-based), set by the loop: for every-N-steps work

    def autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def optimize(self, name: str, loss: torch.Tensor, *, skip_above: float | None = None) -> bool:
        """zero_grad, backward (scaled under fp16), average over processes, clip, step the named
        optimizer. With skip_above (VDVAE's update skipping; 0 = only non-finite norms), the total
        gradient norm before clipping is checked first (one device sync) and, when it is above the
        threshold or not finite, the gradients are dropped and the optimizer does not step (under
        fp16 only the loss scale moves). Returns True when the update was skipped."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if self.reduce_grads is not None:
            # before unscale_: an Inf on any process reaches every process's gradients, so all of
            # them skip the step and move the loss scale alike; clipping then sees the global norm
            self.reduce_grads(params)
        if self.scaler is not None:
            self.scaler.unscale_(opt)
        if self.grad_clip > 0:
            self.grad_norms[name] = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        elif skip_above is not None:
            self.grad_norms[name] = torch.nn.utils.get_total_norm([p.grad for p in params])
        if skip_above is not None:
            norm = float(self.grad_norms[name])
            if not math.isfinite(norm) or (skip_above > 0 and norm > skip_above):
                opt.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.update()   # lowers the fp16 scale after an overflow; no step
                return True
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        return False


class Family:
    """Base class. Subclasses set `name` (from their FamilySpec), build `self.networks` (an
    nn.ModuleDict) in __init__, and implement training_step and generate (and make_optimizers when
    one AdamW over all networks is not what they train with)."""

    name: str = ""
    # the families whose checkpoints this one trains on (a two-stage family: latent diffusion over
    # a VAE); empty for a family that takes no parent. Its [model] section then has a `parent`
    # field (engine/core/parents.py) and its __init__ takes `parent=` (engine/family/parent.Parent)
    parent_families: tuple[str, ...] = ()
    # for a family whose parent is optional (flow matching: a reflow run has one, a plain run none),
    # the bool [model] field that says whether this run takes one; "" = a parent is always needed
    parent_switch: str = ""

    @classmethod
    def wants_parent(cls, model: Any) -> bool:
        """Whether a run with this [model] section (a dataclass or its table) trains on a parent."""
        if not cls.parent_families:
            return False
        if not cls.parent_switch:
            return True
        value = model.get(cls.parent_switch) if isinstance(model, dict) else getattr(model, cls.parent_switch, False)
        return bool(value)

    def __init__(self, cfg: RunConfig, channels: int, resolution: int, class_names: list[str]):
        self.cfg, self.channels, self.resolution = cfg, channels, resolution
        self.class_names = list(class_names)
        self.networks = nn.ModuleDict()
        self.ema: nn.ModuleDict | None = None
        self.device = torch.device("cpu")

    def init_ema(self) -> None:
        self.ema = copy.deepcopy(self.networks).requires_grad_(False).eval()

    def update_ema(self, decay: float) -> None:
        """Move each averaged network toward its live copy (a family may average only some)."""
        from engine.family.ema import update_ema
        for name, averaged in (self.ema or {}).items():
            update_ema(averaged, self.networks[name], decay)

    def to(self, device: torch.device) -> "Family":
        self.device = torch.device(device)
        self.networks.to(self.device)
        if self.ema is not None:
            self.ema.to(self.device)
        return self

    def prepare_data(self, images: torch.Tensor, labels: torch.Tensor, *, cache_dir, data_config: dict,
                     hflip: bool, say) -> None:
        """Called by the training loop for a family with a parent, once before the first step,
        with the whole dataset (uint8 (N, C, H, W) and labels): a family that trains on an encoding
        of it (a parent's latents) computes it here, cached in cache_dir (the run folder's
        encoded/), and finds its rows by Batch.index. `say(message)` tells the person what was done."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.networks.parameters())

    def network_evaluations(self, options: Any = None) -> int:
        """Passes of the generating network per image drawn with `options` (None: the run's sample
        options), as evaluation draws them (with class labels on a conditional model): the NFE of
        a speed comparison (engine/ops/compare.py). 1 for a one-pass family (a GAN's generator, a
        VAE's decoder, a flow's inverse, a hierarchical VAE's top-down pass); iterative and
        autoregressive families count their own."""
        return 1

    def nets(self, use_ema: bool = True) -> nn.ModuleDict:
        """The averaged networks when asked for and kept, else the live ones."""
        return self.ema if (use_ema and self.ema is not None) else self.networks

    def optimizer_name(self) -> str:
        """The name of the single optimizer (checkpoints keep its state under it, the log its
        gradient norm as grad/<name>): the network's name when there is one, else the family's."""
        return next(iter(self.networks)) if len(self.networks) == 1 else self.name

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One AdamW over all the networks (training.lr, training.weight_decay, betas 0.9/0.999).
        A family with several optimizers (a GAN's G and D) or another kind overrides this."""
        t = self.cfg.training
        return {self.optimizer_name(): torch.optim.AdamW(self.networks.parameters(), lr=t.lr,
                                                         weight_decay=t.weight_decay, betas=(0.9, 0.999))}

    # -- to implement ---------------------------------------------------------------------------

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One step: compute losses, call ctx.optimize(...), return scalar values to log under
        their namespaced names (engine/core/logkeys.py: "loss/mse", "gan/d_real", …), tensors that the
        loop detaches."""
        raise NotImplementedError

    def generate(self, n: int, *, seed: int, labels: list[int] | None, use_ema: bool, options,
                 progress: Callable[[int, int], None] | None, cancel: Callable[[], bool] | None) -> torch.Tensor:
        """n images in [-1, 1], (n, C, H, W), on the CPU, drawn with `options` (this family's
        sample options dataclass). Image i depends on seed + i (and its label) alone: it is the
        image generate(1, seed=seed + i) gives, up to float rounding between batch sizes (all its
        noise is drawn per image: engine/family/noise.py). Same seed and options, same images."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def sample(self, n: int, *, seed: int = 0, labels: list[int] | None = None, use_ema: bool = True,
               progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
               options: Any = None, **overrides: Any) -> torch.Tensor:
        """generate() with the run's sample options, or `options`, changed by keyword overrides
        (e.g. steps=10). An option this family does not have is an error naming it."""
        opts = self.sample_options(options, **overrides)
        return self.generate(n, seed=seed, labels=labels, use_ema=use_ema, options=opts, progress=progress,
                             cancel=cancel)

    def sample_options(self, base: Any = None, **overrides: Any):
        """This family's sample options: `base` (an options object, a dict of option values, or
        None for the run's [sampling] section) with `overrides` applied; None values are ignored.
        Values are checked against the fields' metadata (choices, ranges)."""
        opts = self.cfg.sampling
        values = {}
        if isinstance(base, dict):
            values.update(base)
        elif base is not None:
            opts = base
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = [f.name for f in option_fields(type(opts))]
        unknown = sorted(k for k in values if k not in known)
        if unknown:
            raise ConfigError(f"unknown sampling option {unknown[0]!r} for a {self.name} model; "
                              f"its options are: {', '.join(known) or 'none'}")
        return replace_fields(opts, values, "sampling") if values else opts

    def labels_for(self, n: int, cls: int | None = None, offset: int = 0) -> list[int] | None:
        """Class labels for n samples: all `cls`, or cycling through the classes (so column k of a
        grid is class k); None when the model is unconditional. A negative `cls` asks for no class,
        as in Conditional.label_tensor: the model's null label, or an error if it has none."""
        if not self.is_conditional:
            return None
        k = len(self.class_names)
        if cls is not None and int(cls) < 0:
            if self.null_label() is None:
                raise ValueError(f"this model has no unconditional mode; choose a class 0..{k - 1}")
            return [-1] * n
        if cls is not None:
            if not 0 <= int(cls) < k:
                raise ValueError(f"class {cls} is out of range: this model has classes 0..{k - 1} "
                                 f"({', '.join(self.class_names)})")
            return [int(cls)] * n
        return [(offset + i) % k for i in range(n)]

    @property
    def is_conditional(self) -> bool:
        return getattr(self, "num_classes", 0) > 0

    def training_artifacts(self) -> list:
        """The previews the training loop writes at every grid interval (engine/family/artifacts.py):
        the sample grid, and what this family's interfaces add (reconstructions for a
        Reconstructor). Extend to add your own: super().training_artifacts() + [MyArtifact()]."""
        from engine.family.artifacts import default_artifacts
        return default_artifacts(self)

    def capabilities(self) -> Capabilities:
        """Built from the interfaces this family implements (never by hand)."""
        from engine.family.interfaces import capabilities_of
        return capabilities_of(self)


def family_class(name: str) -> type[Family]:
    """The Family subclass registered as `name` (engine/core/families.py), imported on first use."""
    from engine.core.families import family_spec
    try:
        return family_spec(name).family_class()
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def build_family(cfg: RunConfig, channels: int, resolution: int, class_names: list[str], *,
                 parent=None) -> Family:
    """The family of cfg. A two-stage family needs its loaded parent (engine/training/parent.py's
    load_parent); a parent given to a family that takes none is an error."""
    cls = family_class(cfg.model.family)
    if cls.wants_parent(cfg.model):
        if parent is None:
            raise ConfigError(f"a {cls.name} model trains on a parent checkpoint "
                              f"({' or '.join(cls.parent_families)}); none was loaded")
        return cls(cfg, channels, resolution, class_names, parent=parent)
    if parent is not None:
        raise ConfigError(f"a {cls.name} model takes no parent checkpoint")
    return cls(cfg, channels, resolution, class_names)
