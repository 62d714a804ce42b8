"""Flow matching family: the path and its velocity target are the formulas (rectified flow's
straight line, and the sigma_min variant), the sampler reads the network's velocity back into the
image exactly, the times follow the chosen law, and a tiny model trains with a finite loss and
samples finite images in [-1, 1]."""
from __future__ import annotations

import math
from functools import lru_cache

import pytest
import torch

from engine.core.config import RunConfig
from engine.data import build_dataset
from engine.diffusion.denoise import denoise
from engine.diffusion.levels import FlowLevel, FlowTimes
from engine.diffusion.solvers import build_solver
from engine.family.base import Batch, StepContext, build_family
from engine.families.flow_matching.path import OTFlowTimes, flow_levels, interpolate, sample_times, velocity

RES = 8


def _gen(seed):
    return torch.Generator().manual_seed(seed)



@lru_cache(maxsize=1)
def digits():
    return build_dataset(fm_config().data)


def fm_config(**model) -> RunConfig:
    return RunConfig(name="fm").replace(
        data={"dataset": "digits", "resolution": RES},
        model={"family": "flow_matching", "base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4],
               "attention_heads": 2, **model},
        training={"batch_size": 16, "lr": 3e-3, "device": "cpu"},
        sampling={"steps": 4, "grid_size": 4})


def test_straight_path_and_velocity_are_the_formulas():
    x0, eps = torch.randn(3, 1, 4, 4, generator=_gen(0)), torch.randn(3, 1, 4, 4, generator=_gen(1))
    t = torch.tensor([0.0, 0.3, 1.0])
    x_t = interpolate(x0, eps, t)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(x_t[i], (1 - ti) * x0[i] + ti * eps[i])
    torch.testing.assert_close(x_t[0], x0[0]) and torch.testing.assert_close(x_t[2], eps[2])
    torch.testing.assert_close(velocity(x0, eps), eps - x0)


@pytest.mark.parametrize("sigma_min", [0.0, 0.01])
def test_velocity_is_the_paths_time_derivative(sigma_min):
    """u = d x_t / dt (a central difference of the path, which is linear in t), and at t = 1 a trace
    sigma_min of the image is left: x_1 = sigma_min·x0 + eps."""
    x0, eps = torch.randn(2, 1, 4, 4, generator=_gen(2)), torch.randn(2, 1, 4, 4, generator=_gen(3))
    t, h = torch.full((2,), 0.4, dtype=torch.float64), 1e-3
    x0, eps = x0.double(), eps.double()
    diff = (interpolate(x0, eps, t + h, sigma_min) - interpolate(x0, eps, t - h, sigma_min)) / (2 * h)
    torch.testing.assert_close(diff, velocity(x0, eps, sigma_min))
    torch.testing.assert_close(interpolate(x0, eps, torch.ones(2, dtype=torch.float64), sigma_min),
                               sigma_min * x0 + eps)


@pytest.mark.parametrize("sigma_min", [0.0, 0.02])
def test_levels_are_the_path_and_the_denoiser_reads_the_velocity_back_exactly(sigma_min):
    """At every level of the sampling schedule x = alpha·x0 + sigma·eps is the training path at t,
    and a network that outputs the path's exact velocity gives back x0 and eps."""
    fam = build_family(fm_config(sigma_min=sigma_min), 1, RES, ["a"])
    levels = fam.noise_levels()
    assert isinstance(levels, OTFlowTimes if sigma_min else FlowTimes)
    x0, eps = torch.randn(2, 1, 4, 4, generator=_gen(4)), torch.randn(2, 1, 4, 4, generator=_gen(5))
    for level in levels.schedule(5)[:-1]:
        t = torch.full((2,), float(level.cond))
        x = interpolate(x0, eps, t, sigma_min)
        torch.testing.assert_close(level.alpha * x0 + level.sigma * eps, x, atol=1e-6, rtol=1e-6)
        den = fam.denoiser_for(lambda x_, c: velocity(x0, eps, sigma_min))
        x0_hat, eps_hat = den.predict(x, level)
        torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(eps_hat, eps, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler", ["euler", "ddim", "heun", "midpoint"])
@pytest.mark.parametrize("sigma_min", [0.0, 0.02])
def test_the_exact_velocity_of_one_image_samples_that_image(sampler, sigma_min):
    """For data that is one image x*, the marginal velocity is exact and straight: every ODE solver
    lands on x* from any noise, in a few steps."""
    x_star = torch.rand(1, 1, 4, 4, generator=_gen(6)) * 1.6 - 0.8
    c = 1 - sigma_min

    def u(x, t):   # eps from x = (1 - c t) x* + t eps, then the velocity eps - c x*
        t = t.view(-1, 1, 1, 1)
        return (x - (1 - c * t) * x_star) / t - c * x_star

    fam = build_family(fm_config(sigma_min=sigma_min), 1, RES, ["a"])
    solver = build_solver(sampler, fam.noise_levels())
    out = denoise(fam.denoiser_for(u), solver, torch.randn(3, 1, 4, 4, generator=_gen(7)), 4)
    torch.testing.assert_close(out, x_star.expand(3, -1, -1, -1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampler", ["euler", "ddim"])
def test_euler_on_flow_levels_is_the_velocity_step(sampler):
    """The default sampler (euler), and ddim at eta 0, are the Euler step of the velocity: x + (t' - t)·u."""
    fm = build_family(fm_config(), 1, RES, ["a"])
    net = lambda x, t: torch.tanh(x) * 0.5 + t.view(-1, 1, 1, 1)  # noqa: E731
    solver = build_solver(sampler, flow_levels(0.0), clip_x0=False)
    x = torch.randn(2, 1, 4, 4, generator=_gen(8))
    ts = FlowTimes().times(5) + [0.0]
    ref = x.clone()
    for t, t_next in zip(ts[:-2], ts[1:-1]):
        ref = ref + (t_next - t) * net(ref, torch.full((2,), t))
    levels = solver.levels(5)
    for lv in levels[:-2]:
        x, _ = solver.step(fm.denoiser_for(net), lv, x)
    torch.testing.assert_close(x, ref, atol=1e-5, rtol=1e-5)


def test_time_sampling_laws():
    g = _gen(9)
    u = sample_times(20000, kind="uniform", generator=g, device="cpu")
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01
    ln = sample_times(20000, kind="logit-normal", generator=g, device="cpu", mean=0.5, std=0.8)
    logit = torch.log(ln / (1 - ln))
    assert abs(logit.mean().item() - 0.5) < 0.02 and abs(logit.std().item() - 0.8) < 0.02
    with pytest.raises(ValueError, match="uniform or logit-normal"):
        sample_times(2, kind="beta", generator=g, device="cpu")


@pytest.mark.parametrize("model", [{}, {"time_sampling": "logit-normal", "sigma_min": 0.01}])
def test_a_tiny_model_trains_with_finite_loss_and_samples_finite_images(model):
    torch.manual_seed(0)
    cfg = fm_config(**model)
    data = digits()
    fam = build_family(cfg, data.channels, RES, data.class_names)
    ctx = StepContext(torch.device("cpu"), _gen(0), fam.make_optimizers())
    g = _gen(1)
    losses = []
    for step in range(4):
        idx = torch.randint(0, len(data), (16,), generator=g)
        ctx.step = step
        out = fam.training_step(Batch(data.float_batch(idx), data.labels[idx]), ctx)
        losses.append(out["loss/flow"].item())
    assert all(math.isfinite(v) and v > 0 for v in losses)
    fam.init_ema()
    for sampler in ("euler", "ddim", "heun", "midpoint"):
        x = fam.sample(3, seed=0, sampler=sampler)
        assert x.shape == (3, 1, RES, RES) and torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1


def test_network_evaluations_count_steps_solver_and_guidance():
    fam = build_family(fm_config(), 1, RES, [str(i) for i in range(10)])
    assert fam.network_evaluations({"sampler": "ddim", "steps": 20, "guidance_scale": 1.0}) == 20
    assert fam.network_evaluations({"sampler": "ddim", "steps": 20}) == 40           # guided: two each
    assert fam.network_evaluations({"sampler": "midpoint", "steps": 10, "guidance_scale": 1.0}) == 19
    assert fam.network_evaluations({"sampler": "heun", "steps": 10, "guidance_scale": 1.0}) == 19
    assert FlowLevel(0.25).cond == 0.25   # the network is told t itself (scaled by time_scale)
