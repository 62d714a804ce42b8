"""Noise levels: where a sampling chain stands between noise and data, whatever the model's
parameterisation.

At every level x = alpha·x0 + sigma·eps, and the network is told the level through `cond`. A level
type (a `NoiseLevels`) makes the schedule a solver walks: a few noisy levels, noisiest first, then
the clean level (alpha 1, sigma 0), where a chain ends.

- DiscreteVP: DDPM's discrete variance-preserving schedule: alpha² = alpha-bar_t and
  sigma² = 1 - alpha-bar_t at the integer timesteps t a spacing picks (cond: t), or, with the
  "karras" spacing, at Karras rho-spaced sigmas mapped to fractional timesteps (cond: float t).
- EDMSigmas: EDM's continuous sigma (variance exploding, alpha = 1), Karras rho-spacing between
  sigma_max and sigma_min (cond: c_noise = ln(sigma) / 4, EDM's preconditioning).
- FlowTimes: flow matching's t in [0, 1] (alpha = 1 - t, sigma = t), evenly spaced (cond: t).

Solvers need a few quantities between two levels (the forward transition from a less noisy level s
to a noisier one t, the DDPM posterior q(x_s | x_t, x0)). Each level type computes them in its own
closed form: the discrete VP levels keep the exact float32 arithmetic of the original DDPM/DDIM
code (1 - alpha-bar_t / alpha-bar_s, not sigma_t² - alpha_t|s²·sigma_s²), so their results are
bit-exact with it; the continuous ones compute in float64 and round once.

Levels hold 0-dim float32 tensors on the device their schedule was made for.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from engine.core.solvers import KARRAS_RHO, SPACINGS, VP_SPACINGS

Device = torch.device | str | None


def spaced_timesteps(T: int, n: int, spacing: str = "linspace") -> list[int]:
    """`n` descending, unique integer timesteps in [0, T-1] (fewer if rounding collides; n is
    clamped to [1, T]). "leading" and "trailing" follow diffusers' DDIMScheduler.set_timesteps with
    steps_offset 0."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    n = max(1, min(int(n), T))
    if spacing == "linspace":  # both ends included: T-1 and 0
        ts = np.round(np.linspace(0, T - 1, n))
    elif spacing == "leading":  # 0, k, 2k, ... with k = T // n
        ts = np.round(np.arange(0, n) * (T // n))
    else:  # trailing: counts down from T-1, so the first step starts from the noisiest timestep
        ts = np.round(np.arange(T, 0, -T / n)) - 1
    # float arange can overshoot by one element; clamping and np.unique absorb it
    ts = np.unique(np.clip(ts.astype(int), 0, T - 1))[::-1]
    return [int(t) for t in ts]


# -- one level ------------------------------------------------------------------------------------

class Level:
    """One noise level: x = alpha·x0 + sigma·eps. Subclasses set the 0-dim float32 tensors alpha,
    sigma and sigma2 (sigma², in the level type's own closed form), `cond` (what the network is
    conditioned on here) and the ODE coordinates below, and implement `transition`.

    ODE frame (for higher-order ODE solvers such as Heun): along the probability-flow ODE,
    x / ode_scale is affine in ode_time for fixed x0 and eps, with slope `ode_direction(x0, eps)`.
    The default is flow matching's own frame, x/(alpha + sigma) = (1 - tau)·x0 + tau·eps over
    tau = sigma/(alpha + sigma) in [0, 1]: bounded for any level type (Karras et al. 2022's
    Algorithm 1 with s(t) = 1 - t, sigma(t) = t/(1 - t)).
    """

    cond: Any
    alpha: torch.Tensor
    sigma: torch.Tensor
    sigma2: torch.Tensor
    ode_scale: torch.Tensor
    ode_time: torch.Tensor

    @property
    def clean(self) -> bool:
        """The end of a chain: no noise left (sigma 0)."""
        raise NotImplementedError

    @property
    def ve_sigma(self) -> float:
        """The noise-to-signal ratio sigma/alpha (the level's sigma in the variance-exploding frame
        x/alpha, EDM's sigma; inf where alpha is 0), as a Python float: what EDM's S_tmin/S_tmax and
        the guidance interval are stated in. Reads the device once."""
        a, s = float(self.alpha), float(self.sigma)
        return s / a if a > 0 else math.inf

    def noised(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x0 diffused to this level with the given noise: alpha·x0 + sigma·noise."""
        return self.alpha * x0 + self.sigma * noise

    def transition(self, s: "Level") -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t|s, sigma²_t|s) of the forward process from the less noisy level s up to this one:
        x_t = alpha_t|s·x_s + sigma_t|s·z."""
        raise NotImplementedError

    def posterior(self, s: "Level") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(x_s | x_t = x, x0) for the less noisy level s: mean c_x0·x0 + c_x·x, variance var, as
        (c_x0, c_x, var)."""
        a, var = self.transition(s)
        return s.alpha * var / self.sigma2, a * s.sigma2 / self.sigma2, var * s.sigma2 / self.sigma2

    def ode_direction(self, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """d(x / ode_scale) / d(ode_time) for fixed x0 and eps: in the default frame, the flow
        velocity eps - x0."""
        return eps - x0


class VPLevel(Level):
    """A timestep t of DDPM's discrete schedule (t = -1: the clean image), from its alpha-bar `ab`.
    t is an int, or a float for a level between the training timesteps (Karras spacing, churn)."""

    def __init__(self, t: int | float, ab: torch.Tensor):
        self.t = self.cond = t if isinstance(t, float) else int(t)
        self.ab = ab                       # 0-dim float32
        self.alpha = ab.sqrt()
        self.sigma = (1 - ab).sqrt()
        self.sigma2 = 1 - ab
        # the default (flow) frame: Karras et al.'s VE frame x/alpha over sigma/alpha would make
        # the first step of a schedule starting near alpha-bar 0 a jump from sigma/alpha ~ 1e4
        self.ode_scale = self.alpha + self.sigma
        self.ode_time = self.sigma / self.ode_scale

    def __repr__(self) -> str:
        return f"VPLevel(t={self.t:g}, alpha_bar={self.ab.item():.6g})"

    @property
    def clean(self) -> bool:
        return self.t < 0

    def transition(self, s):
        ratio = self.ab / s.ab              # alpha-bar_t / alpha-bar_s
        return ratio.sqrt(), 1 - ratio

    def posterior(self, s):
        # Ho et al. 2020, eq. 7, over the respaced chain: beta = 1 - alpha-bar_t / alpha-bar_s
        beta = 1 - self.ab / s.ab
        return (s.alpha * beta / self.sigma2, (1 - beta).sqrt() * s.sigma2 / self.sigma2,
                beta * s.sigma2 / self.sigma2)


class ContinuousLevel(Level):
    """A level given by float alpha and sigma (float64 arithmetic, rounded once to float32)."""

    def __init__(self, alpha: float, sigma: float, cond: Any, device: Device, *, ode_scale: float | None = None,
                 ode_time: float | None = None):
        self.a, self.s = float(alpha), float(sigma)
        self.cond = cond
        self.device = device
        self.alpha, self.sigma, self.sigma2 = self._t(self.a), self._t(self.s), self._t(self.s ** 2)
        self.ode_scale = self._t(self.a + self.s if ode_scale is None else ode_scale)
        self.ode_time = self._t(self.s / (self.a + self.s) if ode_time is None else ode_time)

    def _t(self, v: float) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float32, device=self.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.a:.6g}, sigma={self.s:.6g})"

    @property
    def clean(self) -> bool:
        return self.s == 0.0

    def transition(self, s):
        a = self.a / s.a
        return self._t(a), self._t(max(self.s ** 2 - a * a * s.s ** 2, 0.0))


class EDMLevel(ContinuousLevel):
    """EDM's sigma (variance exploding: x = x0 + sigma·eps), conditioned on c_noise = ln(sigma)/4.
    Its ODE runs in sigma itself, x = x0 + sigma·eps, with slope eps = (x - D(x; sigma))/sigma
    (Karras et al. 2022, Algorithm 1 with sigma(t) = t, s(t) = 1)."""

    def __init__(self, sigma: float, device: Device = None):
        c_noise = 0.25 * math.log(sigma) if sigma > 0 else float("-inf")
        super().__init__(1.0, sigma, c_noise, device, ode_scale=1.0, ode_time=sigma)

    def ode_direction(self, x0, eps):
        return eps


class FlowLevel(ContinuousLevel):
    """Flow matching's t: x = (1 - t)·x0 + t·eps, conditioned on t. Its ODE runs in t itself with
    the velocity eps - x0 (the default frame), finite at t = 1 where alpha is 0."""

    def __init__(self, t: float, device: Device = None):
        super().__init__(1.0 - t, t, float(t), device, ode_scale=1.0, ode_time=t)
        self.t = float(t)


# -- level types: the schedules a solver walks ------------------------------------------------------

class NoiseLevels:
    """A level type and its spacing. `schedule(n)` is what a solver walks for n steps."""

    name: ClassVar[str] = "levels"
    prior_std: float = 1.0   # a chain starts from prior_std · N(0, I)

    def midpoint(self, a: Level, b: Level, device: Device = None) -> Level | None:
        """The level halfway between two noisy levels of a schedule (for the midpoint solver), or
        None where this level type has none in between."""
        return None

    def count(self, n: int) -> int:
        """How many noisy levels the schedule for n steps has."""
        return max(1, int(n))

    def schedule(self, n: int, device: Device = None) -> list[Level]:
        """The `count(n)` noisy levels, noisiest first, then the clean level."""
        raise NotImplementedError

    def at_ve_sigma(self, sigma: float, device: Device = None) -> Level:
        """The level of this type whose sigma/alpha is `sigma` (or the nearest one the type has),
        for solvers that step off the schedule (EDM's churn)."""
        raise NotImplementedError


class DiscreteVP(NoiseLevels):
    """DDPM's schedule: the timesteps `spacing` picks from the T training steps of alphas_cumprod (T,).

    spacing "karras" (diffusers' use_karras_sigmas, A1111's "Karras"): n sigmas (sigma/alpha)
    rho-spaced (rho 7) between the schedule's smallest and largest, each mapped to a fractional
    timestep by linear interpolation of log sigma between the two training timesteps around it
    (diffusers' _sigma_to_t); the network is told that float timestep, the level's alpha-bar is
    the sigma's own 1/(1 + sigma²). A zero terminal alpha-bar counts as 2^-24 there, as diffusers'
    schedulers do, so the largest sigma is finite."""

    name = "vp"

    def __init__(self, alphas_cumprod: torch.Tensor, spacing: str = "linspace"):
        if spacing not in VP_SPACINGS:
            raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(VP_SPACINGS)}")
        self.alphas_cumprod = alphas_cumprod.detach().to(torch.float32)
        self.T = len(self.alphas_cumprod)
        self.spacing = spacing
        self._ac_cache: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"DiscreteVP(T={self.T}, spacing={self.spacing!r})"

    def midpoint(self, a, b, device=None):
        """The middle integer timestep (the network knows no others); None for adjacent ones. With
        Karras spacing, whose timesteps are fractional already, the level halfway in sigma/alpha."""
        if self.spacing == "karras":
            return self.at_ve_sigma((a.ve_sigma + b.ve_sigma) / 2, device)
        t = int(a.t + b.t) // 2
        return self.level(t, device) if b.t < t < a.t else None

    def _ac(self, device: Device) -> torch.Tensor:
        """alphas_cumprod (T,) float32 on `device`, copied once per device."""
        device = torch.device(device or "cpu")
        if device not in self._ac_cache:
            self._ac_cache[device] = self.alphas_cumprod.to(device)
        return self._ac_cache[device]

    def timesteps(self, n: int) -> list[int] | list[float]:
        """The timesteps of the schedule for n steps, descending (floats for "karras")."""
        if self.spacing == "karras":
            return [self.sigma_to_t(s) for s in self.karras_sigmas(n)]
        return spaced_timesteps(self.T, n, self.spacing)

    def count(self, n):
        return len(self.timesteps(n))

    def level(self, t: int, device: Device = None) -> VPLevel:
        """Timestep t (0 <= t < T), or the clean image for t = -1."""
        if t < 0:
            return VPLevel(-1, torch.ones((), device=device))
        return VPLevel(t, self._ac(device)[int(t)])

    def schedule(self, n, device=None):
        if self.spacing == "karras":
            noisy = [self.at_ve_sigma(s, device) for s in self.karras_sigmas(n)]
        else:
            noisy = [self.level(t, device) for t in self.timesteps(n)]
        return noisy + [self.level(-1, device)]

    # -- sigma = sqrt((1 - alpha-bar)/alpha-bar) between the training timesteps ----------------------

    def log_sigmas(self) -> np.ndarray:
        """log sigma_t (T,) float64, ascending in t (alpha-bar 0 counted as 2^-24)."""
        ac = self.alphas_cumprod.double().clamp(min=2.0 ** -24).numpy()
        return 0.5 * np.log((1 - ac) / ac)

    def karras_sigmas(self, n: int) -> list[float]:
        """Karras et al. (2022, eq. 5) with rho 7: n sigmas from the schedule's largest to its smallest,
        evenly spaced in sigma^(1/rho) (diffusers' _convert_to_karras)."""
        ls = self.log_sigmas()
        lo, hi = math.exp(ls[0]) ** (1 / KARRAS_RHO), math.exp(ls[-1]) ** (1 / KARRAS_RHO)
        ramp = np.linspace(0, 1, max(1, int(n)))
        return [float(v) for v in (hi + ramp * (lo - hi)) ** KARRAS_RHO]

    def sigma_to_t(self, sigma: float) -> float:
        """The fractional timestep of `sigma`: log sigma interpolated linearly between the training
        timesteps around it, clamped to [0, T-1] (diffusers' _sigma_to_t)."""
        ls = self.log_sigmas()
        if self.T == 1:
            return 0.0
        log_sigma = math.log(max(sigma, 1e-10))
        low = int(np.clip(np.searchsorted(ls, log_sigma, side="right") - 1, 0, self.T - 2))
        w = float(np.clip((ls[low] - log_sigma) / (ls[low] - ls[low + 1]), 0.0, 1.0))
        return (1 - w) * low + w * (low + 1)

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """alpha-bar at fractional timesteps t (any shape, float64 result): the inverse of
        sigma_to_t, log sigma linear between the training timesteps."""
        ls = torch.from_numpy(self.log_sigmas()).to(t.device)
        t = t.double().clamp(0, self.T - 1)
        low = t.floor().long().clamp(max=max(self.T - 2, 0))
        high = (low + 1).clamp(max=self.T - 1)
        log_sigma = ls[low] + (t - low) * (ls[high] - ls[low])
        return 1 / (1 + (2 * log_sigma).exp())

    def at_ve_sigma(self, sigma, device=None):
        """The level at `sigma`, clamped to the schedule's range, told its fractional timestep."""
        ls = self.log_sigmas()
        sigma = float(np.clip(sigma, math.exp(ls[0]), math.exp(ls[-1])))
        t = self.sigma_to_t(sigma)
        return VPLevel(t, torch.tensor(1.0 / (1.0 + sigma * sigma), dtype=torch.float32, device=device))


class EDMSigmas(NoiseLevels):
    """EDM's sigmas (Karras et al. 2022, eq. 5): n levels from sigma_max down to sigma_min, evenly
    spaced in sigma^(1/rho), then sigma 0."""

    name = "edm"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"EDM sigmas need 0 < sigma_min < sigma_max (got {sigma_min}, {sigma_max})")
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self.prior_std = self.sigma_max

    def __repr__(self) -> str:
        return f"EDMSigmas(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, rho={self.rho})"

    def midpoint(self, a, b, device=None):
        return EDMLevel((a.s + b.s) / 2, device)   # halfway in sigma, the ODE's time here

    def sigmas(self, n: int) -> list[float]:
        n = self.count(n)
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return [(hi + i / max(n - 1, 1) * (lo - hi)) ** self.rho for i in range(n)]

    def schedule(self, n, device=None):
        return [EDMLevel(s, device) for s in self.sigmas(n)] + [EDMLevel(0.0, device)]

    def at_ve_sigma(self, sigma, device=None):
        return EDMLevel(float(sigma), device)


class FlowTimes(NoiseLevels):
    """Flow matching's times: n levels evenly spaced from t = 1 (pure noise) down to 1/n, then t = 0."""

    name = "flow"

    def __repr__(self) -> str:
        return "FlowTimes()"

    def midpoint(self, a, b, device=None):
        return FlowLevel((a.t + b.t) / 2, device)

    def times(self, n: int) -> list[float]:
        n = self.count(n)
        return [1.0 - i / n for i in range(n)]

    def schedule(self, n, device=None):
        return [FlowLevel(t, device) for t in self.times(n)] + [FlowLevel(0.0, device)]

    def at_ve_sigma(self, sigma, device=None):
        # sigma/alpha = t/(1 - t)
        return FlowLevel(1.0 if math.isinf(sigma) else sigma / (1.0 + sigma), device)
