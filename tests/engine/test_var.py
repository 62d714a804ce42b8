"""VAR, next-scale prediction (engine/families/var/): the block-causal mask lets a scale see only
coarser scales and itself; teacher forcing feeds scale k the parent's code vectors of the coarser
maps, upsampled, summed and brought to scale k's size; sampling through the KV cache draws what a
full pass per scale draws; top-k / top-p keep the codes they should; a parent that is not a
multi-scale (msrq) tokenizer is refused in one line. The conformance suites cover the rest
(`-k var`)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.families.var.layers import NextScaleTransformer, block_causal_mask, next_scale_inputs
from engine.families.var.model import filter_logits
from engine.training import checkpoint as ck
from engine.training.loop import train
from tests.conftest import tiny_family_config, tiny_parent

SIZES = [1, 2, 3]          # 1 + 4 + 9 = 14 positions


def one_line(msg: str) -> str:
    assert "\n" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def family(tiny_runs):
    """The session's tiny var run (an msrq parent at scales 1, 2, 4), loaded from its checkpoint."""
    fam, _ = ck.family_from_checkpoint(tiny_runs["var"].checkpoint, "cpu")
    return fam


def tiny_net(num_classes: int = 3) -> NextScaleTransformer:
    torch.manual_seed(0)
    return NextScaleTransformer(SIZES, num_codes=7, code_dim=5, width=16, depth=2, heads=2, mlp_ratio=2.0,
                                dropout=0.0, num_classes=num_classes).eval()


# ---- the block-causal mask ------------------------------------------------------------------------
def test_the_mask_lets_a_scale_see_the_coarser_scales_and_itself_only():
    mask = block_causal_mask(SIZES)
    level = [0] + [1] * 4 + [2] * 9
    assert mask.shape == (14, 14)
    for i in range(14):
        for j in range(14):
            assert bool(mask[i, j]) == (level[j] <= level[i]), (i, j)
    assert mask[1:5, 1:5].all() and not mask[1:5, 5:].any()   # scale 1 sees all of itself, nothing of scale 2


def test_logits_of_a_scale_do_not_change_when_finer_inputs_change():
    net = tiny_net()
    labels = torch.tensor([0, 2])
    inputs = torch.randn(2, 13, 5)                  # the inputs of scales 1 and 2 (positions 1..13)
    base = net(labels, inputs)
    changed = inputs.clone()
    changed[:, 4:] += torch.randn(2, 9, 5)          # scale 2's inputs (positions 5..13)
    after = net(labels, changed)
    assert torch.allclose(base[:, :5], after[:, :5], atol=1e-6)     # scales 0 and 1 untouched
    assert not torch.allclose(base[:, 5:], after[:, 5:])            # scale 2 did see its own inputs


def test_logits_of_scale_k_do_not_depend_on_the_tokens_of_scale_k_or_finer(family):
    """Through the family: changing the tokens of scale j changes the inputs of scales j+1.. only, so
    the logits of scales 0..j stay as they were."""
    net = family.nets(True)["transformer"]
    torch.manual_seed(1)
    flat = torch.randint(0, family.num_codes, (3, net.length))
    labels = family._labels([1, 2, 3], 3)
    logits = lambda f: net(labels, family.teacher_inputs(family.split(f)))  # noqa: E731
    base = logits(flat)
    for j in range(len(family.sizes) - 1):
        a, b = net.starts[j], net.starts[j + 1]
        changed = flat.clone()
        changed[:, a:b] = (changed[:, a:b] + 1) % family.num_codes
        after = logits(changed)
        assert torch.allclose(base[:, :b], after[:, :b], atol=1e-6), f"scale {j}"
        assert not torch.allclose(base[:, b:], after[:, b:]), f"scale {j}: finer scales should see it"


# ---- teacher forcing ----------------------------------------------------------------------------------
def test_teacher_forcing_inputs_are_the_upsampled_cumulative_sums_by_hand():
    torch.manual_seed(2)
    codebook = torch.randn(4, 2)                                   # 4 codes of 2 numbers
    embed = lambda t: codebook[t].permute(0, 3, 1, 2)              # noqa: E731  (B, s, s) -> (B, 2, s, s)
    maps = [torch.tensor([[[3]]]), torch.tensor([[[0, 1], [2, 3]]]), torch.randint(0, 4, (1, 4, 4))]
    got = next_scale_inputs(maps, embed, [1, 2, 4])
    assert got.shape == (1, 4 + 16, 2)
    # scale 1: the 1x1 code upsampled is that code everywhere, and so is its 2x2 average
    assert torch.allclose(got[0, :4], codebook[3].expand(4, 2), atol=1e-6)
    # scale 2: the two coarser scales upsampled (bicubic) to the 4x4 grid and summed
    up = lambda m: F.interpolate(embed(m).float(), size=(4, 4), mode="bicubic", align_corners=False)  # noqa: E731
    want = (up(maps[0]) + up(maps[1]))[0].permute(1, 2, 0).reshape(16, 2)
    assert torch.allclose(got[0, 4:], want, atol=1e-6)


def test_the_family_teacher_forces_with_its_parents_frozen_codebook(family):
    codebook = family.quantizer.vq.codebook
    torch.manual_seed(3)
    flat = torch.randint(0, family.num_codes, (2, family.networks["transformer"].length))
    maps = family.split(flat)
    want = next_scale_inputs(maps, lambda t: codebook[t].permute(0, 3, 1, 2), family.sizes)
    assert torch.allclose(family.teacher_inputs(maps), want, atol=1e-6)
    assert not codebook.requires_grad


# ---- sampling -----------------------------------------------------------------------------------------
def test_a_scale_through_the_kv_cache_gives_the_logits_of_a_full_pass():
    net = tiny_net()
    labels = torch.tensor([1, 3])                                   # 3 = the null class
    inputs = torch.randn(2, 13, 5)
    full = net(labels, inputs)
    caches = [[] for _ in net.blocks]
    parts = [net.step(0, labels, None, caches), net.step(1, labels, inputs[:, :4], caches),
             net.step(2, labels, inputs[:, 4:], caches)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"top_k": 3, "top_p": 0.8, "temperature": 0.7},
                                     {"guidance_scale": 3.0}])
def test_kv_cached_sampling_equals_uncached_for_the_same_seeds(family, options):
    net = family.nets(True)["transformer"]
    opts = family.sample_options(None, **options)
    labels = family._labels([0, 1, 2, -1], 4)
    gens = lambda: [torch.Generator().manual_seed(10 + i) for i in range(4)]  # noqa: E731
    cached = family.sample_maps(net, labels, opts, gens(), cached=True)
    full = family.sample_maps(net, labels, opts, gens(), cached=False)
    assert [m.shape[-1] for m in cached] == family.sizes
    for a, b in zip(cached, full):
        assert torch.equal(a, b)


def test_top_k_and_top_p_keep_the_codes_they_should():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
    kept = lambda out: (out > float("-inf")).int().tolist()  # noqa: E731
    assert kept(filter_logits(logits, 2, 1.0)) == [[1, 0, 1, 0]]
    assert kept(filter_logits(logits, 0, 0.8)) == [[1, 0, 1, 0]]      # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(logits, 0, 0.81)) == [[1, 0, 1, 1]]     # then 0.15 is needed too
    assert kept(filter_logits(logits, 0, 0.01)) == [[1, 0, 0, 0]]     # the most likely code always stays
    assert kept(filter_logits(logits, 1, 1.0)) == [[1, 0, 0, 0]]


def test_samples_decode_through_the_parent_from_the_drawn_maps(family):
    net = family.nets(True)["transformer"]
    opts = family.sample_options()
    labels = family._labels([4, 5], 2)
    maps = family.sample_maps(net, labels, opts, [torch.Generator().manual_seed(7 + i) for i in range(2)])
    want = family.parent.family.decode_tokens(maps)
    assert torch.allclose(family.sample(2, seed=7, labels=[4, 5]), want, atol=1e-6)



def test_a_seeds_latent_is_the_summed_code_map_of_the_maps_it_samples_and_walks_decode(family):
    """The Interpolation canvas's walk (parent_tokens.TokenizerLatents): seed s's latent is the
    parent's z_hat of the maps sample(seed=s) draws; a lerp between two seeds decodes through the
    parent; the capability comes from the family."""
    from engine.family.interfaces import capabilities_of
    net = family.nets(True)["transformer"]
    labels = family._labels([4, 5], 2)
    maps = family.sample_maps(net, labels, family.sample_options(), [torch.Generator().manual_seed(s) for s in (7, 8)])
    lat = family.seed_latents([7, 8], labels=[4, 5])
    assert torch.allclose(lat, family.quantizer.decode_tokens(maps), atol=1e-6)
    assert torch.equal(lat, family.seed_latents([7, 8], labels=[4, 5]))
    mid = family.decode_latents(0.5 * (lat[:1] + lat[1:]))
    assert mid.shape == (1, family.channels, family.resolution, family.resolution)
    assert capabilities_of(family).has("latent")

# ---- refused parents ----------------------------------------------------------------------------------
def test_a_wrong_family_parent_is_refused_in_one_line(tmp_path):
    vae = tiny_parent("vae")
    res = train(tiny_family_config("var").replace(model={"parent": str(vae)}), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed"
    assert str(vae.resolve()) in one_line(res.message)
    assert "a vae checkpoint cannot be the parent of a var model" in res.message


def test_a_vqvae_parent_without_the_multi_scale_quantizer_is_refused_in_one_line(tmp_path):
    vq = tiny_parent("vqvae")                      # the tokenizer's default quantizer, "vq"
    res = train(tiny_family_config("var").replace(model={"parent": str(vq)}), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed"
    assert str(vq.resolve()) in one_line(res.message)
    assert "quantizer = 'msrq'" in res.message and "quantizer = 'vq'" in res.message


# ---- data ---------------------------------------------------------------------------------------------
def test_training_reads_the_parents_token_maps_of_the_dataset(tmp_path):
    from engine.training.loop import Trainer
    trainer = Trainer(tiny_family_config("var", steps=1), tmp_path / "run", emit=lambda e: None)
    assert trainer.run().state == "finished"
    fam = trainer.family
    assert fam.encoded_from_cache is False and fam.tokens.shape[1] == sum(s * s for s in fam.sizes)
    x = trainer.data.images[:5].float().div(127.5).sub(1.0)
    assert torch.equal(fam.tokens[:5].cpu(), fam.encode_flat(x))    # row i: image i's maps, flat
