"""VQGAN-lite, the tokenizer's `gan` option (engine/families/vqvae/adversarial.py, discriminator.py):
the adaptive weight against gradients worked out by hand, the discriminator's warm-up, feature
matching, and a tiny run. Its resume is the conformance case "vqvae:gan" (test_family_training.py,
VQVAEConfig.TINY_VARIANTS)."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.core.schema import ConfigError
from engine.family.base import Batch, StepContext, build_family
from engine.families.vqvae.adversarial import (ADAPTIVE_EPS, adaptive_weight, feature_matching_loss, hinge_d_loss,
                                               hinge_g_loss)
from engine.families.vqvae.discriminator import PatchDiscriminator
from engine.training.loop import Trainer
from tests.conftest import tiny_family_config


def gan_config(**model):
    return tiny_family_config("vqvae:gan").replace(model=model) if model else tiny_family_config("vqvae:gan")


# ---- the adaptive weight -------------------------------------------------------------------------
def test_adaptive_weight_is_the_ratio_of_the_gradient_norms_at_the_last_layer():
    """A toy decoder ending in a linear layer W: for out = h W^T + b the gradients with respect to W
    are closed forms, so both norms are worked out by hand and compared with adaptive_weight."""
    torch.manual_seed(0)
    first, last = nn.Linear(3, 5), nn.Linear(5, 2)
    z, target, critic = torch.randn(4, 3), torch.randn(4, 2), torch.tensor([0.7, -1.3])
    h = torch.tanh(first(z))
    out = last(h)
    rec = F.mse_loss(out, target)
    gan = -(out @ critic).mean()           # a linear critic's generator loss
    # d rec / dW = 2 / (N * O) * (out - target)^T h;   d gan / dW = -(1 / N) * critic (outer) sum_n h_n
    g_rec = 2.0 / out.numel() * (out - target).detach().t() @ h.detach()
    g_gan = -torch.outer(critic, h.detach().sum(0)) / out.shape[0]
    expected = g_rec.norm() / (g_gan.norm() + ADAPTIVE_EPS)
    weight = adaptive_weight(rec, gan, last.weight, max_weight=1e4)
    assert torch.allclose(weight, expected, rtol=1e-5), (weight, expected)
    assert not weight.requires_grad
    # fp16's loss scale multiplies both losses and delta: the same lambda
    assert torch.allclose(adaptive_weight(rec, gan, last.weight, max_weight=1e4, scale=1024.0), expected, rtol=1e-5)
    # clamped at max_weight, and the graphs are kept for the step's backward
    assert float(adaptive_weight(rec, gan, last.weight, max_weight=0.5 * float(expected))) == pytest.approx(
        0.5 * float(expected))
    (rec + gan).backward()
    assert last.weight.grad is not None


def test_the_family_logs_disc_weight_times_the_adaptive_weight_of_its_decoders_last_layer():
    """The weight a training step logs is disc_weight * lambda computed at decoder.net[-1]: redone
    here from the same state with autograd, by hand."""
    cfg = gan_config(disc_start=0, disc_weight=0.5, feature_weight=0.0)
    fam = build_family(cfg, 1, 8, ["0"])
    opts = fam.make_optimizers()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    nets = fam.networks
    q = nets["quantizer"](nets["encoder"](x))
    out = nets["decoder"](q.z_q)
    last = nets["decoder"].net[-1].weight
    (g_rec,) = torch.autograd.grad(F.mse_loss(out, x), last, retain_graph=True)
    (g_gan,) = torch.autograd.grad(-nets["D"](out).mean(), last)
    expected = 0.5 * g_rec.norm() / (g_gan.norm() + ADAPTIVE_EPS)
    ctx = StepContext(torch.device("cpu"), torch.Generator().manual_seed(0), opts)
    logs = fam.training_step(Batch(x, torch.zeros(8, dtype=torch.long)), ctx)
    assert torch.allclose(logs["gan/adaptive_weight"], expected, rtol=1e-4)


# ---- the discriminator ------------------------------------------------------------------------------
def d_state(fam) -> dict:
    return {k: v.clone() for k, v in fam.networks["D"].state_dict().items()}


def test_the_discriminator_trains_only_from_disc_start():
    fam = build_family(gan_config(disc_start=2), 1, 8, ["0"])
    opts = fam.make_optimizers()
    assert set(opts) == {"vqvae", "D"}
    d_params = {id(p) for p in fam.networks["D"].parameters()}
    assert not any(id(p) in d_params for g in opts["vqvae"].param_groups for p in g["params"])
    ctx = StepContext(torch.device("cpu"), torch.Generator().manual_seed(0), opts)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    batch = Batch(x, torch.zeros(8, dtype=torch.long))
    before = d_state(fam)
    for step in (0, 1):
        ctx.step = step
        logs = fam.training_step(batch, ctx)
        assert "loss/D" not in logs and "loss/G" not in logs and float(logs["gan/adaptive_weight"]) == 0.0
        assert all(torch.equal(before[k], v) for k, v in fam.networks["D"].state_dict().items())
        assert not opts["D"].state
    ctx.step = 2
    logs = fam.training_step(batch, ctx)
    assert {"loss/D", "loss/G", "loss/feature", "gan/d_real", "gan/d_fake"} <= set(logs)
    assert float(logs["gan/adaptive_weight"]) > 0
    assert any(not torch.equal(before[k], v) for k, v in fam.networks["D"].state_dict().items())
    assert "D" not in fam.ema           # D is not averaged: only the tokenizer is used averaged


def test_patch_discriminator_scores_patches_and_returns_its_features():
    d = PatchDiscriminator(3, 8, 16, layers=2, spectral=True)
    feats = d.features(torch.randn(2, 3, 16, 16))
    assert [f.shape[1:] for f in feats] == [(8, 8, 8), (16, 4, 4), (16, 4, 4), (1, 4, 4)]
    assert torch.equal(d.eval()(torch.ones(1, 3, 16, 16)), d.features(torch.ones(1, 3, 16, 16))[-1])


def test_hinge_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - real) = (0, 0.5), mean 0.25; relu(1 + fake) = (0, 1), mean 0.5
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.75)
    assert float(hinge_g_loss(fake)) == pytest.approx(1.0)


# ---- feature matching ---------------------------------------------------------------------------------
def test_feature_loss_is_zero_for_identical_inputs_and_positive_otherwise():
    torch.manual_seed(0)
    d = PatchDiscriminator(1, 8, 16, layers=2)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert float(feature_matching_loss(d.features(x)[:-1], d.features(x.clone())[:-1])) == 0.0
        y = x + 0.5 * torch.randn_like(x)
        assert float(feature_matching_loss(d.features(x)[:-1], d.features(y)[:-1])) > 0.0
        # the mean over layers of the mean absolute differences
        a, b = [torch.zeros(2, 3), torch.ones(4)], [torch.ones(2, 3), 3 * torch.ones(4)]
        assert float(feature_matching_loss(a, b)) == pytest.approx((1.0 + 2.0) / 2)


# ---- config and a tiny run ------------------------------------------------------------------------------
def test_a_discriminator_deeper_than_the_image_is_one_clear_error():
    with pytest.raises(ConfigError, match="disc_layers"):
        gan_config(disc_layers=4)


def test_a_tiny_gan_run_trains_logs_its_gan_values_and_samples_finite_images(tmp_path):
    cfg = gan_config().replace(training={"steps": 3})
    trainer = Trainer(cfg, tmp_path / "run", emit=lambda e: None)
    result = trainer.run()
    assert result.state == "finished" and result.step == 3, result.message
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["gan/adaptive_weight"] == 0.0 and "loss/D" not in rows[0]     # disc_start = 1
    for r in rows[1:]:
        for k in ("loss/D", "loss/G", "loss/feature", "gan/adaptive_weight"):
            assert math.isfinite(r[k]), (k, r)
    images = trainer.family.sample(4, seed=0)
    assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()
    assert torch.isfinite(trainer.family.reconstruct(torch.zeros(2, 1, 8, 8))).all()
