"""The midpoint solver: one step is the explicit midpoint rule written out by hand (in t on flow
matching's levels, in sigma on EDM's), it is second order on the exact Gaussian ODE, and it counts
its network passes on DDPM's discrete levels, where adjacent timesteps have no level between."""
from __future__ import annotations

import pytest
import torch

from engine.diffusion.denoise import Denoiser
from engine.diffusion.levels import DiscreteVP, EDMSigmas, FlowTimes
from engine.diffusion.schedules import make_schedule
from engine.diffusion.solvers import build_solver
from tests.engine.diffusion_toys import GaussianData


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_one_flow_step_is_the_midpoint_rule():
    u = lambda x, t: torch.tanh(x) * 0.7 + 0.3 * t.view(-1, 1, 1, 1)  # noqa: E731  a velocity field
    solver = build_solver("midpoint", FlowTimes(), clip_x0=False)
    levels = solver.levels(4)
    x = torch.randn(2, 1, 4, 4, generator=_gen(0))
    for lv, nxt in zip(levels[:-2], levels[1:-1]):
        t, t2 = lv.t, nxt.t
        x_half = x + (t2 - t) / 2 * u(x, torch.full((2,), t))
        ref = x + (t2 - t) * u(x_half, torch.full((2,), (t + t2) / 2))
        x, _ = solver.step(Denoiser(u, prediction="flow"), lv, x)
        torch.testing.assert_close(x, ref, atol=1e-5, rtol=1e-5)


def test_one_edm_step_is_the_midpoint_rule_in_sigma():
    def D(x, sigma):
        return torch.tanh(0.25 / (sigma ** 2 + 0.25) * x)
    den = Denoiser(lambda x, c_noise: D(x, torch.exp(4 * c_noise).view(-1, 1, 1, 1)), prediction="x0")
    solver = build_solver("midpoint", EDMSigmas(), clip_x0=False)
    levels = solver.levels(5)
    x = 80 * torch.randn(2, 1, 4, 4, generator=_gen(1))
    for lv, nxt in zip(levels[:-2], levels[1:-1]):
        s, s2 = float(lv.sigma), float(nxt.sigma)
        sm = (s + s2) / 2
        x_half = x + (sm - s) * (x - D(x, s)) / s
        ref = x + (s2 - s) * (x_half - D(x_half, sm)) / sm
        x, _ = solver.step(den, lv, x)
        torch.testing.assert_close(x, ref, atol=1e-4, rtol=1e-4)


def _ode_error(name, levels, steps):
    data = GaussianData(torch.linspace(-0.5, 0.5, 16).view(1, 4, 4), torch.linspace(0.2, 0.6, 16).view(1, 4, 4))
    solver = build_solver(name, levels, clip_x0=False)
    lv = solver.levels(steps)
    x_T = data.marginal(256, lv[0], _gen(2))
    x = x_T
    for level in lv[:-2]:
        x, _ = solver.step(data, level, x)
    ref = data.flow(x_T, lv[0], lv[-2])
    return ((x - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("levels", [FlowTimes(), EDMSigmas()], ids=["flow", "edm"])
def test_midpoint_is_second_order_and_beats_euler(levels):
    mid = {n: _ode_error("midpoint", levels, n) for n in (10, 20, 40)}
    euler = {n: _ode_error("ddim", levels, n) for n in (20, 40)}
    assert mid[20] < euler[20] / 3
    assert mid[40] < mid[20] / 3            # second order: ~4x per doubling


def test_network_evaluations_on_discrete_levels():
    """Two passes per step but the last; one where the timesteps are adjacent (no level between)."""
    ac = make_schedule("linear", 10)["alphas_cumprod"]
    solver = build_solver("midpoint", DiscreteVP(ac))
    assert solver.network_evaluations(3) == 5      # timesteps 9, 4 (or 5), 0: gaps of 4 or more
    assert solver.network_evaluations(10) == 10    # every timestep: all adjacent
    assert solver.network_evaluations(1) == 1
