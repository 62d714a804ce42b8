"""The interface every model family implements.

A family owns its networks (and their EMA copies), creates its optimizers, says how one training
step goes (calling ctx.optimize for each optimizer step: one for diffusion, two for a GAN), how to
sample, and what it can do (capabilities). The training loop knows nothing else about it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from engine.capabilities import Capabilities
from engine.config import RunConfig


def seed_noise(seeds: list[int], dim: int) -> torch.Tensor:
    """One standard-normal vector per seed, each from its own CPU generator."""
    return torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@dataclass
class Batch:
    images: torch.Tensor   # B, C, H, W float in [-1, 1] on the training device
    labels: torch.Tensor   # B int64


class StepContext:
    """What a family's training_step may use: device, a seeded generator, autocast, optimize()."""

    def __init__(self, device: torch.device, generator: torch.Generator, optimizers: dict,
                 *, amp_dtype: torch.dtype | None = None, scaler: Any = None, grad_clip: float = 0.0):
        self.device, self.generator, self.optimizers = device, generator, optimizers
        self.amp_dtype, self.scaler, self.grad_clip = amp_dtype, scaler, grad_clip
        self.grad_norms: dict[str, torch.Tensor] = {}
        self.step = 0  # the step being taken (0-based), set by the loop: for every-N-steps work

    def autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """zero_grad, backward (scaled under fp16), clip, step the named optimizer."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        if self.grad_clip > 0:
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            self.grad_norms[name] = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()


class Family:
    """Base class. Subclasses set `name`, build `self.networks` (an nn.ModuleDict) in __init__,
    and implement make_optimizers, training_step, sample and capabilities."""

    name: str = ""
    ema_decay_warmup = True

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
        from engine.training.ema import update_ema
        for name, averaged in (self.ema or {}).items():
            update_ema(averaged, self.networks[name], decay)

    def to(self, device: torch.device) -> "Family":
        self.device = torch.device(device)
        self.networks.to(self.device)
        if self.ema is not None:
            self.ema.to(self.device)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.networks.parameters())

    # -- to implement ---------------------------------------------------------------------------
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One step: compute losses, call ctx.optimize(...), return scalar losses (tensors, detached
        by the loop; "loss" is the headline one)."""
        raise NotImplementedError

    def sample(self, n: int, *, seed: int = 0, labels: list[int] | None = None, use_ema: bool = True,
               progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
               **options: Any) -> torch.Tensor:
        """n images in [-1, 1], (n, C, H, W), on the CPU. Same seed and options, same images."""
        raise NotImplementedError

    def capabilities(self) -> Capabilities:
        raise NotImplementedError

    def bits_per_dim(self, images: torch.Tensor, labels: torch.Tensor) -> float | None:
        """Negative log-likelihood of real images in bits per dimension, for families with a
        likelihood (flows, PixelCNN, VAEs' bound; diffusion may report its ELBO later). None when
        the family has none; the loop then logs nothing."""
        return None

    def labels_for(self, n: int, cls: int | None = None, offset: int = 0) -> list[int] | None:
        """Class labels for n samples: all `cls`, or cycling through the classes (so column k of a
        grid is class k); None when the model is unconditional."""
        if not self.is_conditional:
            return None
        k = len(self.class_names)
        if cls is not None:
            if not 0 <= int(cls) < k:
                raise ValueError(f"class {cls} is out of range: this model has classes 0..{k - 1} "
                                 f"({', '.join(self.class_names)})")
            return [int(cls)] * n
        return [(offset + i) % k for i in range(n)]

    def latent_labels(self) -> list[int] | None:
        """The class a latent walk uses when none is chosen (None: unconditional)."""
        return None

    @property
    def is_conditional(self) -> bool:
        return False
