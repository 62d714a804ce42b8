"""Solver conformance suite: every solver registered in engine.core.solvers.SOLVERS runs against every
parameterisation, timestep spacing and level type (DDPM's discrete schedule, EDM's sigma, flow
matching's t), so a new solver is tested by registering it."""
import math

import numpy as np
import pytest
import torch

from engine.core.registry import load_object

from engine.diffusion.denoise import PREDICTIONS, Denoiser, denoise, invert
from engine.family.progress import Cancelled
from tests.engine.reference_sampler import ddim_invert, respaced_timesteps, sample_loop
from engine.diffusion.schedules import make_schedule
from engine.diffusion.levels import DiscreteVP, spaced_timesteps
from engine.diffusion.solvers import DDIMSolver, DDPMSolver, Solver, build_solver
from engine.core.solvers import SOLVERS, SPACINGS
from tests.engine.diffusion_toys import LEVEL_TYPES, in_parameterisation, sensible

T, STEPS, SHAPE = 50, 5, (2, 1, 4, 4)
NAMES = SOLVERS.names()
INVERTIBLE = [n for n in NAMES if load_object(SOLVERS.get(n).impl).invertible]
NOT_INVERTIBLE = [n for n in NAMES if not load_object(SOLVERS.get(n).impl).invertible]


def _ac(kind: str = "linear") -> torch.Tensor:
    return make_schedule(kind, T)["alphas_cumprod"]


def _x_T(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- networks ---------------------------------------------------------------------------------------
# A fixed random linear eps-network, and x0 / v / flow / edm networks that are the same map
# re-expressed (computed in float64, so they differ from it only by float32 rounding).

_W = torch.randn(16, 16, generator=torch.Generator().manual_seed(42), dtype=torch.float64) * 0.3


def _eps64(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    flat = x.double().reshape(x.shape[0], -1) @ _W.T
    return flat.reshape(x.shape) + 0.01 * t.double().view(-1, 1, 1, 1)


def _linear_eps(x, a, s, t):
    eps = _eps64(x, t)
    return (x - s * eps) / a, eps


def _network(prediction: str, ac: torch.Tensor):
    """fn(x (B,C,H,W), t (B,) long) -> the `prediction` target of the linear eps-network."""
    return in_parameterisation(prediction, DiscreteVP(ac), _linear_eps)


def _perfect(x_star: torch.Tensor, ac: torch.Tensor):
    """The exact eps for data that is the single image x_star (1, C, H, W)."""
    def fn(x, t):
        ab = ac[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * x_star) / (1 - ab).sqrt()
    return fn


def _run(name, prediction="eps", spacing="linspace", seed=1, ac=None, steps=STEPS, **params):
    ac = _ac() if ac is None else ac
    solver = build_solver(name, ac, spacing=spacing, **params)
    den = Denoiser(_network(prediction, ac), prediction=prediction)
    return denoise(den, solver, _x_T(), steps, generator=_gen(seed))


# -- registry conformance ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_solver_matches_its_spec(name):
    spec = SOLVERS.get(name)
    solver = build_solver(name, _ac())
    assert isinstance(solver, Solver)
    assert solver.name == name and spec.help


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_every_solver_gives_finite_images(name, prediction, spacing):
    out = _run(name, prediction, spacing)
    assert out.shape == SHAPE and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1  # clip_x0 and the last step returns x0


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("prediction", [p for p in PREDICTIONS if p != "eps"])
@pytest.mark.parametrize("name", NAMES)
def test_parameterisations_agree(name, prediction, spacing):
    """An x0, v, flow or edm network that is the eps network re-expressed gives the same images."""
    ref = _run(name, "eps", spacing)
    out = _run(name, prediction, spacing)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_determinism_matches_stochasticity(name):
    solver = build_solver(name, _ac())
    den = Denoiser(_network("eps", _ac()))
    if solver.stochastic:
        a = denoise(den, solver, _x_T(), STEPS, generator=_gen(1))
        b = denoise(den, solver, _x_T(), STEPS, generator=_gen(2))
        c = denoise(den, solver, _x_T(), STEPS, generator=_gen(1))
        assert not torch.equal(a, b) and torch.equal(a, c)
    else:  # no generator needed
        assert torch.equal(denoise(den, solver, _x_T(), STEPS), denoise(den, solver, _x_T(), STEPS))


def test_ddim_eta0_deterministic_ddpm_not():
    assert torch.equal(_run("ddim", seed=1), _run("ddim", seed=2))
    assert not torch.equal(_run("ddim", seed=1, eta=0.5), _run("ddim", seed=2, eta=0.5))
    assert not torch.equal(_run("ddpm", seed=1), _run("ddpm", seed=2))


# -- bit-exact parity with the old functions --------------------------------------------------------

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("clip_x0", [True, False])
@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)])
def test_denoise_equals_sample_loop(sampler, eta, clip_x0, schedule):
    ac = _ac(schedule)
    net = _network("eps", ac)
    params = {"eta": eta} if sampler == "ddim" else {}
    solver = build_solver(sampler, ac, clip_x0=clip_x0, **params)
    for steps in (STEPS, 1, T):
        new = denoise(Denoiser(net), solver, _x_T(), steps, generator=_gen(3))
        old = sample_loop(net, _x_T(), ac, sampler=sampler, steps=steps, eta=eta, generator=_gen(3),
                          clip_x0=clip_x0)
        assert torch.equal(new, old), (sampler, eta, steps)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_invert_equals_ddim_invert(schedule):
    ac = _ac(schedule)
    net = _network("eps", ac)
    x0 = _x_T(5).clamp(-1, 1)
    for steps in (STEPS, T):
        new = invert(Denoiser(net), build_solver("ddim", ac), x0, steps)
        assert torch.equal(new, ddim_invert(net, x0, ac, steps=steps))


# -- every level type ---------------------------------------------------------------------------------
# The same solvers over EDM's sigma and flow matching's t (and DDPM's levels beside them: at its
# timesteps, at Karras sigmas between them, and on a zero-terminal-SNR schedule), with a
# linear x0-network re-expressed in every parameterisation that makes sense on the level type.

KINDS = ["vp", "vp-karras", "vp-zero-snr", "edm", "flow"]
COMBOS = [(kind, p) for kind in KINDS for p in PREDICTIONS if sensible(kind, p)]


def _linear_x0(x, a, s, cond):
    flat = (x.reshape(x.shape[0], -1) @ _W.T).reshape(x.shape)
    x0 = 0.5 * flat / (a * a + s * s).sqrt() + 0.01 * cond.double().view(-1, 1, 1, 1)
    return x0, (x - a * x0) / s


def _run_on(name, kind, prediction="x0", steps=STEPS, seed=1, callback=None, fn=None, **params):
    levels = LEVEL_TYPES[kind]()
    solver = build_solver(name, levels, **params)
    den = Denoiser(fn or in_parameterisation(prediction, levels, _linear_x0), prediction=prediction)
    return denoise(den, solver, levels.prior_std * _x_T(), steps, generator=_gen(seed), callback=callback)


@pytest.mark.parametrize("kind,prediction", COMBOS)
@pytest.mark.parametrize("name", NAMES)
def test_every_solver_gives_finite_images_on_every_level_type(name, kind, prediction):
    out = _run_on(name, kind, prediction)
    assert out.shape == SHAPE and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("kind,prediction", [c for c in COMBOS if c[1] != "x0"])
@pytest.mark.parametrize("name", NAMES)
def test_parameterisations_agree_on_every_level_type(name, kind, prediction):
    """The x0-network re-expressed as eps, v, flow or edm gives the same images (clip_x0 off, so
    nothing hides a wrong conversion)."""
    ref = _run_on(name, kind, "x0", clip_x0=False)
    out = _run_on(name, kind, prediction, clip_x0=False)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_solver_walks_its_levels_to_the_clean_one(name, kind):
    """The levels go from the prior's noise down to no noise, and the loop visits each noisy one
    once, in order; the solver says how many denoiser calls that took."""
    solver = build_solver(name, LEVEL_TYPES[kind]())
    levels = solver.levels(STEPS)
    assert len(levels) == STEPS + 1 and levels[-1].clean and not any(lv.clean for lv in levels[:-1])
    noise = [lv.sigma.item() / lv.alpha.item() if lv.alpha > 0 else math.inf for lv in levels]
    assert noise == sorted(noise, reverse=True) and len(set(noise)) == len(noise)
    seen, calls = [], []
    net = in_parameterisation("x0", solver.noise_levels, _linear_x0)
    _run_on(name, kind, fn=lambda x, c: calls.append(c) or net(x, c),
            callback=lambda i, level, x, x0: seen.append(level.cond))
    assert seen == solver.timesteps(STEPS) == [lv.cond for lv in levels[:-1]]
    assert len(calls) == solver.network_evaluations(STEPS)
    assert solver.network_evaluations(1) == 1  # one step: straight to x̂0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_determinism_matches_stochasticity_on_every_level_type(name, kind):
    a, b, c = (_run_on(name, kind, seed=seed, clip_x0=False) for seed in (1, 2, 1))
    assert torch.equal(a, c)
    assert torch.equal(a, b) != build_solver(name, LEVEL_TYPES[kind]()).stochastic


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", INVERTIBLE)
def test_inversion_runs_on_every_level_type(name, kind):
    levels = LEVEL_TYPES[kind]()
    solver = build_solver(name, levels, clip_x0=False)
    den = Denoiser(in_parameterisation("x0", levels, _linear_x0), prediction="x0")
    x_T = invert(den, solver, _x_T(3).clamp(-1, 1), STEPS)
    assert torch.isfinite(x_T).all() and x_T.std() > 0.5 * levels.prior_std


def test_spacing_belongs_to_the_discrete_schedule():
    with pytest.raises(ValueError, match="spacing 'trailing'"):
        build_solver("ddim", LEVEL_TYPES["edm"](), spacing="trailing")


# -- timestep spacing -------------------------------------------------------------------------------

@pytest.mark.parametrize("T_,n", [(50, 5), (1000, 50), (1000, 7), (10, 10), (10, 20), (7, 3), (1000, 1), (3, 0)])
def test_linspace_equals_respaced_timesteps(T_, n):
    assert spaced_timesteps(T_, n) == spaced_timesteps(T_, n, "linspace") == respaced_timesteps(T_, n)


def test_leading_and_trailing_match_diffusers():
    assert spaced_timesteps(1000, 10, "leading") == list(range(900, -1, -100))
    assert spaced_timesteps(1000, 10, "trailing") == list(range(999, 0, -100))


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("T_,n", [(1000, 10), (1000, 3), (1000, 999), (50, 7), (50, 50), (50, 80), (10, 3), (1, 1)])
def test_spacing_is_descending_unique_in_range(spacing, T_, n):
    ts = spaced_timesteps(T_, n, spacing)
    assert all(isinstance(t, int) for t in ts)
    assert ts == sorted(set(ts), reverse=True)
    assert 0 <= ts[-1] and ts[0] <= T_ - 1
    assert 1 <= len(ts) <= min(n, T_)
    if n >= T_:
        assert ts == list(range(T_ - 1, -1, -1))


def test_unknown_spacing_is_named():
    with pytest.raises(ValueError, match="'cubic'.*linspace"):
        spaced_timesteps(100, 10, "cubic")
    with pytest.raises(ValueError, match="'cubic'"):
        build_solver("ddim", _ac(), spacing="cubic")


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("name", NAMES)
def test_solver_walks_its_schedule(name, spacing):
    solver = build_solver(name, _ac(), spacing=spacing)
    ts = solver.timesteps(STEPS)
    assert ts == spaced_timesteps(T, STEPS, spacing)
    seen = []
    den = Denoiser(_network("eps", _ac()))
    denoise(den, solver, _x_T(), STEPS, generator=_gen(0), callback=lambda i, level, x, x0: seen.append(level.cond))
    assert seen == ts


# -- loop hooks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_cancel_raises_before_the_first_step(name):
    calls = []

    def net(x, t):
        calls.append(t)
        return torch.zeros_like(x)
    with pytest.raises(Cancelled):
        denoise(Denoiser(net), build_solver(name, _ac()), _x_T(), STEPS, cancel=lambda: True)
    assert calls == []


@pytest.mark.parametrize("name", NAMES)
def test_progress_and_callback_see_every_step(name):
    solver = build_solver(name, _ac())
    den = Denoiser(_network("eps", _ac()))
    progress, steps = [], []
    out = denoise(den, solver, _x_T(), STEPS, generator=_gen(0), progress=lambda i, n: progress.append((i, n)),
                  callback=lambda i, t, x, x0: steps.append((i, t, x.clone(), x0.clone())))
    n = len(solver.timesteps(STEPS))
    assert progress == [(i + 1, n) for i in range(n)]
    assert [s[0] for s in steps] == list(range(n))
    assert all(s[3].shape == SHAPE for s in steps)
    assert torch.equal(steps[-1][2], out) and torch.equal(steps[-1][3], out)  # last step: x = x0


def test_step_needs_a_schedule():
    solver = build_solver("ddim", _ac())
    x = _x_T()
    den = Denoiser(lambda x, t: torch.zeros_like(x))
    with pytest.raises(RuntimeError, match="timesteps"):
        solver.step(den, T - 1, x)
    solver.timesteps(STEPS)
    with pytest.raises(ValueError, match="not in the schedule"):
        solver.step(den, 3, x)


# -- inversion ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("name", INVERTIBLE)
def test_inversion_round_trip_with_a_perfect_denoiser(name, prediction):
    ac = _ac("cosine")
    x_star = torch.rand((1,) + SHAPE[1:], generator=_gen(7)) * 1.6 - 0.8
    eps = _perfect(x_star, ac)

    # the perfect denoiser in the requested parameterisation
    fn = in_parameterisation(prediction, DiscreteVP(ac), lambda x, a, s, t: (x_star.double().expand_as(x), eps(x, t)))
    den = Denoiser(fn, prediction=prediction)
    solver = build_solver(name, ac)
    start = x_star.expand(SHAPE[0], -1, -1, -1).clone()
    x_T = invert(den, solver, start, STEPS)
    assert torch.isfinite(x_T).all() and not torch.allclose(x_T, start, atol=0.1)  # it did add noise
    torch.testing.assert_close(denoise(den, solver, x_T, STEPS), start, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", INVERTIBLE)
def test_inversion_round_trip_on_gaussian_data(name):
    """Data N(mu, s^2 I) has a closed-form eps, and x0 no longer determines the answer: the round
    trip of an image that is not the mean must follow the probability-flow ODE both ways."""
    ac = _ac("cosine")
    mu = torch.full((1,) + SHAPE[1:], 0.2)
    s2 = 0.25

    def eps(x, t):
        ab = ac[t].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s2 + 1 - ab)
    start = (mu + math.sqrt(s2) * _x_T(9)).clamp(-1, 1)
    solver = build_solver(name, ac, clip_x0=False)

    def error(steps):
        x_T = invert(Denoiser(eps), solver, start, steps)
        return (denoise(Denoiser(eps), solver, x_T, steps) - start).abs().max().item()
    # inversion reuses eps at t for the step to t_next, so the error is first order in the step
    coarse, fine = error(10), error(T)
    assert fine < 0.1 and fine < coarse / 3


@pytest.mark.parametrize("name", NOT_INVERTIBLE)
def test_invert_refuses_a_non_invertible_solver(name):
    with pytest.raises(ValueError, match=name):
        invert(Denoiser(_network("eps", _ac())), build_solver(name, _ac()), _x_T(), STEPS)


# -- construction errors -----------------------------------------------------------------------------

def test_unknown_solver_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="'plms'.*ddim"):
        build_solver("plms", _ac())


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="ddpm takes no option 'eta'"):
        build_solver("ddpm", _ac(), eta=0.5)
    with pytest.raises(ValueError, match="'churn'"):
        build_solver("ddim", _ac(), churn=1.0)
    with pytest.raises(ValueError, match="'eta'"):
        DDPMSolver(_ac(), eta=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_lenient_drops_options_the_solver_does_not_take(name):
    solver = build_solver(name, _ac(), lenient=True, eta=0.0, churn=1.0)
    assert "churn" not in solver.params


def test_ddim_options():
    assert build_solver("ddim", _ac(), eta=0.5).stochastic
    assert build_solver("ddim", _ac(), lenient=True, eta=1.0).eta == 1.0
    with pytest.raises(ValueError, match="eta"):
        DDIMSolver(_ac(), eta=-0.1)


def test_unknown_prediction_is_named():
    with pytest.raises(ValueError, match="'sample'"):
        Denoiser(lambda x, t: x, prediction="sample")


def test_denoiser_passes_a_long_timestep_tensor():
    seen = []
    Denoiser(lambda x, t: seen.append(t) or x).predict(_x_T(), DiscreteVP(_ac()).level(7))
    assert seen[0].dtype == torch.long and seen[0].tolist() == [7] * SHAPE[0]


def test_alphas_cumprod_dtype_does_not_matter():
    """A float64 schedule is used as float32, like the old sample_loop did."""
    ac = make_schedule("linear", T)["alphas_cumprod"]
    a = _run("ddim", ac=ac)
    b = _run("ddim", ac=ac.double())
    assert torch.equal(a, b)
    assert np.isfinite(a.numpy()).all()


# -- options of the newer solvers ---------------------------------------------------------------------

CHURN = {"S_churn": 5.0, "S_tmin": 0.0, "S_tmax": math.inf, "S_noise": 1.003}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["euler", "heun"])
def test_churn_makes_euler_and_heun_stochastic_on_every_level_type(name, kind):
    a, b, c = (_run_on(name, kind, seed=seed, clip_x0=False, **CHURN) for seed in (1, 2, 1))
    assert torch.isfinite(a).all() and torch.equal(a, c) and not torch.equal(a, b)
    assert build_solver(name, LEVEL_TYPES[kind](), **CHURN).stochastic


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_churn_outside_s_tmin_s_tmax_changes_nothing(name):
    """Churn only at levels whose sigma/alpha lies in [S_tmin, S_tmax]: none here."""
    plain = _run_on(name, "edm", clip_x0=False)
    assert torch.equal(_run_on(name, "edm", clip_x0=False, **{**CHURN, "S_tmin": 1e3, "S_tmax": 1e4}), plain)


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_euler_and_heun_options_are_checked(name):
    with pytest.raises(ValueError, match="frame 'vp'"):
        build_solver(name, _ac(), frame="vp")
    with pytest.raises(ValueError, match="S_churn"):
        build_solver(name, _ac(), S_churn=-1.0)
    with pytest.raises(ValueError, match="'ve' ODE frame needs alpha > 0"):
        _run_on(name, "flow", frame="ve")


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_karras_spacing_gives_fractional_timesteps_and_the_same_images_in_every_parameterisation(name, prediction):
    ac = _ac()
    seen = []
    net = in_parameterisation(prediction, DiscreteVP(ac, "karras"), _linear_x0)

    def fn(x, t):
        seen.append(t)
        return net(x, t)
    solver = build_solver(name, DiscreteVP(ac, "karras"), clip_x0=False)
    out = denoise(Denoiser(fn, prediction=prediction), solver, _x_T(), STEPS, generator=_gen(1))
    ref = _run_on(name, "vp-karras", "x0", clip_x0=False)
    assert all(t.dtype == torch.float32 for t in seen) and any((t != t.round()).any() for t in seen)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["dpmpp_2m", "unipc"])
def test_multistep_solvers_restart_first_order_after_a_jump(name):
    """A step that does not continue the previous one (RePaint re-noising back) uses no stale x̂0
    (and UniPC no correction from a step that did not lead here): it equals the same step taken first."""
    solver = build_solver(name, _ac(), clip_x0=False)
    den = Denoiser(_network("eps", _ac()))
    levels = solver.levels(STEPS)
    x = _x_T()
    x1, _ = solver.step(den, levels[0], x)
    solver.step(den, levels[1], x1)               # a second-order step
    again, _ = solver.step(den, levels[1], x1)    # back at level 1: no previous step leads here now
    solver.levels(STEPS)
    fresh, _ = solver.step(den, levels[1], x1)
    torch.testing.assert_close(again, fresh, atol=0, rtol=0)
