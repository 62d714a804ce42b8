"""Hierarchical VAE (VDVAE-lite): the residual branches' scaled-down init, gradient skipping, KL per
group, per-group temperatures, the ELBO and IWAE bounds (bits/dim), and encode -> decode through the
top latents with the lower groups fixed."""
from __future__ import annotations

import math
from functools import lru_cache

import pytest
import torch

from engine.core.config import RunConfig
from engine.data import build_dataset
from engine.family.base import StepContext, build_family
from engine.family.base import Batch
from engine.families.hvae.model import HVAEFamily
from engine.families.hvae.layers import Block, DecoderBlock, gaussian_kl, gaussian_log_prob
from engine.core.schema import ConfigError
from engine.families.hvae.section import hvae_sizes

RES = 8
MODEL = {"family": "hvae", "width": 16, "zdim": 2, "top_1x1": True, "decoder_groups": [1, 2, 1],
         "encoder_blocks": [1, 1, 1], "iwae_k": 4}


def hvae_config(training=None, **model) -> RunConfig:
    return RunConfig(name="h").replace(
        data={"dataset": "digits", "resolution": RES},
        model={**MODEL, **model},
        training={"batch_size": 32, "lr": 3e-3, "device": "cpu", "grad_clip": 0.0, **(training or {})},
        sampling={"grid_size": 4})


@lru_cache(maxsize=1)
def digits():
    return build_dataset(hvae_config().data)


def make_family(**model) -> HVAEFamily:
    torch.manual_seed(0)
    data = digits()
    return build_family(hvae_config(**model), data.channels, RES, data.class_names)


def context(fam, seed=0, grad_clip=0.0) -> StepContext:
    return StepContext(torch.device("cpu"), torch.Generator().manual_seed(seed), fam.make_optimizers(),
                       grad_clip=grad_clip)


def batch(n=32, seed=1) -> Batch:
    data = digits()
    idx = torch.randint(0, len(data), (n,), generator=torch.Generator().manual_seed(seed))
    return Batch(data.float_batch(idx), data.labels[idx])


def train(fam, steps: int, batch_size: int = 32) -> HVAEFamily:
    ctx = context(fam)
    for step in range(steps):
        ctx.step = step
        fam.training_step(batch(batch_size, seed=step), ctx)
    fam.init_ema()
    return fam


@pytest.fixture(scope="module")
def trained():
    """Trained until its groups carry information (a tiny model ignores its latents at first: ~150 steps;
    narrower than 32 it still ignores them at 250). Batches of 16: the same 250 steps in 2/3 of the time."""
    return train(make_family(width=32), 250, batch_size=16)


# ---- the hierarchy and its init --------------------------------------------------------------------
def test_sizes_from_the_top_and_level_lists_are_checked():
    assert hvae_sizes(16, True) == [1, 4, 8, 16] and hvae_sizes(8, False) == [4, 8] and hvae_sizes(4, True) == [1, 4]
    fam = make_family()
    assert fam.sizes == [1, 4, 8] and fam.num_groups == 4
    assert fam.group_dims == [2 * 1, 2 * 16, 2 * 16, 2 * 64] and fam.latent_dim == 2
    # latent_groups 0 (the default): every group of the top resolution
    two = make_family(decoder_groups=[2, 1, 1])
    assert two.latent_groups == 2 and two.latent_dim == 2 + 2
    assert make_family(top_1x1=False, decoder_groups=[3, 1], encoder_blocks=[1, 1]).latent_dim == 3 * 2 * 16
    with pytest.raises(ConfigError, match=r"model.decoder_groups .* 3 \(1x1, 4x4, 8x8, from the top\)"):
        hvae_config(decoder_groups=[1, 1])
    with pytest.raises(ConfigError, match="model.encoder_blocks"):
        hvae_config(encoder_blocks=[1, 0, 1])
    with pytest.raises(ConfigError, match="sampling.group_temperatures .* 4 latent groups"):
        hvae_config().replace(sampling={"group_temperatures": [1, 1, 1, 1, 1]})
    with pytest.raises(ConfigError, match="between 0 and 2"):
        hvae_config().replace(sampling={"group_temperatures": [1, -0.5]})


@torch.no_grad()
def test_a_residual_blocks_last_layer_is_scaled_by_the_given_factor():
    torch.manual_seed(3)
    plain = Block(32, 8, 32, residual=True, size=8)
    torch.manual_seed(3)
    scaled = Block(32, 8, 32, residual=True, size=8, out_scale=0.25)
    for a, b in zip(plain.parameters(), scaled.parameters()):
        if a is not plain.c4.weight and b is not scaled.c4.weight:
            assert torch.equal(a, b)
    assert torch.allclose(scaled.c4.weight, 0.25 * plain.c4.weight)
    assert torch.allclose(scaled.c4.weight.norm() / plain.c4.weight.norm(), torch.tensor(0.25))
    # every bias starts at zero; 1x1 maps use 1x1 convs instead of 3x3
    assert all(float(c.bias.abs().sum()) == 0 for c in (plain.c1, plain.c2, plain.c3, plain.c4))
    assert Block(8, 4, 8, residual=True, size=1).c2.kernel_size == (1, 1) and plain.c2.kernel_size == (3, 3)


def default_norm(layer: torch.nn.Conv2d) -> float:
    """The expected weight norm of PyTorch's default conv init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    fan_in = layer.weight[0].numel()
    return math.sqrt(layer.weight.numel() / (3 * fan_in))


@torch.no_grad()
def test_every_residual_branch_of_the_model_starts_scaled_down_and_every_prior_starts_at_n01():
    fam = make_family(width=64, zdim=8, decoder_groups=[2, 3, 4], encoder_blocks=[1, 2, 3])
    enc, dec = fam.networks["encoder"], fam.networks["decoder"]
    enc_blocks = [b for level in enc.levels for b in level]
    assert len(enc_blocks) == 6 and len(dec.blocks) == 9
    for b in enc_blocks:   # sqrt(1 / 6) of a default-init layer's norm
        assert b.c4.weight.norm() / default_norm(b.c4) == pytest.approx(math.sqrt(1 / 6), rel=0.15)
    for b in dec.blocks:   # sqrt(1 / 9)
        assert isinstance(b, DecoderBlock)
        assert b.resnet.c4.weight.norm() / default_norm(b.resnet.c4) == pytest.approx(1 / 3, rel=0.15)
        assert b.z_proj.weight.norm() / default_norm(b.z_proj) == pytest.approx(1 / 3, rel=0.3)
        assert float(b.prior.c4.weight.abs().sum()) == 0 and float(b.prior.c4.bias.abs().sum()) == 0
        # the unscaled posterior branch for comparison: a default-init layer
        assert b.posterior.c4.weight.norm() / default_norm(b.posterior.c4) == pytest.approx(1.0, rel=0.3)
    # so at step 0 every group's prior is N(0, 1)
    x = torch.randn(2, 64, 1, 1)
    pm, plogstd, dx = dec.blocks[0].prior_params(x)
    assert float(pm.abs().max()) == 0 and float(plogstd.abs().max()) == 0 and float(dx.abs().max()) == 0


# ---- the objective -----------------------------------------------------------------------------------
def test_the_closed_form_kl_and_log_density_match_torch_distributions():
    from torch.distributions import Normal, kl_divergence
    torch.manual_seed(0)
    mq, lq, mp, lp = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    q, p = Normal(mq, lq.exp()), Normal(mp, lp.exp())
    assert torch.allclose(gaussian_kl(mq, lq, mp, lp), kl_divergence(q, p), rtol=1e-5, atol=1e-5)
    z = torch.randn(4, 5)
    assert torch.allclose(gaussian_log_prob(z, mq, lq), q.log_prob(z), rtol=1e-5, atol=1e-5)


def test_kl_is_logged_per_group_in_nats_and_is_non_negative(trained):
    fam = make_family()
    logs = fam.training_step(batch(), context(fam))
    groups = sorted(k for k in logs if k.startswith("kl/"))
    assert groups == [f"kl/group_{g}" for g in range(fam.num_groups)]
    values = torch.stack([logs[k].detach() for k in groups])
    assert (values >= 0).all() and torch.isfinite(values).all()
    assert torch.allclose(values.sum(), logs["loss/kl"].detach())
    # loss/bpd is the batch's negative ELBO in bits per sub-pixel
    nelbo = float(logs["loss/recon"] + logs["loss/kl"])
    assert float(logs["loss/bpd"]) == pytest.approx(nelbo / (RES * RES * math.log(2)), rel=1e-5)
    # after some training the groups carry information: KL above 0
    logs = trained.training_step(batch(seed=99), context(trained))
    assert float(logs["loss/kl"]) > 0.5


# ---- gradient skipping -----------------------------------------------------------------------------
def params_of(fam):
    return [p.detach().clone() for p in fam.networks.parameters()]


def test_an_update_is_skipped_when_the_gradient_norm_is_above_the_threshold():
    fam = make_family(grad_skip_threshold=1e-6)
    ctx = context(fam)
    before = params_of(fam)
    logs = fam.training_step(batch(), ctx)
    assert all(torch.equal(a, b) for a, b in zip(before, fam.networks.parameters()))
    assert fam.skipped_updates == 1 and float(logs["train/skipped_updates"]) == 1 and float(logs["train/skipped"]) == 1
    assert float(ctx.grad_norms["hvae"]) > 1e-6
    assert all(p.grad is None for p in fam.networks.parameters())   # nothing left over for a later step
    logs = fam.training_step(batch(seed=2), ctx)
    assert float(logs["train/skipped_updates"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(before, fam.networks.parameters()))


def test_an_update_goes_ahead_below_the_threshold_and_with_no_threshold():
    for threshold in (1e6, 0.0):
        fam = make_family(grad_skip_threshold=threshold)
        before = params_of(fam)
        logs = fam.training_step(batch(), context(fam))
        assert fam.skipped_updates == 0 and float(logs["train/skipped_updates"]) == 0
        assert any(not torch.equal(a, b) for a, b in zip(before, fam.networks.parameters()))


def test_a_non_finite_gradient_is_always_skipped():
    fam = make_family(grad_skip_threshold=0.0)
    p = fam.networks["decoder"].out.weight
    handle = p.register_hook(lambda g: torch.full_like(g, float("nan")))
    before = params_of(fam)
    fam.training_step(batch(), context(fam))
    handle.remove()
    assert fam.skipped_updates == 1
    assert all(torch.equal(a, b) for a, b in zip(before, fam.networks.parameters()))


def test_gradient_clipping_still_applies_and_the_norm_before_clipping_is_checked():
    fam = make_family(grad_skip_threshold=1e6)
    ctx = context(fam, grad_clip=1e-3)
    fam.training_step(batch(), ctx)
    assert fam.skipped_updates == 0 and float(ctx.grad_norms["hvae"]) > 1e-3   # the norm before clipping


# ---- sampling and temperatures -------------------------------------------------------------------
def test_temperature_zero_everywhere_makes_samples_independent_of_the_seed(trained):
    fam = trained
    a, b = fam.sample(3, seed=0, temperature=0.0), fam.sample(3, seed=50, temperature=0.0)
    assert torch.equal(a, b) and torch.equal(a[0], a[1])
    zeros = [0.0] * fam.num_groups
    assert torch.equal(fam.sample(2, seed=0, group_temperatures=zeros, temperature=1.0),
                       fam.sample(2, seed=7, group_temperatures=zeros, temperature=1.0))
    assert not torch.equal(fam.sample(2, seed=0), fam.sample(2, seed=7))


def test_a_group_temperature_controls_only_its_group(trained):
    fam = trained
    g = fam.num_groups
    # only the lower groups vary: different seeds, different images
    lower = [0.0] + [1.0] * (g - 1)
    assert not torch.equal(fam.sample(2, seed=0, group_temperatures=lower),
                           fam.sample(2, seed=9, group_temperatures=lower))
    # only the top varies: a sample is exactly the decode of its seed's top latent, lower groups at their means
    top = [1.0] + [0.0] * (g - 1)
    opts = fam.sample_options(group_temperatures=top)
    decoded = fam.decode_latents(fam.seed_latents([5, 6, 7]), options=opts)
    assert torch.allclose(fam.sample(3, seed=5, options=opts), decoded, atol=1e-6)
    # a shorter list: the rest use `temperature`
    assert torch.equal(fam.sample(2, seed=3, group_temperatures=[1.0], temperature=0.0),
                       fam.sample(2, seed=3, group_temperatures=top, temperature=0.7))
    with pytest.raises(ConfigError, match="group_temperatures"):
        fam.sample(1, seed=0, group_temperatures=[1.0] * (g + 1))


# ---- the bound -----------------------------------------------------------------------------------
def test_bits_per_dim_is_finite_positive_and_the_iwae_bound_is_at_least_the_elbo(trained):
    fam = trained
    data = digits()
    x, y = data.float_batch(torch.arange(24)), data.labels[:24]
    bpd = fam.bits_per_dim(x, y)
    assert math.isfinite(bpd) and 0 < bpd < 8
    assert bpd == fam.bits_per_dim(x, y)   # the same evaluation noise every time
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    w = fam.importance_log_weights(x, y, 64, generator=g())                   # (64, 24)
    # the closed-form-KL ELBO (one reconstruction draw each): averaged over draws and images it
    # agrees with the average of the sampled importance log-weights (the same expectation)
    elbo = torch.stack([fam.log_likelihood_bound(x, y, 1, generator=torch.Generator().manual_seed(s))
                        for s in range(8)]).mean(0)
    assert float(w.mean()) == pytest.approx(float(elbo.mean()), abs=1.5)
    # the IWAE bound is above the ELBO
    iwae = fam.log_likelihood_bound(x, y, 64, generator=g())
    assert (iwae >= w.mean(0) - 1e-4).all() and iwae.mean() > elbo.mean()
    # bits/dim is the negative bound in bits per sub-pixel
    bound = fam.log_likelihood_bound(x, y, fam.cfg.model.iwae_k, generator=torch.Generator().manual_seed(0))
    assert bpd == pytest.approx(float(-bound.mean()) / (RES * RES * math.log(2)), rel=1e-5)
    # the trained model beats an untrained one
    assert bpd < make_family().bits_per_dim(x, y)


# ---- latents ---------------------------------------------------------------------------------------
def test_encode_then_decode_through_the_top_latents_is_a_deterministic_function(trained):
    fam = trained
    data = digits()
    x = data.float_batch(torch.arange(40, 48))
    z = fam.encode_images(x)
    assert z.shape == (8, fam.latent_dim) and torch.equal(z, fam.encode_images(x))
    a, b = fam.decode_latents(z), fam.decode_latents(z)
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    # the lower groups are fixed: temperatures change them, but the same options give the same image
    cold = fam.sample_options(group_temperatures=[1.0] + [0.0] * (fam.num_groups - 1))
    assert torch.equal(fam.decode_latents(z, options=cold), fam.decode_latents(z, options=cold))
    assert not torch.equal(fam.decode_latents(z, options=cold), a)
    # reconstructions from the top latents are nearer their own images than other images' latents
    own = (fam.decode_latents(z, options=cold) - x).abs().mean()
    other = (fam.decode_latents(z.roll(1, 0), options=cold) - x).abs().mean()
    assert own < other
    # differentiable decoding keeps the graph
    zz = z[:2].clone().requires_grad_(True)
    fam.decode_latents(zz, differentiable=True).sum().backward()
    assert zz.grad is not None and torch.isfinite(zz.grad).all()


def test_a_conditional_model_takes_the_class_in_the_top_down_path():
    fam = train(make_family(class_conditional=True), 20)
    assert fam.num_classes == 10 and fam.is_conditional
    a, b = fam.sample(2, seed=0, labels=[3, 3]), fam.sample(2, seed=0, labels=[5, 5])
    assert not torch.equal(a, b)
    data = digits()
    x, y = data.float_batch(torch.arange(8)), data.labels[:8]
    assert math.isfinite(fam.bits_per_dim(x, y))


def test_the_latent_space_can_span_several_top_groups():
    fam = train(make_family(latent_groups=2), 20)
    assert fam.latent_dim == 2 + 32
    lat = fam.seed_latents([4, 5])
    assert lat.shape == (2, 34)
    # a sample with the lower groups at their means is the decode of its seed's latent
    cold = fam.sample_options(group_temperatures=[1.0, 1.0, 0.0, 0.0])
    assert torch.allclose(fam.sample(2, seed=4, options=cold), fam.decode_latents(lat, options=cold), atol=1e-6)
    # encode -> decode is a function; the second group's part of the latent matters
    x = digits().float_batch(torch.arange(4))
    z = fam.encode_images(x)
    assert z.shape == (4, 34) and torch.equal(fam.decode_latents(z), fam.decode_latents(z))
    z2 = z.clone()
    z2[:, 2:] = 0
    assert not torch.equal(fam.decode_latents(z2), fam.decode_latents(z))
    with pytest.raises(ConfigError, match="latent_groups = 5 is more than the model's 4 latent groups"):
        hvae_config(latent_groups=5)


def test_reconstruction_through_every_group_is_deterministic_and_nearer_its_own_image(trained):
    fam = trained
    x = digits().float_batch(torch.arange(64))
    rec = fam.reconstruct(x)
    assert rec.shape == x.shape and torch.equal(rec, fam.reconstruct(x)) and rec.min() >= -1 and rec.max() <= 1
    assert (rec - x).abs().mean() < 0.8 * (rec - x.roll(1, 0)).abs().mean()
    # every group at its posterior mean is at least as close as the top groups alone
    top = fam.decode_latents(fam.encode_images(x))
    assert (rec - x).abs().mean() <= (top - x).abs().mean() + 1e-4
