"""The denoising trajectory of one sample: each step's x_t and x̂0 with its noise level, streamed
by the sampling loop (engine/diffusion/denoise.py reports every step here) to whoever observes.

The observer travels in a context variable rather than as a parameter: every family's generate()
has the one shared signature, so a family whose sampling goes through the denoising loop streams
its steps with no code of its own (IterativeSampler.trajectory)."""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

StepObserver = Callable[[int, float, float, torch.Tensor, torch.Tensor], None]

_OBSERVER: contextvars.ContextVar[StepObserver | None] = contextvars.ContextVar("step_observer", default=None)


@dataclass
class TrajectoryStep:
    index: int            # the solver step, 0 = the noisiest
    sigma: float          # the level's noise-to-signal ratio sigma/alpha (comparable across families)
    t: float              # what the network was conditioned on there (DDPM's timestep, flow's t, …)
    x: torch.Tensor       # (C, H, W) x after this step, on the CPU
    x0: torch.Tensor      # (C, H, W) the step's x̂0, on the CPU


@contextlib.contextmanager
def observe_steps(observer: StepObserver) -> Iterator[None]:
    """Within the block, observer(i, sigma, t, x, x0) sees every step of every denoising loop
    (x, x0: the whole batch, (B, C, H, W) on the model's device)."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def observing() -> bool:
    """Whether a step observer is set (the loop then reads each level's numbers: a device sync)."""
    return _OBSERVER.get() is not None


def report_step(i: int, sigma: float, t: float, x: torch.Tensor, x0: torch.Tensor) -> None:
    """Called by a sampling loop after step i; nothing happens unless someone observes."""
    observer = _OBSERVER.get()
    if observer is not None:
        observer(i, sigma, t, x, x0)


def record_trajectory(family, seed: int, *, labels=None, use_ema: bool = True, options=None, progress=None,
                      cancel=None) -> tuple[list[TrajectoryStep], torch.Tensor]:
    """Sample one image with `seed` (the image sampling with that seed gives) and record each
    step. Returns the steps and the sample (C, H, W) in [-1, 1]."""
    steps: list[TrajectoryStep] = []

    def keep(i, sigma, t, x, x0):
        steps.append(TrajectoryStep(int(i), float(sigma), float(t), x[0].detach().float().cpu(),
                                    x0[0].detach().float().cpu()))

    with observe_steps(keep):
        image = family.sample(1, seed=seed, labels=labels, use_ema=use_ema, options=options, progress=progress,
                              cancel=cancel)[0]
    if not steps:
        raise ValueError(f"a {family.name} model's sampler does not stream its steps (no trajectory)")
    return steps, image
