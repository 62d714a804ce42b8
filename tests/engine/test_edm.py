"""EDM family: the preconditioning coefficients and the loss weight are Karras et al.'s (Table 1,
eq. 8), training's D is the sampler's D, the training sigmas are log-normal with (P_mean, P_std),
the default sampler is Heun over 18 sigmas (35 network passes), and a tiny model trains with a
finite loss and samples finite images in [-1, 1]."""
from __future__ import annotations

import math
from functools import lru_cache

import pytest
import torch

from engine.core.config import RunConfig
from engine.data import build_dataset
from engine.diffusion.levels import EDMSigmas
from engine.family.base import Batch, StepContext, build_family
from engine.families.edm.precond import loss_weight, preconditioning, sample_sigmas

RES = 8


def _gen(seed):
    return torch.Generator().manual_seed(seed)



@lru_cache(maxsize=1)
def digits():
    return build_dataset(edm_config().data)


def edm_config(**model) -> RunConfig:
    return RunConfig(name="edm").replace(
        data={"dataset": "digits", "resolution": RES},
        model={"family": "edm", "base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4],
               "attention_heads": 2, **model},
        training={"batch_size": 16, "lr": 3e-3, "device": "cpu"},
        sampling={"steps": 3, "grid_size": 4})


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_preconditioning_and_loss_weight_are_the_papers(sigma_data):
    sigmas = [0.002, 0.1, 0.5, 1.0, 7.3, 80.0]
    c = preconditioning(torch.tensor(sigmas, dtype=torch.float64), sigma_data)
    for i, s in enumerate(sigmas):
        sd = sigma_data
        assert c.c_skip[i].item() == pytest.approx(sd ** 2 / (s ** 2 + sd ** 2), rel=1e-12)
        assert c.c_out[i].item() == pytest.approx(s * sd / math.sqrt(sd ** 2 + s ** 2), rel=1e-12)
        assert c.c_in[i].item() == pytest.approx(1 / math.sqrt(s ** 2 + sd ** 2), rel=1e-12)
        assert c.c_noise[i].item() == pytest.approx(math.log(s) / 4, rel=1e-12)
    lam = loss_weight(torch.tensor(sigmas, dtype=torch.float64), sigma_data)
    for i, s in enumerate(sigmas):
        assert lam[i].item() == pytest.approx((s ** 2 + sigma_data ** 2) / (s * sigma_data) ** 2, rel=1e-12)
    # the weight makes the effective target of F unit-weighted: lambda = 1 / c_out²
    torch.testing.assert_close(lam, c.c_out ** -2)


@pytest.mark.parametrize("sigma_data", [0.5, 0.8])
def test_training_denoiser_is_the_samplers_denoiser(sigma_data):
    """D(x; sigma) that training regresses equals the Denoiser's x̂0 (the "edm" prediction at an
    EDMLevel) for the same network, so what is trained is what is sampled."""
    fam = build_family(edm_config(sigma_data=sigma_data, class_conditional=False), 1, RES, ["a"])
    seen = {}

    def net(x, cond, labels):
        seen.setdefault("cond", []).append(cond)
        return torch.sin(3 * x) + 0.01 * cond.view(-1, 1, 1, 1)
    for level in EDMSigmas().schedule(5)[:-1]:
        x = torch.randn(2, 1, RES, RES, generator=_gen(1)) * (1 + level.sigma)
        d_train = fam.denoise_batch(net, x, torch.full((2,), float(level.sigma)), None)
        x0, eps = fam.denoiser_for(fam.network_fn(net, None, 1.0)).predict(x, level)
        torch.testing.assert_close(d_train, x0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(seen["cond"][-2], seen["cond"][-1])   # the same scaled c_noise
        torch.testing.assert_close(x, x0 + level.sigma * eps, atol=1e-4, rtol=1e-5)


def test_training_sigmas_are_log_normal():
    s = sample_sigmas(40000, p_mean=-1.2, p_std=1.2, generator=_gen(2), device="cpu")
    assert (s > 0).all()
    assert abs(s.log().mean().item() + 1.2) < 0.02 and abs(s.log().std().item() - 1.2) < 0.02


def test_default_sampling_is_heun_over_18_sigmas_in_35_passes():
    fam = build_family(edm_config(), 1, RES, [str(i) for i in range(10)])
    opts = type(fam.cfg.sampling)()
    assert (opts.sampler, opts.steps) == ("heun", 18)
    assert fam.network_evaluations({"sampler": "heun", "steps": 18, "guidance_scale": 1.0}) == 35
    assert fam.network_evaluations({"sampler": "heun", "steps": 18, "guidance_scale": 2.0}) == 70
    levels = fam.noise_levels()
    sig = levels.sigmas(18)
    assert sig[0] == pytest.approx(80.0) and sig[-1] == pytest.approx(0.002) and levels.prior_std == 80.0


@pytest.mark.parametrize("model", [{}, {"sigma_data": 1.0, "class_conditional": False}])
def test_a_tiny_model_trains_with_finite_loss_and_samples_finite_images(model):
    torch.manual_seed(0)
    cfg = edm_config(**model)
    data = digits()
    fam = build_family(cfg, data.channels, RES, data.class_names)
    ctx = StepContext(torch.device("cpu"), _gen(0), fam.make_optimizers())
    g = _gen(1)
    for step in range(4):
        idx = torch.randint(0, len(data), (16,), generator=g)
        ctx.step = step
        loss = fam.training_step(Batch(data.float_batch(idx), data.labels[idx]), ctx)["loss/edm"].item()
        assert math.isfinite(loss) and loss > 0
    fam.init_ema()
    for sampler in ("heun", "ddim", "midpoint"):
        x = fam.sample(3, seed=0, sampler=sampler)
        assert x.shape == (3, 1, RES, RES) and torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
