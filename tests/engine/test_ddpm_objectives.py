"""DDPM's objectives and schedules (eps / x0 / v targets, min-SNR-gamma weighting, sigmoid and
zero-terminal-SNR schedules) and its sampling options beyond the solver (Karras spacing through the
UNet, the classifier-free guidance interval)."""
import math

import pytest
import torch
from torch import nn

from engine.core.schema import ConfigError
from engine.diffusion.guidance import GuidanceInterval
from engine.diffusion.levels import DiscreteVP
from engine.diffusion.schedules import make_schedule
from engine.family.base import Batch, StepContext, build_family
from engine.families.ddpm.model import min_snr_weights
from tests.conftest import tiny_config

T = 50
CLASSES = [str(i) for i in range(10)]


def make(**model):
    torch.manual_seed(0)
    cfg = tiny_config(model=model).validate()
    return build_family(cfg, 1, 8, CLASSES)


class Recorder(nn.Module):
    """Stands in for the UNet: outputs a fixed tensor and records what it was given."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out, self.w = out, nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, labels=None):
        self.seen.append((x.detach().clone(), t.clone()))
        return self.out[: x.shape[0]] + self.w


def _one_step(fam, seed=0):
    """(loss, x0, x_t, t) of one training step with the Recorder as the network."""
    x0 = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    out = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(seed + 1))
    fam.networks["unet"] = rec = Recorder(out)
    ctx = StepContext(torch.device("cpu"), torch.Generator().manual_seed(seed), fam.make_optimizers())
    loss = fam.training_step(Batch(x0, torch.arange(6) % 10), ctx)["loss/mse"].item()
    x_t, t = rec.seen[0]
    return loss, x0, x_t, t, out


@pytest.mark.parametrize("weighting", ["uniform", "min_snr"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_target_and_weighting_are_the_formulas(prediction, weighting):
    fam = make(prediction=prediction, loss_weighting=weighting, min_snr_gamma=5.0)
    loss, x0, x_t, t, pred = _one_step(fam)
    ab = fam.alphas_cumprod[t].double().view(-1, 1, 1, 1)
    a, s = ab.sqrt(), (1 - ab).sqrt()
    noise = (x_t.double() - a * x0.double()) / s        # the noise the step drew
    target = {"eps": noise, "x0": x0.double(), "v": a * noise - s * x0.double()}[prediction]
    per_image = (pred.double() - target).pow(2).mean(dim=(1, 2, 3))
    snr = (ab / (1 - ab)).view(-1)
    weight = {"eps": torch.minimum(snr, torch.full_like(snr, 5.0)) / snr,
              "x0": torch.minimum(snr, torch.full_like(snr, 5.0)),
              "v": torch.minimum(snr, torch.full_like(snr, 5.0)) / (snr + 1)}[prediction]
    want = (per_image * (weight if weighting == "min_snr" else 1)).mean().item()
    assert loss == pytest.approx(want, rel=1e-4)


def test_min_snr_weights_at_a_few_timesteps():
    ac = make_schedule("cosine", 1000)["alphas_cumprod"]
    gamma = 5.0
    for t in (0, 100, 500, 999):
        ab = ac[t].double().item()
        snr = ab / (1 - ab)
        want = {"eps": min(snr, gamma) / snr, "x0": min(snr, gamma), "v": min(snr, gamma) / (snr + 1)}
        for p, w in want.items():
            assert min_snr_weights(ac, gamma, p)[t].item() == pytest.approx(w, rel=1e-5)
    # at high SNR the eps weight is gamma/SNR; at low SNR the x0 weight is the SNR itself
    assert min_snr_weights(ac, gamma, "eps")[0] < 0.01 and min_snr_weights(ac, gamma, "eps")[999] == 1.0


def test_min_snr_weights_are_finite_at_zero_terminal_snr():
    ac = make_schedule("linear", T, zero_terminal_snr=True)["alphas_cumprod"]
    for p in ("eps", "x0", "v"):
        w = min_snr_weights(ac, 5.0, p)
        assert torch.isfinite(w).all()
    assert min_snr_weights(ac, 5.0, "v")[-1] == 0


def test_default_ddpm_step_is_the_plain_eps_mse():
    """Defaults (eps, uniform) are the original loss: F.mse_loss(pred, noise)."""
    fam = make()
    assert fam.prediction == "eps" and fam.loss_weights is None
    loss, x0, x_t, t, pred = _one_step(fam, seed=3)
    ab = fam.alphas_cumprod[t].view(-1, 1, 1, 1)
    noise = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    assert loss == pytest.approx(torch.nn.functional.mse_loss(pred, noise).item(), rel=1e-5)


def test_sigmoid_schedule_decreases_from_one_to_near_zero():
    ac = make_schedule("sigmoid", 1000)["alphas_cumprod"].double()
    assert (ac[1:] < ac[:-1]).all() and 0.99 < ac[0] <= 1 and ac[-1] < 1e-3
    # Chen 2023's sigmoid(start=-3, end=3): alpha-bar at t = 1/2 is 1/2 by symmetry
    assert ac[499].item() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("kind", ["linear", "cosine", "sigmoid"])
def test_zero_terminal_snr_ends_at_pure_noise_and_keeps_the_first_step(kind):
    plain = make_schedule(kind, 1000)["alphas_cumprod"].double()
    zero = make_schedule(kind, 1000, zero_terminal_snr=True)["alphas_cumprod"].double()
    assert zero[-1] == 0 and (zero[1:] < zero[:-1]).all()
    assert zero[0].item() == pytest.approx(plain[0].item(), rel=1e-6)
    # sqrt(alpha-bar) is the original's, shifted and scaled: an affine map of it
    a, b = plain.sqrt(), zero.sqrt()
    k = (b[0] - b[500]) / (a[0] - a[500])
    torch.testing.assert_close(b, k * (a - a[-1]), atol=1e-6, rtol=0)


def test_zero_terminal_snr_with_eps_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="zero_terminal_snr needs model.prediction") as e:
        tiny_config(model={"zero_terminal_snr": True}).validate()
    assert "\n" not in str(e.value)
    fam = make(zero_terminal_snr=True, prediction="v")
    assert fam.alphas_cumprod[-1] == 0
    images = fam.sample(2, seed=0, steps=3, spacing="trailing")   # starts at alpha 0: v gives x̂0
    assert torch.isfinite(images).all()


def test_karras_spacing_gives_the_unet_fractional_timesteps():
    fam = make()
    seen = []
    fam.networks["unet"].register_forward_hook(lambda m, args, out: seen.append(args[1].clone()))
    fam.init_ema()
    images = fam.sample(2, seed=0, use_ema=False, steps=4, spacing="karras", sampler="dpmpp_2m",
                        guidance_scale=1.0)
    assert torch.isfinite(images).all() and len(seen) == 4
    assert all(t.dtype == torch.float32 for t in seen) and any((t != t.round()).any() for t in seen)
    ts = [t[0].item() for t in seen]
    assert ts == sorted(ts, reverse=True) and ts[0] == pytest.approx(T - 1)


# -- guidance interval ---------------------------------------------------------------------------

def _calls(fam):
    """Network calls and the images in each (a guided call carries the batch twice)."""
    rows = []
    fam.networks["unet"].register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    return rows


def _sample(fam, **options):
    return fam.sample(3, seed=0, labels=[1, 2, 3], use_ema=False, steps=6, **options)


def test_cfg_at_scale_1_is_the_conditional_prediction():
    fam = make()
    net = fam.networks["unet"].eval()
    labels = torch.tensor([1, 2, 3])
    level = DiscreteVP(fam.alphas_cumprod).level(30)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = fam.denoiser(net, labels, 1.0).predict(x, level)
        cond = net(x, torch.full((3,), 30), labels)
        guided = fam.denoiser(net, labels, 1.0 + 1e-9, (0.0, math.inf)).predict(x, level)
    torch.testing.assert_close(ours.eps, cond)
    torch.testing.assert_close(guided.eps, cond, atol=1e-6, rtol=1e-6)   # e_u + 1·(e_c - e_u)


def test_guidance_interval_guides_only_inside_it():
    # an x0-UNet with random weights everywhere (the output layer starts at zero): an untrained
    # eps-UNet's images saturate at +-1, which would hide differences
    fam = make(prediction="x0")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in fam.networks["unet"].parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    plain = _sample(fam, guidance_scale=1.0)
    everywhere = _sample(fam, guidance_scale=3.0)
    assert not torch.allclose(plain, everywhere)
    # an interval holding no level of the chain: the conditional prediction throughout
    assert torch.equal(_sample(fam, guidance_scale=3.0, guidance_interval=[1e6, 2e6]), plain)
    # one holding every level: guidance throughout
    assert torch.equal(_sample(fam, guidance_scale=3.0, guidance_interval=[0.0, 1e9]), everywhere)
    # one holding a middle part: neither
    sigmas = [lv.ve_sigma for lv in fam.solver(fam.sample_options(steps=6)).levels(6)[:-1]]
    part = _sample(fam, guidance_scale=3.0, guidance_interval=[sigmas[3], sigmas[1]])
    assert not torch.allclose(part, plain) and not torch.allclose(part, everywhere)


@pytest.mark.parametrize("sampler", ["ddim", "heun"])
def test_network_evaluations_count_guided_levels_twice(sampler):
    fam = make()
    opts = fam.sample_options(steps=6, sampler=sampler, guidance_scale=3.0)
    sigmas = [lv.ve_sigma for lv in fam.solver(opts).levels(6)[:-1]]
    for interval in ([], [sigmas[3], sigmas[1]], [1e6, 2e6]):
        o = fam.sample_options(opts, guidance_interval=interval)
        rows = _calls(fam)
        fam.sample(3, seed=0, labels=[1, 2, 3], use_ema=False, options=o)
        assert sum(r // 3 for r in rows) == fam.network_evaluations(o), interval
        fam.networks["unet"]._forward_hooks.clear()


def test_guidance_interval_is_checked():
    fam = make()
    for bad in ([1.0], [2.0, 1.0], [-1.0, 1.0], ["a", 1.0]):
        with pytest.raises(ConfigError, match="guidance_interval"):
            _sample(fam, guidance_scale=3.0, guidance_interval=bad)
    with pytest.raises(ValueError, match="low <= high"):
        GuidanceInterval(None, None, 2.0, 1.0)


def test_churn_option_reaches_heun_and_stays_seeded():
    fam = make()
    opts = dict(steps=4, sampler="heun", guidance_scale=1.0, labels=[1, 2])
    assert fam.solver(fam.sample_options(sampler="heun", churn=20.0)).params["S_churn"] == 20.0
    assert "S_churn" not in fam.solver(fam.sample_options(sampler="ddim", churn=20.0)).params
    plain = fam.sample(2, seed=0, use_ema=False, **opts)
    a, b = (fam.sample(2, seed=0, use_ema=False, churn=20.0, **opts) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, plain)
