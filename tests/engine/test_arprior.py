"""The AR prior: causal (the logits at position i do not depend on tokens i and after), KV-cached
sampling draws exactly what the uncached path draws for the same seeds and runs each token through
the network once, and the parent checks (a wrong-family or multi-scale tokenizer is one line)."""
from __future__ import annotations

import pytest
import torch

from engine.training import checkpoint as ck
from tests.engine.token_priors import assert_refused_in_one_line, msrq_tokenizer, run_on_parent


@pytest.fixture(scope="module")
def arprior(tiny_runs):
    fam, _ = ck.family_from_checkpoint(tiny_runs["arprior"].checkpoint, "cpu")
    return fam


def test_logits_at_position_i_do_not_depend_on_tokens_from_i_on(arprior):
    net = arprior.nets(True)["transformer"]
    g = torch.Generator().manual_seed(0)
    n, length = 3, arprior.length
    tokens = torch.randint(0, arprior.num_codes, (n, length), generator=g)
    labels = arprior.label_ids([0, 1, None], n)
    with torch.no_grad():
        base = arprior.logits(net, tokens, labels)
        assert base.shape == (n, length, arprior.num_codes)
        for i in range(length):
            changed = tokens.clone()
            changed[:, i:] = (changed[:, i:] + 1 + torch.randint(0, arprior.num_codes - 1, changed[:, i:].shape,
                                                                    generator=g)) % arprior.num_codes
            out = arprior.logits(net, changed, labels)
            assert torch.allclose(out[:, :i + 1], base[:, :i + 1], atol=1e-5), i
            if i + 1 < length:          # and the next position does hear the change
                assert not torch.allclose(out[:, i + 1], base[:, i + 1], atol=1e-5), i


@pytest.mark.parametrize("options", [{}, {"temperature": 0.5}, {"top_k": 3}, {"top_p": 0.6},
                                     {"temperature": 1.7, "top_k": 5, "top_p": 0.9},
                                     {"guidance_scale": 2.0}, {"guidance_scale": 3.0, "top_k": 5}])
def test_kv_cached_sampling_draws_the_tokens_of_uncached_sampling(arprior, options):
    opts = arprior.sample_options(options)
    seeds, labels = [0, 1, 2, 3], [0, 1, -1, 2]
    cached = arprior.sample_tokens(seeds, labels, opts, use_ema=True)
    plain = arprior.sample_tokens(seeds, labels, opts, use_ema=True, cached=False)
    assert cached.shape == (4, arprior.length) and torch.equal(cached, plain)
    assert not torch.equal(cached, arprior.sample_tokens([9, 1, 2, 3], labels, opts, use_ema=True))


def test_top_k_one_is_greedy_whatever_the_seed(arprior):
    opts = arprior.sample_options({"top_k": 1})
    assert torch.equal(arprior.sample_tokens([0], [4], opts, use_ema=True),
                       arprior.sample_tokens([77], [4], opts, use_ema=True))


def test_cached_sampling_runs_each_token_through_the_network_once(arprior):
    """Linear, not quadratic: the token embedding sees L - 1 tokens per image with the cache,
    0 + 1 + ... + (L - 1) without."""
    net = arprior.nets(True)["transformer"]
    seen = []
    hook = net.embed.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        opts = arprior.sample_options()
        arprior.sample_tokens([0], None, opts, use_ema=True)
        cached, seen[:] = sum(seen), []
        arprior.sample_tokens([0], None, opts, use_ema=True, cached=False)
        plain = sum(seen)
    finally:
        hook.remove()
    length = arprior.length
    assert cached == length - 1 and plain == length * (length - 1) // 2
    assert arprior.network_evaluations() == length


def test_a_wrong_family_parent_is_refused_in_one_line(tmp_path, tiny_runs):
    res = run_on_parent("arprior", tiny_runs["ddpm"].checkpoint, tmp_path)
    assert_refused_in_one_line(res, "a ddpm checkpoint cannot be the parent of a arprior model", "vqvae")


def test_a_multi_scale_tokenizer_is_refused_in_one_line(tmp_path):
    res = run_on_parent("arprior", msrq_tokenizer(tmp_path), tmp_path)
    assert_refused_in_one_line(res, "msrq", "vq or fsq")


def test_a_seeds_latent_decodes_to_its_sample_and_walks_decode_through_the_parent(arprior):
    """The Interpolation canvas's walk (parent_tokens.TokenizerLatents): seed s's latent is the code
    vectors of the tokens sample(seed=s) draws, so it decodes (snapped to the same codes) to that
    sample; a lerp between two seeds decodes through the parent; the capability comes from the family."""
    from engine.family.interfaces import capabilities_of
    lat = arprior.seed_latents([3, 4], labels=[1, 2])
    assert lat.shape[0] == 2 and torch.equal(lat, arprior.seed_latents([3, 4], labels=[1, 2]))
    assert torch.allclose(arprior.decode_latents(lat), arprior.sample(2, seed=3, labels=[1, 2]), atol=1e-5)
    mid = arprior.decode_latents(0.5 * (lat[:1] + lat[1:]))
    assert mid.shape == (1, arprior.channels, arprior.resolution, arprior.resolution)
    assert capabilities_of(arprior).has("latent")


def test_guidance_mixes_the_class_and_no_class_logits_and_leaves_no_class_rows_alone(arprior):
    """Scale s: the first token is drawn from u + s (c - u) of one pass over [class; no class]; a row
    asking for no class draws what it draws unguided; scale 1 is the unguided path; twice the passes."""
    assert arprior.guidance
    net = arprior.nets(True)["transformer"]
    guided = arprior.sample_options({"guidance_scale": 3.0, "top_k": 1})   # greedy: the argmax is the check
    tokens = arprior.sample_tokens([0, 1], [2, -1], guided, use_ema=True)
    with torch.no_grad():
        first = arprior.first_tokens(arprior.label_ids([2, -1], 2), 2)
        out = net(torch.zeros(2, 0, dtype=torch.long), first)[:, -1]
    c, u = out[0], out[1]
    assert tokens[0, 0] == torch.argmax(u + 3.0 * (c - u))
    plain = arprior.sample_options({"top_k": 1})
    assert torch.equal(tokens[1], arprior.sample_tokens([1], [-1], plain, use_ema=True)[0])
    one = arprior.sample_options({"guidance_scale": 1.0})
    assert torch.equal(arprior.sample_tokens([5, 6], [3, 4], one, use_ema=True),
                       arprior.sample_tokens([5, 6], [3, 4], arprior.sample_options(), use_ema=True))
    assert arprior.network_evaluations({"guidance_scale": 2.0}) == 2 * arprior.network_evaluations()
