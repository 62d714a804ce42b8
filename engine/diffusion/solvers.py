"""Diffusion solvers as objects, in the manner of diffusers' schedulers.

A solver owns the respaced timestep schedule and the update rule; `engine.diffusion.denoise` runs
the loop. `step` takes the epsilon prediction at an integer timestep (a `Denoiser` converts x0 / v
networks to epsilon), so one solver serves every parameterisation.

All arithmetic is float32, in the same order as the original `sample_loop` / `ddim_invert`, so the
results are bit-exact with them.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from engine.core.registry import load_object
from engine.family.noise import randn_like
from engine.core.solvers import SOLVERS, SPACINGS


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


class Solver:
    """Base class. Subclasses set `name`, declare their keyword options in `options` (option ->
    default) and implement `_update`.

    alphas_cumprod: (T,) the training schedule's cumulative alpha-bar.
    """

    name: ClassVar[str] = "solver"
    options: ClassVar[dict[str, Any]] = {}
    stochastic: bool = False   # draws fresh noise in `step` (may depend on the options)
    invertible: ClassVar[bool] = False  # implements `inverse_step`

    def __init__(self, alphas_cumprod: torch.Tensor, *, spacing: str = "linspace", clip_x0: bool = True,
                 **params: Any):
        for key in params:
            if key not in self.options:
                known = ", ".join(self.options) or "none"
                raise ValueError(f"solver {self.name} takes no option {key!r}; its options: {known}")
        if spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
        self.alphas_cumprod = alphas_cumprod.detach().to(torch.float32)
        self.T = len(self.alphas_cumprod)
        self.spacing = spacing
        self.clip_x0 = clip_x0
        self.params: dict[str, Any] = {**self.options, **params}
        self._ts: list[int] = []
        self._prev: dict[int, int] = {}
        self._ac_cache: dict[torch.device, torch.Tensor] = {}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(T={self.T}, spacing={self.spacing!r}, clip_x0={self.clip_x0}{opts})"

    # -- schedule ---------------------------------------------------------------------------------

    def timesteps(self, n: int) -> list[int]:
        """Set and return the descending schedule `step` walks (n steps, or fewer)."""
        self._ts = spaced_timesteps(self.T, n, self.spacing)
        # the timestep after the last one is -1: "step to the clean image"
        self._prev = {t: (self._ts[i + 1] if i + 1 < len(self._ts) else -1) for i, t in enumerate(self._ts)}
        return list(self._ts)

    def prev_timestep(self, t: int) -> int:
        """The schedule's timestep after t, or -1 after the last one."""
        if not self._prev:
            raise RuntimeError(f"solver {self.name}: call timesteps(n) before step()")
        try:
            return self._prev[int(t)]
        except KeyError:
            raise ValueError(f"timestep {t} is not in the schedule {self._ts}") from None

    def _ac(self, device: torch.device) -> torch.Tensor:
        """alphas_cumprod (T,) float32 on `device`, copied once per device."""
        if device not in self._ac_cache:
            self._ac_cache[device] = self.alphas_cumprod.to(device)
        return self._ac_cache[device]

    # -- update -----------------------------------------------------------------------------------

    def step(self, model_output: torch.Tensor, t: int, x: torch.Tensor, *,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from timestep t to the schedule's previous one.

        model_output: (B, C, H, W) epsilon predicted for x at t; x: (B, C, H, W) float32.
        Returns (x_prev, x0_pred), both (B, C, H, W); at the last timestep x_prev is x0_pred.
        """
        t = int(t)
        t_prev = self.prev_timestep(t)
        ac = self._ac(x.device)
        ab = ac[t]
        eps = model_output.float()
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if self.clip_x0:  # keep x0 in the data range and make eps agree with the clipped x0
            x0 = x0.clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if t_prev < 0:
            return x0, x0
        return self._update(x, x0, eps, ab, ac[t_prev], generator=generator), x0

    def _update(self, x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, ab: torch.Tensor,
                ab_prev: torch.Tensor, *, generator: torch.Generator | None) -> torch.Tensor:
        """x_prev from x at alpha-bar `ab`, the (clipped) x0 and eps, to alpha-bar `ab_prev` (0-dim)."""
        raise NotImplementedError

    def inverse_step(self, model_output: torch.Tensor, t: int, t_next: int, x: torch.Tensor) -> torch.Tensor:
        """x at the noisier timestep t_next from x at t (only where `invertible`)."""
        raise NotImplementedError(f"solver {self.name} cannot run backwards")


class DDIMSolver(Solver):
    """DDIM (Song et al. 2021). eta 0 is deterministic (and invertible); eta 1 matches DDPM's
    posterior variance."""

    name = "ddim"
    options = {"eta": 0.0}
    invertible = True

    def __init__(self, alphas_cumprod: torch.Tensor, **kwargs: Any):
        super().__init__(alphas_cumprod, **kwargs)
        self.eta = float(self.params["eta"])
        if self.eta < 0:
            raise ValueError(f"solver ddim: eta must be >= 0, got {self.eta}")
        self.stochastic = self.eta > 0

    def _update(self, x, x0, eps, ab, ab_prev, *, generator):
        sigma = self.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        if self.eta > 0:
            x = x + sigma * randn_like(x, generator)
        return x

    def inverse_step(self, model_output: torch.Tensor, t: int, t_next: int, x: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM run backwards: x0 from eps (unclipped, so the image is not altered),
        then re-noised to t_next with the same eps. All tensors (B, C, H, W)."""
        ac = self._ac(x.device)
        eps = model_output.float()
        pred_x0 = (x - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
        return ac[t_next].sqrt() * pred_x0 + (1 - ac[t_next]).sqrt() * eps


class DDPMSolver(Solver):
    """Ancestral DDPM (Ho et al. 2020): samples the posterior q(x_prev | x_t, x0) of the respaced chain."""

    name = "ddpm"
    stochastic = True

    def _update(self, x, x0, eps, ab, ab_prev, *, generator):
        beta = 1 - ab / ab_prev  # the respaced chain's beta between t and t_prev
        mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)) * x
        var = beta * (1 - ab_prev) / (1 - ab)
        return mean + var.sqrt() * randn_like(x, generator)


def build_solver(name: str, alphas_cumprod: torch.Tensor, *, spacing: str = "linspace", clip_x0: bool = True,
                 lenient: bool = False, **params: Any) -> Solver:
    """The solver registered as `name` in engine.core.solvers.SOLVERS.

    Unknown options raise ValueError; with lenient=True options the solver does not declare are
    dropped instead (for callers that pass one option set, e.g. eta, to whichever solver is chosen).
    """
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS.names()) or 'none'}")
    cls = load_object(SOLVERS.get(name).impl)
    if lenient:
        params = {k: v for k, v in params.items() if k in cls.options}
    return cls(alphas_cumprod, spacing=spacing, clip_x0=clip_x0, **params)
