"""Diffusion solvers as objects, in the manner of diffusers' schedulers, written against noise
levels (engine.diffusion.levels), so one solver serves DDPM's discrete schedule, EDM's sigma and
flow matching's t.

A solver owns the schedule of levels it walks (`levels(n)`) and the update rule; `step` asks a
denoiser (engine.diffusion.denoise.Denoiser: x̂0 and ε̂ at a level, whatever the network predicts)
as often as it needs and moves x to the schedule's next level. `engine.diffusion.denoise` runs the
loop.

On DDPM's discrete levels all arithmetic is float32, in the same order as the original
`sample_loop` / `ddim_invert` (tests/engine/reference_sampler.py), so the results are bit-exact.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from engine.core.registry import load_object
from engine.core.solvers import SOLVERS
from engine.diffusion.levels import DiscreteVP, Level, NoiseLevels
from engine.family.noise import randn_like


class Solver:
    """Base class. Subclasses set `name`, declare their keyword options in `options` (option ->
    default) and implement `_update` (one denoiser call per step) or `_step` (any number).

    levels: the level type walked (a NoiseLevels), or DDPM's alphas_cumprod (T,) as shorthand for
    DiscreteVP(alphas_cumprod, spacing). clip_x0: clamp x̂0 to the data range [-1, 1] (and make ε̂
    agree with it) at every prediction.
    """

    name: ClassVar[str] = "solver"
    options: ClassVar[dict[str, Any]] = {}
    stochastic: bool = False   # draws fresh noise in `step` (may depend on the options)
    invertible: ClassVar[bool] = False  # implements `inverse_step`

    def __init__(self, levels: NoiseLevels | torch.Tensor, *, spacing: str | None = None, clip_x0: bool = True,
                 **params: Any):
        for key in params:
            if key not in self.options:
                known = ", ".join(self.options) or "none"
                raise ValueError(f"solver {self.name} takes no option {key!r}; its options: {known}")
        if isinstance(levels, torch.Tensor):
            levels = DiscreteVP(levels, spacing or "linspace")
        elif spacing is not None:
            raise ValueError(f"spacing {spacing!r} is for DDPM's alphas_cumprod; {levels!r} has its own")
        self.noise_levels: NoiseLevels = levels
        self.clip_x0 = clip_x0
        self.params: dict[str, Any] = {**self.options, **params}
        self._levels: list[Level] = []
        self._index: dict[Any, int] = {}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({self.noise_levels!r}, clip_x0={self.clip_x0}{opts})"

    # -- schedule ---------------------------------------------------------------------------------

    def levels(self, n: int, device: torch.device | str | None = None) -> list[Level]:
        """Set and return the schedule `step` walks for n steps: the noisy levels (n, or fewer),
        noisiest first, then the clean level, all on `device`."""
        self._levels = self.noise_levels.schedule(n, device)
        self._index = {lv.cond: i for i, lv in enumerate(self._levels[:-1])}
        return list(self._levels)

    def timesteps(self, n: int) -> list:
        """Set the schedule for n steps (on the CPU) and return the cond of each noisy level: what
        the network is told at each step (DDPM: its integer timesteps, descending)."""
        return [lv.cond for lv in self.levels(n)[:-1]]

    def network_evaluations(self, n: int) -> int:
        """Denoiser calls for n steps (one per noisy level; solvers that call more say so)."""
        return self.noise_levels.count(n)

    def _find(self, t: Level | Any) -> int:
        if not self._levels:
            raise RuntimeError(f"solver {self.name}: call levels(n) or timesteps(n) before step()")
        cond = t.cond if isinstance(t, Level) else t
        try:
            return self._index[cond]
        except (KeyError, TypeError):
            raise ValueError(f"level {t!r} is not in the schedule "
                             f"{[lv.cond for lv in self._levels[:-1]]}") from None

    # -- update -----------------------------------------------------------------------------------

    def predict(self, denoiser: Any, x: torch.Tensor, level: Level) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂0, ε̂) at a noisy level, x̂0 clipped if clip_x0 (and ε̂ made to agree with it)."""
        x0, eps = denoiser.predict(x, level)
        if self.clip_x0:  # keep x0 in the data range and make eps agree with the clipped x0
            x0 = x0.clamp(-1, 1)
            eps = (x - level.alpha * x0) / level.sigma
        return x0, eps

    def step(self, denoiser: Any, t: Level | Any, x: torch.Tensor, *,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from level t (a Level of the schedule, or its cond) to the schedule's next one.

        x: (B, C, H, W) float32 at level t. Returns (x_next, x0_pred), both (B, C, H, W), x0_pred
        the prediction at t; at the last noisy level x_next is x0_pred.
        """
        i = self._find(t)
        return self._step(denoiser, x, self._levels[i], self._levels[i + 1], generator=generator)

    def _step(self, denoiser: Any, x: torch.Tensor, level: Level, nxt: Level, *,
              generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        x0, eps = self.predict(denoiser, x, level)
        if nxt.clean:
            return x0, x0
        return self._update(x, x0, eps, level, nxt, generator=generator), x0

    def _update(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, level: Level, nxt: Level, *,
                generator: torch.Generator | None) -> torch.Tensor:
        """x at the (noisy) next level from x at `level`, given the (clipped) x̂0 and ε̂ there."""
        raise NotImplementedError

    def inverse_step(self, denoiser: Any, level: Level, nxt: Level, x: torch.Tensor) -> torch.Tensor:
        """x at the noisier level nxt from x at `level` (only where `invertible`)."""
        raise NotImplementedError(f"solver {self.name} cannot run backwards")


class DDIMSolver(Solver):
    """DDIM (Song et al. 2021). eta 0 is deterministic (and invertible): the Euler step of the
    probability-flow ODE in x/alpha over sigma/alpha (Karras et al. 2022), which is Euler in sigma
    on EDM's levels and Euler in t on flow matching's. eta 1 samples DDPM's posterior variance."""

    name = "ddim"
    options = {"eta": 0.0}
    invertible = True

    def __init__(self, levels: NoiseLevels | torch.Tensor, **kwargs: Any):
        super().__init__(levels, **kwargs)
        self.eta = float(self.params["eta"])
        if self.eta < 0:
            raise ValueError(f"solver ddim: eta must be >= 0, got {self.eta}")
        self.stochastic = self.eta > 0

    def _update(self, x, x0, eps, level, nxt, *, generator):
        _, var = level.transition(nxt)
        sigma = self.eta * (nxt.sigma2 / level.sigma2 * var).sqrt()
        x = nxt.alpha * x0 + (nxt.sigma2 - sigma ** 2).clamp(min=0).sqrt() * eps
        if self.eta > 0:
            x = x + sigma * randn_like(x, generator)
        return x

    def inverse_step(self, denoiser, level, nxt, x):
        """Deterministic DDIM run backwards: x̂0 and ε̂ at `level` (unclipped, so the image is not
        altered), re-noised to nxt with the same ε̂. x: (B, C, H, W)."""
        x0, eps = denoiser.predict(x, level)
        return nxt.alpha * x0 + nxt.sigma * eps


class DDPMSolver(Solver):
    """Ancestral DDPM (Ho et al. 2020): samples the posterior q(x_next | x, x̂0) between the levels."""

    name = "ddpm"
    stochastic = True

    def _update(self, x, x0, eps, level, nxt, *, generator):
        c_x0, c_x, var = level.posterior(nxt)
        mean = c_x0 * x0 + c_x * x
        return mean + var.sqrt() * randn_like(x, generator)


class HeunSolver(Solver):
    """EDM's deterministic 2nd-order Heun sampler (Karras et al. 2022, Algorithm 1, no churn): an
    Euler (DDIM) step, then the ODE's slope at its end averaged with the slope at the start; the
    last step, to the clean level, stays Euler. Two denoiser calls per step but the last. The ODE
    runs in each level type's frame (Level.ode_scale / ode_time / ode_direction): sigma on EDM's
    levels (Algorithm 1 as printed), t on flow matching's, and flow matching's time
    sigma/(alpha + sigma) on DDPM's discrete levels."""

    name = "heun"

    def network_evaluations(self, n):
        return 2 * self.noise_levels.count(n) - 1

    def _step(self, denoiser, x, level, nxt, *, generator):
        x0, eps = self.predict(denoiser, x, level)
        if nxt.clean:
            return x0, x0
        x_euler = nxt.alpha * x0 + nxt.sigma * eps
        x0_2, eps_2 = self.predict(denoiser, x_euler, nxt)
        # x_next = x_euler + scale' · h/2 · (slope' - slope), h the step in ODE time
        half = nxt.ode_scale * (nxt.ode_time - level.ode_time) / 2
        return x_euler + half * (nxt.ode_direction(x0_2, eps_2) - level.ode_direction(x0, eps)), x0


class MidpointSolver(Solver):
    """The explicit midpoint method (2nd-order Runge-Kutta) on the probability-flow ODE, in each
    level type's ODE frame (Level.ode_scale / ode_time / ode_direction): an Euler (DDIM) half step
    to the level between the two (NoiseLevels.midpoint: the mean t on flow matching's levels, the
    mean sigma on EDM's, the middle integer timestep on DDPM's), then the whole step with the
    slope found there. Two denoiser calls per step but the last, which goes to x̂0 like Heun's (and
    one where the level type has no level in between, e.g. adjacent DDPM timesteps: an Euler step)."""

    name = "midpoint"

    def network_evaluations(self, n):
        levels = self.noise_levels.schedule(n)
        return sum(1 if nxt.clean or self.noise_levels.midpoint(lv, nxt) is None else 2
                   for lv, nxt in zip(levels[:-1], levels[1:]))

    def _step(self, denoiser, x, level, nxt, *, generator):
        x0, eps = self.predict(denoiser, x, level)
        if nxt.clean:
            return x0, x0
        mid = self.noise_levels.midpoint(level, nxt, x.device)
        if mid is None:
            return nxt.alpha * x0 + nxt.sigma * eps, x0
        x0_m, eps_m = self.predict(denoiser, mid.alpha * x0 + mid.sigma * eps, mid)
        # x_next / scale' = x / scale + h · slope(mid), h the whole step in ODE time
        h = nxt.ode_time - level.ode_time
        return nxt.ode_scale * (x / level.ode_scale + h * mid.ode_direction(x0_m, eps_m)), x0


def build_solver(name: str, levels: NoiseLevels | torch.Tensor, *, spacing: str | None = None,
                 clip_x0: bool = True, lenient: bool = False, **params: Any) -> Solver:
    """The solver registered as `name` in engine.core.solvers.SOLVERS, over `levels` (a NoiseLevels,
    or DDPM's alphas_cumprod walked with `spacing`).

    Unknown options raise ValueError; with lenient=True options the solver does not declare are
    dropped instead (for callers that pass one option set, e.g. eta, to whichever solver is chosen).
    """
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS.names()) or 'none'}")
    cls = load_object(SOLVERS.get(name).impl)
    if lenient:
        params = {k: v for k, v in params.items() if k in cls.options}
    return cls(levels, spacing=spacing, clip_x0=clip_x0, **params)
