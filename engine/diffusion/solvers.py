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

import math
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


# ODE frames for Euler and Heun: (scale, time, direction) of a level, with x/scale affine in time for
# fixed x0 and eps, of slope direction(x0, eps).
#   level  the level type's own (Level.ode_scale / ode_time / ode_direction)
#   ve     Karras et al.'s variance-exploding frame x/alpha over sigma/alpha (slope eps): diffusers'
#          Euler/Heun schedulers on a discrete schedule; needs alpha > 0 at every noisy level
FRAMES = ("level", "ve")


def _frame(level: Level, frame: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
    if frame == "ve":
        if not float(level.alpha) > 0:
            raise ValueError(f"the 've' ODE frame needs alpha > 0; {level!r} has none (use frame 'level')")
        return level.alpha, level.sigma / level.alpha, lambda x0, eps: eps
    return level.ode_scale, level.ode_time, level.ode_direction


class EulerSolver(Solver):
    """EDM's Euler sampler (Karras et al. 2022, Algorithm 2 without its 2nd-order correction): the
    ODE's slope at the level, followed in the ODE frame to the next level, x/scale' = x/scale +
    (time' - time)·slope. With constant x̂0 and ε̂ that is DDIM at eta 0 in any frame; the frames
    differ for Heun's correction.

    Churn (EDM's Algorithm 2, lines 3-5; k-diffusion's s_churn): before the step, at levels whose
    sigma/alpha lies in [S_tmin, S_tmax], noise is added to raise sigma/alpha by the factor
    1 + gamma, gamma = min(S_churn / N, sqrt(2) - 1) for N steps, with S_noise times unit noise; the
    network then sees the noisier level (for DDPM's schedule its fractional timestep). S_churn 0 is
    deterministic.
    """

    name = "euler"
    options = {"S_churn": 0.0, "S_tmin": 0.0, "S_tmax": math.inf, "S_noise": 1.0, "frame": "level"}

    def __init__(self, levels: NoiseLevels | torch.Tensor, **kwargs: Any):
        super().__init__(levels, **kwargs)
        p = self.params
        if p["frame"] not in FRAMES:
            raise ValueError(f"solver {self.name}: frame {p['frame']!r}; choose one of {', '.join(FRAMES)}")
        if float(p["S_churn"]) < 0 or float(p["S_noise"]) < 0:
            raise ValueError(f"solver {self.name}: S_churn and S_noise must be >= 0")
        self.frame = p["frame"]
        self.stochastic = float(p["S_churn"]) > 0

    def _churn(self, x: torch.Tensor, level: Level, generator) -> tuple[torch.Tensor, Level]:
        """x raised to the churned level (and that level), or both unchanged."""
        p = self.params
        churn, n = float(p["S_churn"]), len(self._levels) - 1
        if churn <= 0 or n < 1:
            return x, level
        sig = level.ve_sigma
        if not (math.isfinite(sig) and float(p["S_tmin"]) <= sig <= float(p["S_tmax"])):
            return x, level
        gamma = min(churn / n, math.sqrt(2) - 1)
        hat = self.noise_levels.at_ve_sigma(sig * (1 + gamma), x.device)
        sig_hat = hat.ve_sigma   # the level type may clamp it (DDPM: to its largest sigma)
        if sig_hat <= sig:
            return x, level
        # in the frame x/alpha = x0 + sigma/alpha·eps, the extra noise has variance sig_hat² - sig²
        extra = math.sqrt(sig_hat ** 2 - sig ** 2) * float(p["S_noise"])
        return hat.alpha * (x / level.alpha + extra * randn_like(x, generator)), hat

    def _euler(self, x, x0, eps, level, nxt) -> torch.Tensor:
        scale, time, slope = _frame(level, self.frame)
        scale_n, time_n, _ = _frame(nxt, self.frame)
        return scale_n * (x / scale + (time_n - time) * slope(x0, eps))

    def _step(self, denoiser, x, level, nxt, *, generator):
        x, level = self._churn(x, level, generator)
        x0, eps = self.predict(denoiser, x, level)
        if nxt.clean:
            return x0, x0
        return self._euler(x, x0, eps, level, nxt), x0


class HeunSolver(EulerSolver):
    """EDM's 2nd-order Heun sampler (Karras et al. 2022, Algorithm 2; Algorithm 1 at S_churn 0, the
    default): an Euler step, then the ODE's slope at its end averaged with the slope at the start;
    the last step, to the clean level, stays Euler. Two denoiser calls per step but the last. The ODE
    runs in each level type's frame (Level.ode_scale / ode_time / ode_direction): sigma on EDM's
    levels (the algorithms as printed), t on flow matching's, and flow matching's time
    sigma/(alpha + sigma) on DDPM's discrete levels; frame "ve" runs it in sigma/alpha on any level
    type, as diffusers' HeunDiscreteScheduler does on a discrete schedule. Churn as EulerSolver's."""

    name = "heun"

    def network_evaluations(self, n):
        return 2 * self.noise_levels.count(n) - 1

    def _step(self, denoiser, x, level, nxt, *, generator):
        x, level = self._churn(x, level, generator)
        x0, eps = self.predict(denoiser, x, level)
        if nxt.clean:
            return x0, x0
        # the Euler step, in closed form (equal in every frame where x/scale is affine in time)
        x_euler = nxt.alpha * x0 + nxt.sigma * eps
        x0_2, eps_2 = self.predict(denoiser, x_euler, nxt)
        # x_next = x_euler + scale' · h/2 · (slope' - slope), h the step in ODE time
        _, time, slope = _frame(level, self.frame)
        scale_n, time_n, slope_n = _frame(nxt, self.frame)
        half = scale_n * (time_n - time) / 2
        return x_euler + half * (slope_n(x0_2, eps_2) - slope(x0, eps)), x0


class EulerAncestralSolver(Solver):
    """Euler-ancestral, as k-diffusion's sample_euler_ancestral (eta 1) and diffusers'
    EulerAncestralDiscreteScheduler: in the frame x/alpha over sigma/alpha (s, s' the sigma/alpha of
    this level and the next), an Euler step down to sigma_down = sqrt(s'² - sigma_up²), then fresh
    noise of std sigma_up = s'·sqrt(1 - s'²/s²) brings x back to s'. Written here in x itself through
    the forward transition (alpha'·sigma_up² = sigma'²/sigma²·sigma²_t|s), so it holds where alpha
    is 0 too (flow matching's t = 1, a zero-terminal-SNR schedule); on every level type the update
    equals DDIM's at eta 1, which is the same step under Song et al.'s name."""

    name = "euler_ancestral"
    stochastic = True

    def _update(self, x, x0, eps, level, nxt, *, generator):
        _, var = level.transition(nxt)
        up2 = nxt.sigma2 / level.sigma2 * var                 # (alpha'·sigma_up)²
        down = (nxt.sigma2 - up2).clamp(min=0).sqrt()         # alpha'·sigma_down
        return nxt.alpha * x0 + down * eps + up2.sqrt() * randn_like(x, generator)


class DPMSolverPP2MSolver(Solver):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2; diffusers' DPMSolverMultistepScheduler with
    algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint"): an exponential integrator
    in lambda = log(alpha/sigma) over the data prediction x̂0, with x̂0 extrapolated linearly from this
    level's and the previous level's (multistep: one denoiser call per step):

        x' = (sigma'/sigma)·x - alpha'·(e^-h - 1)·D,   h = lambda' - lambda,
        D = x̂0 + (h / 2h_prev)·(x̂0 - x̂0_prev)

    The first step (no previous x̂0) and the last (to the clean level: x' = x̂0) are first order, as
    diffusers' lower_order_final. e^-h is computed as (sigma'/alpha')/(sigma/alpha), so a level
    with alpha 0 (flow matching's t = 1, zero terminal SNR) is exact: lambda = -inf, the next step
    then first order. A step that does not continue the previous one (RePaint's jumps back) is first
    order too."""

    name = "dpmpp_2m"

    def levels(self, n, device=None):
        self._last: tuple[Level, Level, torch.Tensor] | None = None   # (next level, level, its x̂0)
        return super().levels(n, device)

    @staticmethod
    def _lambda(level: Level) -> torch.Tensor:
        return level.alpha.log() - level.sigma.log()

    def _step(self, denoiser, x, level, nxt, *, generator):
        x0, eps = self.predict(denoiser, x, level)
        last, self._last = getattr(self, "_last", None), (nxt, level, x0)
        if nxt.clean:
            return x0, x0
        d = x0
        if last is not None and last[0] is level:   # this step continues the previous one
            lam = self._lambda(level)
            h, h_prev = self._lambda(nxt) - lam, lam - self._lambda(last[1])
            d = x0 + (0.5 * h / h_prev) * (x0 - last[2])   # h_prev = inf (alpha 0 before): first order
        emh = (nxt.sigma * level.alpha) / (nxt.alpha * level.sigma)   # e^-h
        return (nxt.sigma / level.sigma) * x - (nxt.alpha * (emh - 1)) * d, x0


class UniPCSolver(Solver):
    """UniPC (Zhao et al. 2023; diffusers' UniPCMultistepScheduler with its defaults: solver_type
    "bh2", solver_order 2, predict_x0, lower_order_final): a predictor (UniP) and a corrector (UniC),
    both exponential integrators in lambda = log(alpha/sigma) over the data prediction x̂0, as
    DPM-Solver++. One denoiser call per step: the corrector refines x at a level with the x̂0 the
    network gave there (called on the predictor's x), before the predictor leaves it.

    With h = lambda' - lambda, B(h) = e^-h - 1 (bh2) and D1 = (x̂0_prev - x̂0) / r, r = (lambda_prev - lambda) / h:
        UniP-2:  x' = (sigma'/sigma)·x - alpha'·(e^-h - 1)·x̂0 - alpha'·B(h)·D1/2
        UniC:    x' ← the same from the previous level with the new x̂0' added through rho_c
                 (order 1: rho 1/2; order 2: the 2x2 system of diffusers' R and b)
    The first step and the last (to the clean level: x' = x̂0) are first order. A level with alpha 0
    (flow matching's t = 1, zero terminal SNR) has lambda = -inf: it counts as no history (first
    order after it), and e^-h = 0 there. A step that does not continue the previous one (RePaint's
    jumps back) starts again at first order with no correction."""

    name = "unipc"

    def levels(self, n, device=None):
        self._reset()
        return super().levels(n, device)

    def _reset(self) -> None:
        self._hist: list[tuple[Level, torch.Tensor]] = []   # (level, its x̂0), oldest first, two at most
        # the last predictor step, for the corrector: (from level, to level, x it started from, its order)
        self._pending: tuple[Level, Level, torch.Tensor, int] | None = None

    @staticmethod
    def _lambda(level: Level) -> torch.Tensor:
        return level.alpha.log() - level.sigma.log()

    def _coefficients(self, level: Level, nxt: Level):
        """(h, e^-h - 1, B(h), hh = -h) from `level` to `nxt` (nxt noisy)."""
        h = self._lambda(nxt) - self._lambda(level)
        hh = -h
        h_phi_1 = torch.expm1(hh)   # e^-h - 1; -1 where alpha is 0 at `level` (h = inf)
        return h, h_phi_1, h_phi_1, hh   # bh2: B(h) = e^-h - 1

    def _exp_step(self, x, level, nxt, m0, correction):
        """x at nxt from x at level: the first-order exponential step plus alpha'·B(h)-weighted `correction`."""
        _, h_phi_1, b_h, _ = self._coefficients(level, nxt)
        return (nxt.sigma / level.sigma) * x - (nxt.alpha * h_phi_1) * m0 - (nxt.alpha * b_h) * correction

    def _corrector(self, x0_t, level_t):
        """UniC: x at level_t again, from the previous level with this level's x̂0 (x0_t) added."""
        s0, _, x_prev, order = self._pending
        m0 = self._hist[-1][1]
        h, _, b_h, hh = self._coefficients(s0, level_t)
        d1_t = x0_t - m0
        if order == 1:
            return self._exp_step(x_prev, s0, level_t, m0, 0.5 * d1_t)
        s1, m1 = self._hist[-2]
        rk = (self._lambda(s1) - self._lambda(s0)) / h
        h_phi_k = torch.expm1(hh) / hh - 1
        b1 = h_phi_k / b_h
        b2 = (h_phi_k / hh - 0.5) * 2 / b_h
        # R·rho = b with R = [[1, 1], [rk, 1]] (diffusers' torch.linalg.solve, written out)
        rho0 = (b1 - b2) / (1 - rk)
        rho1 = b1 - rho0
        return self._exp_step(x_prev, s0, level_t, m0, rho0 * (m1 - m0) / rk + rho1 * d1_t)

    def _step(self, denoiser, x, level, nxt, *, generator):
        x0, _ = self.predict(denoiser, x, level)
        pending = getattr(self, "_pending", None)
        if pending is not None and pending[1] is level:   # this step continues the previous one
            x = self._corrector(x0, level)
        else:
            self._reset()
        self._hist = (self._hist + [(level, x0)])[-2:]
        if nxt.clean:
            self._reset()
            return x0, x0
        order = 2 if len(self._hist) == 2 and torch.isfinite(self._lambda(self._hist[0][0])).all() else 1
        if order == 1:
            x_next = self._exp_step(x, level, nxt, x0, torch.zeros_like(x0))
        else:
            h = self._lambda(nxt) - self._lambda(level)
            (s1, m1), m0 = self._hist[0], x0
            rk = (self._lambda(s1) - self._lambda(level)) / h
            x_next = self._exp_step(x, level, nxt, m0, 0.5 * (m1 - m0) / rk)
        self._pending = (level, nxt, x, order)
        if order == 1 and len(self._hist) == 2:   # history behind an alpha-0 level: none for the corrector
            self._hist = self._hist[-1:]
        return x_next, x0


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
