"""GenLab's solvers step for step against diffusers' schedulers on DDPM's discrete schedule, with one
fixed function as the "network": the network sees the same inputs at the same timesteps and the
chains end at the same images, to float32 tolerance. Skipped where diffusers is not installed (CI).

Spacings are chosen where the two agree on the timesteps: diffusers' Euler-family "linspace" is
fractional (np.linspace(0, T-1, n) unrounded, sigma interpolated linearly) and its DPM-Solver
"linspace"/"leading" take n + 1 points and drop one, where GenLab's round to the training
timesteps; "trailing" is the same in all of them, as is "leading" for the Euler family.

Deliberate differences, set so the comparison holds:
- diffusers' Euler / Heun / Euler-ancestral keep x in the variance-exploding frame x/alpha (their
  `sample`); GenLab keeps x itself, so x = sample / sqrt(1 + sigma²) is compared (at sigma 0 they
  are the same).
- GenLab's Heun runs by default in the level type's own ODE frame (bounded on DDPM's levels);
  diffusers' HeunDiscreteScheduler is the frame "ve", which is compared here.
- DPMSolverMultistepScheduler with use_karras_sigmas gives the network the Karras timesteps rounded
  to integers (its timesteps are int64), while its steps use the Karras sigmas themselves; GenLab
  gives the fractional timestep of each sigma, as diffusers' Euler does. That comparison uses a
  network that does not look at t, and compares the timesteps rounded.
- clip_x0 is off: diffusers does not clip x̂0 by default.
"""
import importlib.util
import math

import numpy as np
import pytest
import torch

from engine.diffusion.denoise import Denoiser, denoise
from engine.diffusion.levels import DiscreteVP
from engine.diffusion.schedules import linear_betas, make_schedule, rescale_zero_terminal_snr
from engine.diffusion.solvers import build_solver

# diffusers takes seconds to import and every xdist worker collects every module: it is imported by
# the first of these tests that runs (_diffusers()), not at collection
pytestmark = [pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="diffusers is not installed"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]   # diffusers' numpy 2 notices


def _diffusers():
    import diffusers
    return diffusers

T, SHAPE = 1000, (2, 1, 4, 4)
BETAS = linear_betas(T).float()
AC = torch.cumprod(1 - BETAS, dim=0)   # float32, as diffusers computes it from the same betas


def _net(prediction: str = "eps", uses_t: bool = True):
    """A smooth, non-linear function of x and t, standing in for a network trained on `prediction`."""
    def fn(x, t):
        if not uses_t:
            t = torch.zeros(())
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        phase = (t / 300.0).view(-1, 1, 1, 1) if t.numel() > 1 else t.view(1, 1, 1, 1) / 300.0
        return (0.6 * torch.tanh(x.double() * 0.8 + torch.sin(phase)) + 0.1 * x.double()).float()
    return fn


def _x_T() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))


def _ours(name, spacing, steps, seed=None, prediction="eps", ac=AC, uses_t=True, **params):
    """(the final x, [(t, x) per network call]) of GenLab's solver."""
    calls = []
    net = _net(prediction, uses_t)

    def fn(x, t):
        calls.append((t[0].item(), x.clone()))
        return net(x, t)
    solver = build_solver(name, DiscreteVP(ac, spacing), clip_x0=False, **params)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    x_T = _x_T()
    out = denoise(Denoiser(fn, prediction=prediction), solver, x_T, steps, generator=gen)
    return out, calls


def _theirs(scheduler, steps, seed=None, ve=True, prediction="eps", uses_t=True):
    """The same from a diffusers scheduler's usual loop, starting from the same x at its first level
    (in its VE frame where `ve`)."""
    scheduler.set_timesteps(steps)
    net = _net(prediction, uses_t)
    sigma0 = float(scheduler.sigmas[0])
    sample = _x_T() * math.sqrt(1 + sigma0 ** 2) if ve else _x_T()
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    calls = []
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(sample, t)
        calls.append((float(t), x_in.clone()))
        kwargs = {"generator": gen} if gen is not None else {}
        sample = scheduler.step(net(x_in, t), t, sample, **kwargs).prev_sample
    return sample, calls


def _compare(ours, theirs, atol=2e-4, t_rounded=False):
    (out_a, calls_a), (out_b, calls_b) = ours, theirs
    assert len(calls_a) == len(calls_b)
    for (ta, xa), (tb, xb) in zip(calls_a, calls_b):
        assert (round(ta) if t_rounded else ta) == pytest.approx(tb, abs=1e-3)
        torch.testing.assert_close(xa, xb, atol=atol, rtol=1e-4)
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=1e-4)


def _common(**kw):
    return dict(num_train_timesteps=T, trained_betas=BETAS.numpy(), **kw)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 4, 10])
def test_euler_equals_euler_discrete_scheduler(spacing, steps):
    sched = _diffusers().EulerDiscreteScheduler(**_common(timestep_spacing=spacing))
    _compare(_ours("euler", spacing, steps), _theirs(sched, steps))


@pytest.mark.parametrize("steps", [4, 10])
def test_euler_karras_equals_euler_discrete_scheduler_with_karras_sigmas(steps):
    sched = _diffusers().EulerDiscreteScheduler(**_common(timestep_spacing="linspace", use_karras_sigmas=True))
    ours = _ours("euler", "karras", steps)
    assert any(t != int(t) for t, _ in ours[1])     # the network was told fractional timesteps
    _compare(ours, _theirs(sched, steps))


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 4, 10])
def test_heun_in_the_ve_frame_equals_heun_discrete_scheduler(spacing, steps):
    sched = _diffusers().HeunDiscreteScheduler(**_common(timestep_spacing=spacing))
    _compare(_ours("heun", spacing, steps, frame="ve"), _theirs(sched, steps))


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [4, 10])
def test_euler_ancestral_equals_euler_ancestral_discrete_scheduler(spacing, steps):
    """Same generator, same noise: the per-step noise is drawn in the same order and shape."""
    sched = _diffusers().EulerAncestralDiscreteScheduler(**_common(timestep_spacing=spacing))
    _compare(_ours("euler_ancestral", spacing, steps, seed=11), _theirs(sched, steps, seed=11))


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [1, 2, 5, 12, 20])
def test_dpmpp_2m_equals_dpm_solver_multistep_scheduler(steps, prediction):
    sched = _diffusers().DPMSolverMultistepScheduler(**_common(
        algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing",
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction]))
    _compare(_ours("dpmpp_2m", "trailing", steps, prediction=prediction),
             _theirs(sched, steps, ve=False, prediction=prediction))


@pytest.mark.parametrize("steps", [5, 12, 20])
def test_dpmpp_2m_karras_equals_dpm_solver_multistep_with_karras_sigmas(steps):
    """"DPM++ 2M Karras" (diffusers rounds the timesteps the network sees: see the module's notes)."""
    sched = _diffusers().DPMSolverMultistepScheduler(**_common(
        algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True))
    _compare(_ours("dpmpp_2m", "karras", steps, uses_t=False), _theirs(sched, steps, ve=False, uses_t=False),
             t_rounded=True)


def test_karras_timesteps_equal_diffusers():
    sched = _diffusers().EulerDiscreteScheduler(**_common(use_karras_sigmas=True))
    sched.set_timesteps(8)
    levels = DiscreteVP(AC, "karras")
    np.testing.assert_allclose(levels.timesteps(8), sched.timesteps.numpy(), atol=1e-3)
    np.testing.assert_allclose(levels.karras_sigmas(8), sched.sigmas[:-1].numpy(), rtol=1e-5)
    sigmas = [lv.ve_sigma for lv in levels.schedule(8)[:-1]]
    np.testing.assert_allclose(sigmas, sched.sigmas[:-1].numpy(), rtol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine", "sigmoid"])
def test_zero_terminal_snr_equals_diffusers_rescale(kind):
    from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr as theirs
    betas = make_schedule(kind, T)["betas"].double()
    torch.testing.assert_close(rescale_zero_terminal_snr(betas), theirs(betas), rtol=1e-12, atol=1e-12)
    ac = make_schedule(kind, T, zero_terminal_snr=True)["alphas_cumprod"]
    assert ac[-1] == 0 and ac[0] == pytest.approx(make_schedule(kind, T)["alphas_cumprod"][0].item(), rel=1e-6)


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 12, 20])
def test_unipc_equals_unipc_multistep_scheduler(steps, prediction):
    """UniPC bh2 of order 2 with its corrector (diffusers' defaults): the network sees the
    predictor's x at every step, and the corrected chain ends at the same images."""
    sched = _diffusers().UniPCMultistepScheduler(**_common(
        solver_type="bh2", solver_order=2, timestep_spacing="trailing",
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction]))
    _compare(_ours("unipc", "trailing", steps, prediction=prediction),
             _theirs(sched, steps, ve=False, prediction=prediction))


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [5, 12, 20])
def test_unipc_karras_equals_unipc_multistep_with_karras_sigmas(steps, prediction):
    """With Karras sigmas (diffusers rounds the timesteps the network sees: see the module's notes)."""
    sched = _diffusers().UniPCMultistepScheduler(**_common(
        solver_type="bh2", solver_order=2, use_karras_sigmas=True,
        prediction_type={"eps": "epsilon", "v": "v_prediction"}[prediction]))
    _compare(_ours("unipc", "karras", steps, prediction=prediction, uses_t=False),
             _theirs(sched, steps, ve=False, prediction=prediction, uses_t=False), t_rounded=True)
