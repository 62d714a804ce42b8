"""VAE family: the KL against torch.distributions, the IWAE bound against the ELBO, the decoders'
discrete likelihoods, β / capacity / free bits, the conditional VAE, and encode -> decode on a
trained tiny model."""
from functools import lru_cache

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from engine.core.config import RunConfig
from engine.data import build_dataset
from engine.nn.likelihood import bpd_discrete
from engine.family.base import StepContext, build_family
from engine.family.base import Batch
from engine.families.vae.model import capacity_at, free_bits_kl, gaussian_kl, gaussian_log_density
from engine.nn.likelihood import log_mean_exp, pixel_distribution

RES = 8


def vae_config(**model) -> RunConfig:
    return RunConfig(name="v").replace(
        data={"dataset": "digits", "resolution": RES},
        model={"family": "vae", "latent_dim": 4, "channels": 8, "max_channels": 16, **model},
        training={"batch_size": 32, "lr": 3e-3, "device": "cpu", "grad_clip": 0.0},
        sampling={"grid_size": 4})


def context(fam, seed=0) -> StepContext:
    return StepContext(torch.device("cpu"), torch.Generator().manual_seed(seed), fam.make_optimizers())


@lru_cache(maxsize=1)
def digits():
    return build_dataset(vae_config().data)


def trained_vae(steps: int, **model):
    """A tiny VAE trained `steps` steps on 8x8 digits (its EMA set to the trained weights)."""
    torch.manual_seed(0)
    cfg = vae_config(**model)
    data = digits()
    fam = build_family(cfg, data.channels, RES, data.class_names)
    ctx = context(fam)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        idx = torch.randint(0, len(data), (32,), generator=g)
        ctx.step = step
        fam.training_step(Batch(data.float_batch(idx), data.labels[idx]), ctx)
    fam.init_ema()
    return fam, data


@pytest.fixture(scope="module")
def trained():
    return trained_vae(100)


@pytest.fixture(scope="module")
def trained_conditional():
    return trained_vae(40, class_conditional=True)


# ---- the objective's pieces ------------------------------------------------------------------------
def test_gaussian_kl_equals_the_closed_form_of_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 7) * 2, torch.randn(5, 7) * 3
    q, prior = Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros(5, 7), torch.ones(5, 7))
    assert torch.allclose(gaussian_kl(mu, logvar), kl_divergence(q, prior), rtol=1e-5, atol=1e-5)
    assert torch.equal(gaussian_kl(torch.zeros(3), torch.zeros(3)), torch.zeros(3))  # q = the prior
    z = torch.randn(5, 7)
    assert torch.allclose(gaussian_log_density(z, mu, logvar), q.log_prob(z).sum(-1), rtol=1e-5, atol=1e-4)
    assert torch.allclose(gaussian_log_density(z), prior.log_prob(z).sum(-1), rtol=1e-5, atol=1e-5)


def test_capacity_rises_linearly_to_its_maximum_then_stays():
    assert [capacity_at(s, 25.0, 1000) for s in (0, 250, 500, 1000, 5000)] == [0.0, 6.25, 12.5, 25.0, 25.0]
    assert capacity_at(3, 10.0, 1) == 10.0


def test_capacity_objective_holds_the_kl_at_the_step_target():
    fam, data = trained_vae(0, capacity=True, capacity_max=20.0, capacity_steps=100, capacity_gamma=50.0)
    ctx = context(fam)
    ctx.step = 50
    out = {k: v.detach() for k, v in fam.training_step(Batch(data.float_batch(torch.arange(8)), data.labels[:8]),
                                                       ctx).items()}
    assert float(out["vae/capacity"]) == 10.0 and "vae/beta" not in out
    expect = out["loss/recon"] + 50.0 * (out["loss/kl"] - 10.0).abs()
    assert torch.allclose(out["loss/total"], expect)


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    kl = torch.tensor([0.01, 0.5, 2.0], requires_grad=True)
    term = free_bits_kl(kl, 0.25)
    term.backward()
    assert float(term.detach()) == pytest.approx(0.25 + 0.5 + 2.0)
    assert kl.grad.tolist() == [0.0, 1.0, 1.0]       # below the floor: no push toward the prior
    assert float(free_bits_kl(kl, 0.0).detach()) == pytest.approx(2.51)


def test_logged_values_are_namespaced_with_one_kl_curve_per_latent_dimension():
    fam, data = trained_vae(0, beta=4.0, free_bits=0.5)
    out = fam.training_step(Batch(data.float_batch(torch.arange(8)), data.labels[:8]), context(fam))
    out = {k: v.detach() for k, v in out.items()}
    assert set(out) == {"loss/total", "loss/recon", "loss/kl", "vae/beta", "kl/z0", "kl/z1", "kl/z2", "kl/z3"}
    assert float(out["vae/beta"]) == 4.0
    assert torch.allclose(out["loss/kl"], sum(out[f"kl/z{j}"] for j in range(4)))
    floored = sum(max(float(out[f"kl/z{j}"]), 0.5) for j in range(4))
    assert float(out["loss/total"]) == pytest.approx(float(out["loss/recon"]) + 4.0 * floored, rel=1e-5)


# ---- decoders and the bound ------------------------------------------------------------------------
@pytest.mark.parametrize("decoder,variance", [("gaussian", "learned"), ("gaussian", "fixed"), ("logistic", "learned"),
                                              ("bernoulli", "learned")])
def test_each_decoder_trains_and_gives_finite_positive_bits_per_dim(decoder, variance):
    fam, data = trained_vae(3, decoder=decoder, gaussian_variance=variance)
    bpd = fam.bits_per_dim(data.float_batch(torch.arange(16)), data.labels[:16])
    assert 0 < bpd < 64
    img = fam.sample(2, seed=0)
    assert img.shape == (2, 1, RES, RES) and img.min() >= -1 and img.max() <= 1


def test_discretized_decoders_give_an_exactly_predicted_image_a_high_likelihood():
    x = digits().float_batch(torch.arange(4))               # (4, 1, 8, 8) on the 8-bit grid
    sharp = torch.full_like(x, -7.0)                         # the smallest log-scale
    for decoder in ("gaussian", "logistic"):
        pixels = pixel_distribution(decoder, "learned")
        exact = pixels.log_prob(x, torch.cat([x, sharp], 1))
        off = pixels.log_prob(x, torch.cat([(x + 6 / 127.5), sharp], 1))   # six levels off
        assert float(bpd_discrete(-exact, 64).max()) < 0.05, decoder      # > 97 % of the mass on the right level
        assert (off < exact - 100).all(), decoder
    fixed = pixel_distribution("gaussian", "fixed", fixed_std=0.01)
    assert (fixed.log_prob(x, x) > fixed.log_prob(x, x + 0.05)).all()
    binary = x.sign()                                                       # a black-and-white image
    bern = pixel_distribution("bernoulli")
    assert (bern.log_prob(binary, binary * 30) > -64 * 1e-6).all()


def test_iwae_bound_is_at_least_the_elbo_and_does_not_fall_as_k_grows(trained):
    fam, data = trained
    x = data.float_batch(torch.arange(16))
    # one draw of 64 samples, split into nested groups: the bound of every group size, image by image
    w = fam.importance_log_weights(x, None, 64, generator=torch.Generator().manual_seed(0))   # (64, 16)
    nested = [log_mean_exp(w.view(64 // k, k, 16), dim=1).mean(0) for k in (1, 4, 16, 64)]
    assert torch.allclose(nested[-1], fam.log_likelihood_bound(x, None, 64, generator=torch.Generator().manual_seed(0)))
    for smaller, larger in zip(nested, nested[1:]):
        assert (larger >= smaller - 1e-4).all()             # the ELBO (k = 1) is the lowest
    # independent draws: the expected bound rises with K (averaged over draws and images)
    mean_bound = {k: torch.stack([fam.log_likelihood_bound(x, None, k, generator=torch.Generator().manual_seed(r))
                                  for r in range(10)]).mean() for k in (1, 8, 64)}
    tol = 0.05                                               # Monte-Carlo noise, nats per image
    assert mean_bound[8] >= mean_bound[1] - tol and mean_bound[64] >= mean_bound[8] - tol
    assert mean_bound[64] - mean_bound[1] > 0.1              # and is really tighter than the ELBO


# ---- conditional VAE and the latent space ----------------------------------------------------------
def test_conditional_vae_samples_differ_by_class_and_unlabelled_cycles_the_classes(trained_conditional):
    fam, _ = trained_conditional
    assert fam.num_classes == 10 and fam.networks["encoder"].num_classes == 10
    per_class = [fam.sample(4, seed=3, labels=[c] * 4) for c in range(10)]
    for a in range(10):
        for b in range(a + 1, 10):
            assert (per_class[a] - per_class[b]).abs().mean() > 0.02, (a, b)
    cycled = fam.sample(10, seed=3)
    for c in range(10):   # image i of an unlabelled grid is class i with seed 3 + i
        assert torch.allclose(cycled[c], fam.sample(1, seed=3 + c, labels=[c])[0], atol=1e-5)
    with pytest.raises(ValueError, match="no unconditional mode"):
        fam.sample(1, seed=0, labels=[-1])


def test_temperature_scales_the_prior_when_sampling_and_zero_gives_the_mean_image(trained):
    fam, _ = trained
    zero = fam.sample(3, seed=0, temperature=0.0)
    assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
    z = fam.seed_latents([0, 1]) * 0.5
    assert torch.equal(fam.sample(2, seed=0, temperature=0.5), fam.decode_latents(z))


def test_encode_then_decode_of_a_trained_model_is_closer_to_the_input_than_another_image(trained):
    fam, data = trained
    x = data.float_batch(torch.arange(64))
    back = fam.decode_latents(fam.encode_images(x))
    other = x.roll(1, 0)                       # a different digit image for each
    assert (back - x).abs().mean() < 0.8 * (back - other).abs().mean()
    caps = fam.capabilities().latent
    assert (caps.space, caps.encode_method, caps.one_pass, caps.default_mode) == ("z", "encoder mean", True, "slerp")


def test_reconstruction_is_closer_to_its_own_image_than_to_another(trained):
    fam, data = trained
    x = data.float_batch(torch.arange(64))
    rec = fam.reconstruct(x)
    assert rec.shape == x.shape and rec.min() >= -1 and rec.max() <= 1
    assert (rec - x).abs().mean() < 0.8 * (rec - x.roll(1, 0)).abs().mean()


def test_a_training_run_writes_held_out_images_over_their_reconstructions_beside_each_sample_grid(tmp_path):
    from PIL import Image
    from engine.training.loop import train
    events = []
    cfg = vae_config().replace(data={"holdout": 0.1}, training={"steps": 4, "sample_every": 2, "checkpoint_every": 0,
                                                                "log_every": 2})
    res = train(cfg, tmp_path / "run", emit=events.append)
    assert res.state == "finished", res.message
    recon = sorted((tmp_path / "run" / "samples" / "recon").glob("step_*.png"))
    assert [p.name for p in recon] == ["step_000000.png", "step_000002.png", "step_000004.png"]
    w, h = Image.open(recon[-1]).size
    assert (w, h) == (1 + 10 * (RES + 1), 1 + 2 * (RES + 1))       # 10 images over their 10 reconstructions
    sample_events = [e for e in events if e["event"] == "sample"]
    assert sample_events and all(e["artifacts"]["recon"].endswith(f"step_{e['step']:06d}.png") for e in sample_events)
    # the run declares what it writes, for the GUI and the runs browser
    from engine.runs.rundir import RunDir
    assert [a.key for a in RunDir(tmp_path / "run").artifacts()] == ["samples", "recon"]
    # the sample grids themselves are where they always were
    assert (tmp_path / "run" / "samples" / "step_000004.png").exists()
