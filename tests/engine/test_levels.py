"""Noise levels: each level type's schedule, its alpha / sigma / cond, and the quantities solvers
take between two levels (forward transition, DDPM posterior, ODE frame), checked against their
definitions in alpha and sigma on every level type."""
import math

import pytest
import torch

from engine.diffusion.levels import (ContinuousLevel, DiscreteVP, EDMSigmas, FlowTimes, spaced_timesteps)
from engine.diffusion.schedules import make_schedule
from tests.engine.diffusion_toys import LEVEL_TYPES

KINDS = list(LEVEL_TYPES)


def _f(t: torch.Tensor) -> float:
    return float(t.double())


def test_vp_levels_are_the_alpha_bars_of_the_spaced_timesteps():
    ac = make_schedule("cosine", 100)["alphas_cumprod"]
    for spacing in ("linspace", "leading", "trailing"):
        levels = DiscreteVP(ac, spacing).schedule(7)
        ts = spaced_timesteps(100, 7, spacing)
        assert [lv.cond for lv in levels] == ts + [-1]
        for lv, t in zip(levels, ts):
            assert torch.equal(lv.alpha, ac[t].sqrt()) and torch.equal(lv.sigma, (1 - ac[t]).sqrt())
            assert torch.equal(lv.sigma2, 1 - ac[t]) and not lv.clean
        assert levels[-1].clean and levels[-1].alpha == 1 and levels[-1].sigma == 0
    assert DiscreteVP(ac).count(500) == 100 and DiscreteVP(ac).prior_std == 1.0


def test_edm_sigmas_are_karras_rho_spaced_then_zero():
    edm = EDMSigmas(sigma_min=0.002, sigma_max=80.0, rho=7.0)
    sig = edm.sigmas(18)
    i = torch.arange(18, dtype=torch.float64)
    want = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7   # EDM eq. 5
    assert torch.allclose(torch.tensor(sig, dtype=torch.float64), want, rtol=1e-12)
    assert sig[0] == pytest.approx(80) and sig[-1] == pytest.approx(0.002)
    levels = edm.schedule(18)
    assert len(levels) == 19 and levels[-1].clean and _f(levels[-1].sigma) == 0
    assert all(lv.alpha == 1 for lv in levels)
    assert levels[3].cond == pytest.approx(math.log(sig[3]) / 4)         # c_noise
    assert edm.sigmas(1) == [80.0] and edm.prior_std == 80.0
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        EDMSigmas(sigma_min=1.0, sigma_max=0.5)


def test_flow_times_run_from_one_to_zero():
    levels = FlowTimes().schedule(4)
    assert [lv.cond for lv in levels] == [1.0, 0.75, 0.5, 0.25, 0.0]
    for lv in levels:
        assert _f(lv.alpha) == pytest.approx(1 - lv.cond) and _f(lv.sigma) == pytest.approx(lv.cond)
    assert levels[-1].clean and not levels[0].clean


@pytest.mark.parametrize("kind", KINDS)
def test_transition_is_the_forward_process_between_levels(kind):
    """x_t = a·x_s + sqrt(var)·z with x_s = alpha_s·x0 + sigma_s·eps' must have alpha_t and sigma_t²."""
    levels = LEVEL_TYPES[kind]().schedule(6)
    for t, s in [(levels[0], levels[3]), (levels[2], levels[3]), (levels[4], levels[-1])]:
        a, var = t.transition(s)
        assert _f(a) * _f(s.alpha) == pytest.approx(_f(t.alpha), rel=1e-5, abs=1e-6)
        assert _f(a) ** 2 * _f(s.sigma2) + _f(var) == pytest.approx(_f(t.sigma2), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_is_unbiased_and_has_the_forward_variance(kind):
    """q(x_s | x_t, x0): with x_t = alpha_t·x0 + sigma_t·eps its mean is alpha_s·x0 + (…)·eps, and
    mean spread plus variance give back sigma_s² (the marginal of x_s)."""
    levels = LEVEL_TYPES[kind]().schedule(6)
    for t, s in zip(levels[:-2], levels[1:-1]):
        c_x0, c_x, var = (_f(v) for v in t.posterior(s))
        assert c_x0 + c_x * _f(t.alpha) == pytest.approx(_f(s.alpha), rel=1e-5, abs=1e-6)
        assert (c_x * _f(t.sigma)) ** 2 + var == pytest.approx(_f(s.sigma2), rel=1e-4, abs=1e-6)


def test_vp_closed_forms_equal_the_general_alpha_sigma_ones():
    """DDPM's levels compute the transition and posterior from alpha-bar (bit-exact with the old
    code); the general formulas on the same alpha and sigma agree up to rounding."""
    levels = DiscreteVP(make_schedule("linear", 1000)["alphas_cumprod"]).schedule(10)
    general = [ContinuousLevel(_f(lv.alpha), _f(lv.sigma), lv.cond, None) for lv in levels]
    for i in range(len(levels) - 2):
        for mine, theirs in zip(levels[i].transition(levels[i + 1]), general[i].transition(general[i + 1])):
            assert _f(mine) == pytest.approx(_f(theirs), rel=1e-4, abs=1e-7)
        for mine, theirs in zip(levels[i].posterior(levels[i + 1]), general[i].posterior(general[i + 1])):
            assert _f(mine) == pytest.approx(_f(theirs), rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_the_ode_frame_makes_every_path_a_straight_line(kind):
    """For fixed x0 and eps, x/ode_scale moves along ode_time with slope ode_direction(x0, eps):
    what a Heun step takes as given."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, generator=g), torch.randn(8, generator=g)
    levels = LEVEL_TYPES[kind]().schedule(5)
    for u, w in zip(levels[:-2], levels[1:-1]):
        lhs = w.noised(x0, eps) / w.ode_scale - u.noised(x0, eps) / u.ode_scale
        rhs = (w.ode_time - u.ode_time) * u.ode_direction(x0, eps)
        torch.testing.assert_close(lhs, rhs, atol=1e-4, rtol=1e-4)
    assert all(torch.isfinite(lv.ode_time) for lv in levels)


def test_levels_live_on_the_device_asked_for():
    for kind in KINDS:
        lv = LEVEL_TYPES[kind]().schedule(3, "cpu")[1]
        assert lv.alpha.device.type == lv.sigma.device.type == "cpu" and lv.alpha.dtype == torch.float32
