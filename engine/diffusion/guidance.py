"""Classifier-free guidance limited to an interval of noise levels (Kynkäänniemi et al. 2024,
"Applying Guidance in a Limited Interval Improves Sample and Distribution Quality in Diffusion
Models"): guidance at high noise pulls samples toward a few modes and at low noise does little, so
it is applied only where sigma/alpha lies in [low, high]; elsewhere the conditional prediction is
used alone, one network pass instead of two.

The interval is stated in the variance-exploding sigma = sigma/alpha of a level (Level.ve_sigma),
EDM's sigma, so one interval means the same noise on every level type."""
from __future__ import annotations

from typing import Any

import torch

from engine.diffusion.denoise import Prediction, denoise
from engine.diffusion.levels import Level


class GuidanceInterval:
    """A denoiser (predict(x, level) -> Prediction) that asks `guided` at levels whose sigma/alpha is
    in [low, high] and `conditional` at all others. Both are denoisers of the same model (the
    guided one folds classifier-free guidance into its network call)."""

    def __init__(self, guided: Any, conditional: Any, low: float, high: float):
        if not 0 <= low <= high:
            raise ValueError(f"guidance interval [{low}, {high}] must have 0 <= low <= high")
        self.guided, self.conditional = guided, conditional
        self.low, self.high = float(low), float(high)

    def __repr__(self) -> str:
        return f"GuidanceInterval([{self.low:g}, {self.high:g}], {self.guided!r})"

    def inside(self, level: Level) -> bool:
        return self.low <= level.ve_sigma <= self.high

    def predict(self, x: torch.Tensor, level: Level) -> Prediction:
        return (self.guided if self.inside(level) else self.conditional).predict(x, level)


def guided_evaluations(solver: Any, steps: int, low: float, high: float) -> tuple[int, int]:
    """(denoiser calls at levels inside [low, high], calls outside) when `solver` runs `steps`
    steps: the solver is run on a one-pixel input with a zero denoiser, which counts the levels it
    asks at (so Heun's second evaluations and churned levels count where they fall)."""
    counts = [0, 0]

    class _Counter:
        def predict(self, x, level):
            counts[0 if low <= level.ve_sigma <= high else 1] += 1
            z = torch.zeros_like(x)
            return Prediction(z, z)

    gen = torch.Generator().manual_seed(0)
    denoise(_Counter(), solver, torch.zeros(1, 1, 1, 1), steps, generator=gen)
    return counts[0], counts[1]
