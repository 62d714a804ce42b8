"""The DiT backbone (engine/nn/dit.py) and its choice in the DDPM family (backbone = "dit"): shapes,
adaLN-Zero's identity at initialisation, the null class, patchify/unpatchify, TD-LN, the config
checks, and a tiny DDPM on a DiT that trains, samples and checkpoints. Resuming a DiT run is the
resume conformance test's case "ddpm:dit" (test_family_training.py; DDPMConfig.TINY_VARIANTS)."""
from __future__ import annotations

import math

import pytest
import torch

from engine.core.config import load_preset
from engine.core.schema import ConfigError
from engine.nn.dit import DiT, DiTBlock, TimeDependentLayerNorm, patchify, sincos_2d, unpatchify
from engine.training import checkpoint as ck
from engine.training.loop import train
from tests.conftest import tiny_family_config
from tests.engine.test_family_training import rows_of

NORMS = ("adaln-zero", "tdln")
TINY_DIT = {"backbone": "dit", "dit_width": 16, "dit_depth": 2, "dit_heads": 2, "dit_patch_size": 2}


def randomized(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter redrawn at random, so that the zero-initialised gates and output layer no
    longer hide what the conditioning does (at initialisation the output is exactly 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net


# ---- the network -----------------------------------------------------------------------------
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("patch,channels,classes", [(1, 1, 0), (2, 3, 10), (4, 1, 3)])
def test_output_has_the_input_shape_for_integer_and_float_times(norm, patch, channels, classes):
    net = randomized(DiT(in_channels=channels, resolution=8, patch_size=patch, width=16, depth=2, heads=4,
                         norm=norm, num_classes=classes, time_range=(0, 999)))
    x = torch.randn(3, channels, 8, 8)
    labels = torch.tensor([0, 1, classes]) if classes else None
    for t in (torch.tensor([0, 500, 999]), torch.tensor([0.0, 0.25, 1.0]), torch.tensor([5]), 7, 0.5):
        out = net(x, t, labels)
        assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("norm", NORMS)
def test_the_network_starts_at_zero_and_each_block_as_the_identity(norm):
    """adaLN-Zero: the gates come from a zero-initialised projection, so each block returns its
    input unchanged; TD-LN's blocks start so by their zeroed residual branches. The final layer is
    zero too, so the whole network predicts 0 at first."""
    block = DiTBlock(32, 4, 4.0, norm)
    x = torch.randn(2, 16, 32)
    c, tau = torch.randn(2, 32), torch.tensor([-4.0, 3.0])
    assert torch.equal(block(x, c, tau), x)
    net = DiT(in_channels=1, resolution=8, width=32, depth=3, heads=4, norm=norm, num_classes=10)
    out = net(torch.randn(2, 1, 8, 8), torch.tensor([1, 900]), torch.tensor([3, 10]))
    assert torch.equal(out, torch.zeros_like(out))


def test_tdln_gain_and_bias_move_with_time_and_cost_far_fewer_parameters_than_adaln():
    norm = TimeDependentLayerNorm(8)
    x = torch.randn(2, 5, 8)
    tau = torch.tensor([-4.0, 4.0])
    same = norm(x, tau)   # p0 = p1 at first: no dependence on time, a plain LayerNorm
    assert torch.allclose(same, torch.nn.functional.layer_norm(x, (8,), eps=1e-6), atol=1e-6)
    with torch.no_grad():
        norm.gain.p0.fill_(2.0)
    one = norm(x[:1].expand(2, -1, -1), tau)
    assert not torch.allclose(one[0], one[1])   # the same tokens normalised differently at two times
    s = torch.sigmoid(tau)  # w = 1, b = 0: gain = s * 2 + (1 - s) * 1
    expected = torch.nn.functional.layer_norm(x[:1], (8,), eps=1e-6) * (1 + s)[:, None, None]
    assert torch.allclose(one, expected, atol=1e-5)

    def params(norm):
        return sum(p.numel() for p in DiT(in_channels=1, resolution=8, width=64, depth=4, heads=4,
                                          norm=norm).parameters())
    assert params("tdln") < 0.7 * params("adaln-zero")


@pytest.mark.parametrize("norm", NORMS)
def test_the_null_class_is_the_unconditional_path(norm):
    """Label index num_classes (what label dropout substitutes) is what labels=None means, and a
    real label gives another prediction."""
    net = randomized(DiT(in_channels=1, resolution=8, width=16, depth=2, heads=2, norm=norm, num_classes=10))
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([3, 30, 300, 900])
    null = net(x, t, torch.full((4,), 10))
    assert torch.equal(net(x, t, None), null)
    assert not torch.allclose(net(x, t, torch.tensor([0, 1, 2, 3])), null)


def test_patchify_then_unpatchify_is_the_identity_and_patches_are_row_major():
    x = torch.randn(2, 3, 8, 12)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 2 * 3, 4 * 4 * 3)
    assert torch.equal(unpatchify(tokens, 4, 3, 8), x)
    # token 1 is the patch right of the first: rows 0-3, columns 4-7, flattened as (p, p, C)
    assert torch.equal(tokens[:, 1], x[:, :, 0:4, 4:8].permute(0, 2, 3, 1).reshape(2, -1))


def test_sincos_position_embedding_is_fixed_and_learned_one_starts_from_it():
    fixed = DiT(in_channels=1, resolution=8, width=16, depth=1, heads=2, pos_embed="sincos")
    learned = DiT(in_channels=1, resolution=8, width=16, depth=1, heads=2, pos_embed="learned")
    assert "pos" not in fixed.state_dict() and "pos" in dict(learned.named_parameters())
    assert torch.equal(learned.pos.detach(), fixed.pos) and torch.equal(fixed.pos[0], sincos_2d(4, 16))
    assert len({tuple(row.tolist()) for row in fixed.pos[0]}) == 16   # every position its own code


# ---- the DDPM family on a DiT ----------------------------------------------------------------
def dit_config(tmp_steps: int = 2, **model):
    return tiny_family_config("ddpm", steps=tmp_steps).replace(model={**TINY_DIT, **model})


def test_config_check_names_patch_and_heads_in_one_line():
    cfg = dit_config()
    with pytest.raises(ConfigError) as e:
        cfg.replace(model={"dit_patch_size": 3})
    assert "data.resolution = 8" in str(e.value) and "dit_patch_size = 3" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="dit_width = 16 must be divisible by model.dit_heads = 3"):
        cfg.replace(model={"dit_heads": 3})
    # the UNet's level constraint does not apply to a DiT: 6 px, patch 2, with UNet levels that need 4
    cfg.replace(data={"resolution": 6}, model={"channel_mults": [1, 2, 2]})


@pytest.mark.parametrize("norm,pos_embed", [("adaln-zero", "sincos"), ("tdln", "learned")])
def test_a_tiny_ddpm_on_a_dit_trains_samples_and_round_trips_its_checkpoint(norm, pos_embed, tmp_path):
    cfg = dit_config(4, dit_norm=norm, dit_pos_embed=pos_embed)
    res = train(cfg, tmp_path / "run", emit=lambda e: None)
    assert res.state == "finished" and res.step == 4, res.message
    rows = rows_of(tmp_path / "run")
    assert all(math.isfinite(r["loss/mse"]) for r in rows)
    fam, ckpt = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    assert type(fam.networks["unet"]).__name__ == "DiT" and fam.networks["unet"].norm == norm
    saved = ckpt.prefixed("net.")
    assert saved.keys() == fam.networks.state_dict().keys()
    labels = fam.labels_for(4)
    images = fam.sample(4, seed=3, labels=labels)
    assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()
    again, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    assert torch.equal(again.sample(4, seed=3, labels=labels), images)


def test_dit_digits_preset_is_a_class_conditional_ddpm_on_a_dit_of_ddpm_digits_size():
    cfg = load_preset("dit-digits")
    assert cfg.model.family == "ddpm" and cfg.model.backbone == "dit" and cfg.data.resolution == 16
    from engine.family.base import build_family
    dit = build_family(cfg, 1, 16, [str(i) for i in range(10)]).num_parameters()
    unet = build_family(load_preset("ddpm-digits"), 1, 16, [str(i) for i in range(10)]).num_parameters()
    assert 0.8 < dit / unet < 1.25   # "equal parameters" comparisons stay fair
