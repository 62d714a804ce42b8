"""Networks and data distributions for testing the diffusion solvers on every level type:

- `in_parameterisation`: a denoiser given as (x̂0, ε̂) in float64, re-expressed as a network that
  predicts eps, x0, v, a flow velocity or EDM's preconditioned F, so every parameterisation of one
  model gives the same images up to float32 rounding;
- `GaussianData` and `TwoPoints`: data whose optimal denoiser E[x0 | x] is closed-form at any
  alpha and sigma, and (Gaussian) whose probability-flow ODE is too.
"""
from __future__ import annotations

import math

import torch

from engine.diffusion.denoise import Prediction
from engine.diffusion.levels import DiscreteVP, EDMSigmas, FlowTimes, Level, NoiseLevels
from engine.diffusion.schedules import make_schedule

SIGMA_DATA = 0.5   # the Denoiser's default, for the "edm" preconditioning

LEVEL_TYPES = {
    "vp": lambda: DiscreteVP(make_schedule("linear", 50)["alphas_cumprod"]),
    "vp-cosine-1000": lambda: DiscreteVP(make_schedule("cosine", 1000)["alphas_cumprod"], "trailing"),
    "vp-karras": lambda: DiscreteVP(make_schedule("linear", 50)["alphas_cumprod"], "karras"),
    "vp-zero-snr": lambda: DiscreteVP(make_schedule("linear", 50, zero_terminal_snr=True)["alphas_cumprod"]),
    "edm": lambda: EDMSigmas(),
    "flow": lambda: FlowTimes(),
}


def sensible(kind: str, prediction: str) -> bool:
    """eps and EDM's preconditioning determine x̂0 only where alpha > 0: not at flow's t = 1 nor at
    a zero-terminal-SNR schedule's last step."""
    return not (kind in ("flow", "vp-zero-snr") and prediction in ("eps", "edm"))


def alpha_sigma(levels: NoiseLevels, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha and sigma (B, 1, 1, 1) float64 at the levels a network is told by `cond` (B,)."""
    if isinstance(levels, DiscreteVP):
        if cond.is_floating_point():   # fractional timesteps (Karras spacing, churn)
            ab = levels.alpha_bar_at(cond).view(-1, 1, 1, 1)
        else:
            ab = levels.alphas_cumprod.double()[cond].view(-1, 1, 1, 1)
        return ab.sqrt(), (1 - ab).sqrt()
    c = cond.double().view(-1, 1, 1, 1)
    if isinstance(levels, EDMSigmas):
        return torch.ones_like(c), (4 * c).exp()     # c_noise = ln(sigma) / 4
    return 1 - c, c                                  # flow: t


def in_parameterisation(prediction: str, levels: NoiseLevels, model):
    """fn(x_in, cond) -> the `prediction` target of `model(x, alpha, sigma, cond) -> (x0, eps)`
    (float64, (B, C, H, W)), as a network trained for it would output it."""
    def fn(x_in, cond):
        a, s = alpha_sigma(levels, cond)
        x = x_in.double()
        if prediction == "edm":   # the network sees c_in · x/alpha
            x = a * x * ((s / a) ** 2 + SIGMA_DATA ** 2).sqrt()
        x0, eps = model(x, a, s, cond)
        if prediction == "edm":
            s_ve, norm = s / a, (s / a) ** 2 + SIGMA_DATA ** 2
            out = (x0 - SIGMA_DATA ** 2 / norm * x / a) / (s_ve * SIGMA_DATA / norm.sqrt())
        else:
            out = {"eps": lambda: eps, "x0": lambda: x0, "v": lambda: a * eps - s * x0,
                   "flow": lambda: eps - x0}[prediction]()
        return out.float()
    return fn


class GaussianData:
    """x0 ~ N(mu, s²) independently per dimension ((C, H, W) tensors mu and s)."""

    def __init__(self, mu: torch.Tensor, s: torch.Tensor):
        self.mu, self.s = mu.double(), s.double()

    def x0(self, x, a, s):
        """E[x0 | x] at alpha a, sigma s (float64)."""
        return self.mu + a * self.s ** 2 / (a * a * self.s ** 2 + s * s) * (x - a * self.mu)

    def predict(self, x: torch.Tensor, level: Level) -> Prediction:
        a, s = level.alpha.double(), level.sigma.double()
        x0 = self.x0(x.double(), a, s)
        return Prediction(x0.float(), ((x.double() - a * x0) / s).float())

    def marginal(self, n: int, level: Level, generator: torch.Generator) -> torch.Tensor:
        """(n, C, H, W) samples of x at `level`."""
        a, s = level.alpha.double(), level.sigma.double()
        x0 = self.mu + self.s * torch.randn((n, *self.mu.shape), generator=generator, dtype=torch.float64)
        return (a * x0 + s * torch.randn(x0.shape, generator=generator, dtype=torch.float64)).float()

    def flow(self, x: torch.Tensor, src: Level, dst: Level) -> torch.Tensor:
        """The exact probability-flow ODE from level src to dst: (x - alpha·mu)/sqrt(alpha²s² + sigma²)
        is constant along it."""
        def std(lv):
            return (lv.alpha.double() ** 2 * self.s ** 2 + lv.sigma.double() ** 2).sqrt()
        w = (x.double() - src.alpha.double() * self.mu) / std(src)
        return (dst.alpha.double() * self.mu + std(dst) * w).float()


class TwoPoints:
    """x0 is `points[0]` with probability `p`, else `points[1]` (every dimension independently)."""

    def __init__(self, points=(-0.6, 0.8), p: float = 0.3):
        self.points, self.p = points, p

    @property
    def mean(self) -> float:
        return self.p * self.points[0] + (1 - self.p) * self.points[1]

    @property
    def var(self) -> float:
        return self.p * (1 - self.p) * (self.points[0] - self.points[1]) ** 2

    def predict(self, x: torch.Tensor, level: Level) -> Prediction:
        a, s = level.alpha.double(), level.sigma.double()
        xd = x.double()
        m0, m1 = self.points
        # log-odds of the first point given x: the Gaussian likelihoods N(x; a·m, s²) and the prior
        logit = (-(xd - a * m0) ** 2 + (xd - a * m1) ** 2) / (2 * s * s) + math.log(self.p / (1 - self.p))
        w0 = torch.sigmoid(logit)
        x0 = w0 * m0 + (1 - w0) * m1
        return Prediction(x0.float(), ((xd - a * x0) / s).float())
