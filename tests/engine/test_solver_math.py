"""What the solvers compute, on every level type (DDPM's discrete schedule, EDM's sigma, flow
matching's t), with data whose optimal denoiser E[x0 | x] is closed-form at every level: each
registered solver reaches the data's mean and variance, Heun (2nd order) beats DDIM (1st order),
DDIM inversion retraces the ODE; and the steps are the papers' own: DDIM is Euler in sigma / in t,
Heun is Karras et al.'s Algorithm 1, DDIM at eta 1 is DDPM, "edm" is EDM's preconditioning."""
import math

import pytest
import torch

from engine.core.registry import load_object
from engine.core.solvers import SOLVERS
from engine.diffusion.denoise import PREDICTIONS, Denoiser, denoise, invert
from engine.diffusion.levels import EDMSigmas
from engine.diffusion.solvers import build_solver
from tests.engine.diffusion_toys import LEVEL_TYPES, GaussianData, TwoPoints, in_parameterisation, sensible

KINDS = ["vp-cosine-1000", "edm", "flow"]
NAMES = SOLVERS.names()
INVERTIBLE = [n for n in NAMES if load_object(SOLVERS.get(n).impl).invertible]
MU = torch.linspace(-0.5, 0.5, 16).view(1, 4, 4)
S = torch.linspace(0.2, 0.6, 16).view(1, 4, 4)
GAUSS = GaussianData(MU, S)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _solver(name, kind, **params):
    return build_solver(name, LEVEL_TYPES[kind](), clip_x0=False, **params)


# -- reaching the data ------------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["gaussian", "two-points"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_solver_reaches_the_datas_mean_and_variance(name, kind, data):
    """About 400 denoiser calls from the exact noisy marginal (Gaussian) or the prior (two points):
    the samples' mean and variance are the data's (per dimension, standardised, for the Gaussian)."""
    solver = _solver(name, kind)
    steps = next(n for n in (400, 200, 100, 50) if solver.network_evaluations(n) <= 401)
    first = solver.levels(steps)[0]
    if data == "gaussian":
        out = denoise(GAUSS, solver, GAUSS.marginal(2000, first, _gen(0)), steps, generator=_gen(1))
        z = (out - MU) / S
        mean_err, var_err = z.mean().item(), z.var().item() - 1
    else:
        two = TwoPoints()
        x_T = solver.noise_levels.prior_std * torch.randn((2000, 1, 4, 4), generator=_gen(0))
        out = denoise(two, solver, x_T, steps, generator=_gen(1))
        mean_err, var_err = out.mean().item() - two.mean, out.var().item() / two.var - 1
        near = torch.minimum((out - two.points[0]).abs(), (out - two.points[1]).abs())
        assert (near < 0.05).float().mean() > 0.99          # the samples are the two points
    assert abs(mean_err) < 0.02 and abs(var_err) < 0.05, (mean_err, var_err)


def _ode_error(name, kind, steps):
    """Relative max error of the solver's x at the last noisy level against the exact
    probability-flow ODE solution for Gaussian data (the last step, to x̂0, is the same for all)."""
    solver = _solver(name, kind)
    levels = solver.levels(steps)
    x_T = GAUSS.marginal(256, levels[0], _gen(1))
    x = x_T
    for level in levels[:-2]:
        x, _ = solver.step(GAUSS, level, x)
    ref = GAUSS.flow(x_T, levels[0], levels[-2])
    return ((x - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("kind", KINDS)
def test_heun_is_second_order_and_beats_ddim_at_few_steps(kind):
    """(On EDM's rho-spaced sigmas Heun needs about 10 steps to pay off, as in Karras et al. Fig. 2.)"""
    ddim = {n: _ode_error("ddim", kind, n) for n in (10, 20, 40)}
    heun = {n: _ode_error("heun", kind, n) for n in (10, 20, 40)}
    assert heun[10] < ddim[10] and heun[20] < ddim[20] / 3
    assert heun[40] < heun[20] / 3                         # second order: ~4x per doubling
    assert ddim[40] > ddim[20] / 2.5                       # first order: ~2x


# -- inversion -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", INVERTIBLE)
def test_inversion_then_denoising_comes_back_to_the_image(name, kind):
    """Gaussian data: x0 no longer determines the answer, so the round trip has to follow the
    probability-flow ODE up and back down; its error is first order in the step."""
    solver = _solver(name, kind)
    start = (MU + S * torch.randn((64, 1, 4, 4), generator=_gen(2))).clamp(-1, 1)

    def error(steps):
        x_T = invert(GAUSS, solver, start, steps)
        assert x_T.std() > 0.5 * solver.noise_levels.prior_std      # it went up to noise
        return (denoise(GAUSS, solver, x_T, steps) - start).abs().max().item()
    coarse, fine = error(25), error(200)
    assert fine < 0.05 and fine < coarse / 4


@pytest.mark.parametrize("kind,prediction", [(k, p) for k in KINDS for p in PREDICTIONS if sensible(k, p)])
@pytest.mark.parametrize("name", INVERTIBLE)
def test_inversion_is_exact_for_data_that_is_one_image(name, kind, prediction):
    x_star = torch.rand((1, 1, 4, 4), generator=_gen(7)) * 1.6 - 0.8
    levels = LEVEL_TYPES[kind]()

    def perfect(x, a, s, cond):
        x0 = x_star.double().expand_as(x)
        return x0, (x - a * x0) / s
    den = Denoiser(in_parameterisation(prediction, levels, perfect), prediction=prediction)
    solver = build_solver(name, levels)
    start = x_star.expand(2, -1, -1, -1).clone()
    x_T = invert(den, solver, start, 8)
    # the exact ODE keeps eps: from the image at the least noisy level to the noisiest (float32
    # rounding of x̂0 at the least noisy level grows by sigma_max / sigma_min on the way up)
    first, last = solver.levels(8)[0], solver.levels(8)[-2]
    eps = (start - last.alpha * x_star) / last.sigma
    torch.testing.assert_close(x_T, first.noised(x_star, eps), atol=1e-4 * levels.prior_std, rtol=1e-4)
    torch.testing.assert_close(denoise(den, solver, x_T, 8), start, atol=1e-4, rtol=0)


# -- the papers' own formulations ------------------------------------------------------------------------

def _linear_net(kind):
    """A denoiser that is not optimal for anything: x̂0 a fixed linear map of x."""
    w = torch.randn(16, 16, generator=_gen(3), dtype=torch.float64) * 0.2

    def model(x, a, s, cond):
        x0 = (x.reshape(x.shape[0], -1) @ w.T).reshape(x.shape) / (a + s)
        return x0, (x - a * x0) / s
    return Denoiser(in_parameterisation("x0", LEVEL_TYPES[kind](), model), prediction="x0")


@pytest.mark.parametrize("kind", ["edm", "flow", "vp"])
def test_ddim_is_the_euler_step_of_the_probability_flow_ode(kind):
    """EDM: x + (sigma' - sigma)·(x - D)/sigma; flow: x + (t' - t)·(eps - x0), the velocity; DDPM's
    levels: Euler in x/alpha over sigma/alpha (Karras et al. 2022, sec. 3)."""
    den, solver = _linear_net(kind), _solver("ddim", kind)
    levels = solver.levels(6)
    x = torch.randn((3, 1, 4, 4), generator=_gen(4)) * solver.noise_levels.prior_std
    for lv, nxt in zip(levels[:-2], levels[1:-1]):
        x0, eps = den.predict(x, lv)
        if kind == "edm":
            euler = x + (nxt.sigma - lv.sigma) * (x - x0) / lv.sigma
        elif kind == "flow":
            euler = x + (nxt.sigma - lv.sigma) * (eps - x0)
        else:
            euler = nxt.alpha * (x / lv.alpha + (nxt.sigma / nxt.alpha - lv.sigma / lv.alpha) * eps)
        x, _ = solver.step(den, lv, x)
        torch.testing.assert_close(x, euler, atol=1e-4, rtol=1e-4)


def test_heun_on_edm_sigmas_is_karras_algorithm_1():
    """The EDM repository's edm_sampler with S_churn = 0, transcribed: Heun in sigma, Euler to 0."""
    sd = 0.5
    def D(x, sigma):   # a smooth, non-linear denoiser
        return torch.tanh(sd ** 2 / (sigma ** 2 + sd ** 2) * x + 0.1 * math.sin(sigma))
    den = Denoiser(lambda x, c_noise: D(x, math.exp(4 * c_noise)), prediction="x0", scalar_cond=True)
    levels = EDMSigmas(sigma_min=0.002, sigma_max=80, rho=7)
    for n in (1, 2, 7):
        latents = torch.randn((2, 1, 4, 4), generator=_gen(n))
        t_steps = levels.sigmas(n) + [0.0]
        x_next = latents.double() * t_steps[0]
        for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
            x_cur = x_next
            d_cur = (x_cur - D(x_cur, t_cur)) / t_cur
            x_next = x_cur + (t_next - t_cur) * d_cur
            if i < n - 1:
                d_prime = (x_next - D(x_next, t_next)) / t_next
                x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
        ours = denoise(den, build_solver("heun", levels, clip_x0=False), latents * levels.prior_std, n)
        torch.testing.assert_close(ours, x_next.float(), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_ddim_at_eta_1_is_ancestral_ddpm(kind):
    """Song et al. 2021: eta 1 gives DDPM's posterior; same noise, same samples (to rounding)."""
    den = _linear_net(kind) if kind != "vp-cosine-1000" else GAUSS
    x_T = torch.randn((4, 1, 4, 4), generator=_gen(5)) * LEVEL_TYPES[kind]().prior_std
    a = denoise(den, _solver("ddim", kind, eta=1.0), x_T, 12, generator=_gen(6))
    b = denoise(den, _solver("ddpm", kind), x_T, 12, generator=_gen(6))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_edm_prediction_is_karras_preconditioning():
    """D(x; sigma) = c_skip·x + c_out·F(c_in·x; c_noise) with EDM's Table 1 coefficients."""
    sd = 0.5
    level = EDMSigmas().schedule(4)[1]
    sigma = float(level.sigma)
    seen = {}

    def F(x_in, cond):
        seen["x_in"], seen["cond"] = x_in, cond
        return torch.sin(x_in)
    x = torch.randn((2, 1, 4, 4), generator=_gen(8)) * sigma
    x0, eps = Denoiser(F, prediction="edm", sigma_data=sd).predict(x, level)
    c_in = 1 / math.sqrt(sigma ** 2 + sd ** 2)
    c_skip, c_out = sd ** 2 / (sigma ** 2 + sd ** 2), sigma * sd / math.sqrt(sigma ** 2 + sd ** 2)
    torch.testing.assert_close(seen["x_in"], x * c_in)
    assert seen["cond"].dtype == torch.float32 and seen["cond"].tolist() == pytest.approx([math.log(sigma) / 4] * 2)
    torch.testing.assert_close(x0, c_skip * x + c_out * torch.sin(x * c_in))
    torch.testing.assert_close(x, x0 + sigma * eps)


@pytest.mark.parametrize("kind,prediction", [(k, p) for k in KINDS for p in PREDICTIONS if sensible(k, p)])
def test_every_prediction_splits_x_into_x0_and_eps(kind, prediction):
    """Whatever the network predicts, x = alpha·x̂0 + sigma·ε̂ at the level."""
    levels = LEVEL_TYPES[kind]()
    den = Denoiser(lambda x, c: torch.tanh(x) * 0.7, prediction=prediction)
    for level in levels.schedule(5)[:-1]:
        x = torch.randn((2, 1, 4, 4), generator=_gen(9)) * (level.alpha + level.sigma)
        x0, eps = den.predict(x, level)
        torch.testing.assert_close(level.alpha * x0 + level.sigma * eps, x, atol=1e-4, rtol=1e-4)


# -- Euler, Heun with churn, Euler-ancestral, DPM-Solver++(2M) ---------------------------------------

@pytest.mark.parametrize("kind,frame", [(k, f) for k in ("vp", "edm", "flow") for f in ("level", "ve")
                                        if (k, f) != ("flow", "ve")])   # flow's t = 1 has no sigma/alpha
def test_heun_step_is_the_euler_step_plus_its_correction(kind, frame):
    """One Heun step from level t to t' is Euler's step plus (h/2)·(d' - d) in the ODE frame, d' the
    slope at Euler's end: in sigma/alpha (frame "ve") x'/alpha' = x_E/alpha' + (s' - s)/2·(eps' - eps);
    in the level's frame its own time and slope."""
    den = _linear_net(kind)
    heun, euler = _solver("heun", kind, frame=frame), _solver("euler", kind, frame=frame)
    levels = heun.levels(6)
    euler.levels(6)
    x = torch.randn((3, 1, 4, 4), generator=_gen(4)) * heun.noise_levels.prior_std
    for lv, nxt in zip(levels[:-2], levels[1:-1]):
        x_e, _ = euler.step(den, lv, x)
        x0, eps = den.predict(x, lv)
        x0_2, eps_2 = den.predict(x_e, nxt)
        if frame == "ve":
            fix = nxt.alpha * (nxt.sigma / nxt.alpha - lv.sigma / lv.alpha) / 2 * (eps_2 - eps)
        elif kind == "vp":    # flow matching's frame: x/(alpha + sigma) over sigma/(alpha + sigma), slope eps - x0
            tau, tau_n = lv.sigma / (lv.alpha + lv.sigma), nxt.sigma / (nxt.alpha + nxt.sigma)
            fix = (nxt.alpha + nxt.sigma) * (tau_n - tau) / 2 * ((eps_2 - x0_2) - (eps - x0))
        elif kind == "edm":   # Karras et al.'s Algorithm 1: slope (x - D)/sigma = eps
            fix = (nxt.sigma - lv.sigma) / 2 * (eps_2 - eps)
        else:                 # flow: slope eps - x0 in t
            fix = (nxt.sigma - lv.sigma) / 2 * ((eps_2 - x0_2) - (eps - x0))
        x_h, _ = heun.step(den, lv, x)
        torch.testing.assert_close(x_h, x_e + fix, atol=1e-4, rtol=1e-4)
        x = x_h


@pytest.mark.parametrize("kind", ["vp", "edm", "flow"])
def test_euler_is_ddim_at_eta_0_and_euler_ancestral_ddim_at_eta_1(kind):
    """Euler with x̂0 held over the step is DDIM (any frame); k-diffusion's ancestral step
    (sigma_up, sigma_down in sigma/alpha) is DDIM's eta-1 noise: same noise, same samples."""
    den = _linear_net(kind)
    x_T = torch.randn((4, 1, 4, 4), generator=_gen(5)) * LEVEL_TYPES[kind]().prior_std
    run = lambda name, **p: denoise(den, _solver(name, kind, **p), x_T, 9, generator=_gen(6))  # noqa: E731
    torch.testing.assert_close(run("euler"), run("ddim"), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(run("euler_ancestral"), run("ddim", eta=1.0), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["edm", "vp-karras"])
def test_dpmpp_2m_is_second_order_on_a_linear_ode(kind):
    """Gaussian data makes the probability-flow ODE linear with a closed-form solution: halving the
    step divides DPM-Solver++(2M)'s error by about 4 (Euler's by about 2). Shown on Karras sigmas,
    whose steps in lambda = log(alpha/sigma) change smoothly; where the first level has alpha near 0
    (flow matching's t, DDPM's last timesteps) the first steps span a huge or infinite lambda range and
    the ratio reaches 4 only beyond 80 steps."""
    dpm = {n: _ode_error("dpmpp_2m", kind, n) for n in (40, 80)}
    euler = {n: _ode_error("euler", kind, n) for n in (40, 80)}
    assert 3.5 < dpm[40] / dpm[80] < 5.5 and dpm[40] < euler[40] / 3, (dpm, euler)
    assert 1.7 < euler[40] / euler[80] < 2.3


@pytest.mark.parametrize("kind", ["edm", "vp-karras"])
def test_unipc_is_third_order_on_a_linear_ode(kind):
    """UniPC's corrector (UniC) raises its order-2 predictor by one (Zhao et al. 2023, Theorem 3.3):
    on the same linear ODE halving the step divides its error by about 8 (measured 8.5 and 8.6 from
    40 to 80 steps), where DPM-Solver++(2M)'s falls by about 4, at the same network passes."""
    uni = {n: _ode_error("unipc", kind, n) for n in (40, 80)}
    dpm = _ode_error("dpmpp_2m", kind, 40)
    assert 6.5 < uni[40] / uni[80] < 11 and uni[40] < dpm / 2, (uni, dpm)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["euler", "heun"])
def test_churn_keeps_the_datas_mean_and_variance(name, kind):
    """EDM's churn adds noise and removes it again: samples stay distributed as the data."""
    solver = _solver(name, kind, S_churn=10.0, S_tmin=0.01, S_tmax=50.0)
    steps = 200 if name == "heun" else 400
    first = solver.levels(steps)[0]
    out = denoise(GAUSS, solver, GAUSS.marginal(2000, first, _gen(0)), steps, generator=_gen(1))
    z = (out - MU) / S
    assert abs(z.mean().item()) < 0.02 and abs(z.var().item() - 1) < 0.05
