"""MaskGIT: the cosine training mask, iterative decoding (every token decoded in K steps, known
tokens never changed, the schedule's counts), inpainting through the token mask, and the parent
checks (a wrong-family or multi-scale tokenizer is one line)."""
from __future__ import annotations

import math

import pytest
import torch

from engine.families.maskgit.schedule import decode, gamma, training_mask, training_mask_counts
from engine.training import checkpoint as ck
from tests.conftest import TINY_RES
from tests.engine.token_priors import assert_refused_in_one_line, msrq_tokenizer, run_on_parent


@pytest.fixture(scope="module")
def maskgit(tiny_runs):
    fam, _ = ck.family_from_checkpoint(tiny_runs["maskgit"].checkpoint, "cpu")
    return fam


@pytest.mark.parametrize("n", [16, 64, 256])
def test_training_masks_ceil_cos_pi_r_over_2_times_n_tokens_at_ratio_r(n):
    ratios = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 0.999])
    mask = training_mask(ratios, n, torch.Generator().manual_seed(0))
    expected = [max(1, math.ceil(math.cos(math.pi * r / 2) * n)) for r in ratios.tolist()]
    assert mask.sum(1).tolist() == expected == training_mask_counts(ratios, n).tolist()
    assert mask[0].all()   # r = 0 masks everything
    # which positions are masked is random: two rows at the same ratio differ
    two = training_mask(torch.full((2,), 0.5), n, torch.Generator().manual_seed(1))
    assert not torch.equal(two[0], two[1])


def test_schedules_start_fully_masked_and_end_empty():
    for s in ("cosine", "linear", "square"):
        assert gamma(s, 0.0) == 1.0 and abs(gamma(s, 1.0)) < 1e-12
        assert all(gamma(s, a / 10) >= gamma(s, (a + 1) / 10) for a in range(10))


def random_logits(vocab: int, calls: list):
    """A stand-in network: fixed random logits per input, recording the inputs it was given."""
    def fn(x):
        calls.append(x.clone())
        g = torch.Generator().manual_seed(int(x.sum()))
        return torch.randn(*x.shape, vocab, generator=g)
    return fn


@pytest.mark.parametrize("steps", [1, 4, 8, 16, 40])
@pytest.mark.parametrize("schedule", ["cosine", "linear", "square"])
def test_decoding_in_k_steps_unmasks_every_token_and_never_changes_a_known_one(steps, schedule):
    b, length, vocab, mask_id = 3, 16, 10, 10
    tokens = torch.randint(0, vocab, (b, length), generator=torch.Generator().manual_seed(3))
    known = torch.zeros(b, length, dtype=torch.bool)
    known[1, :5] = True          # row 1 knows 5 tokens, row 2 all but one
    known[2, 1:] = True
    calls: list = []
    gens = [torch.Generator().manual_seed(s) for s in range(b)]
    out = decode(random_logits(vocab, calls), tokens, known, steps=steps, mask_id=mask_id, generators=gens,
                 schedule=schedule)
    assert len(calls) == min(steps, length)            # K passes (one token per pass at least)
    assert (out != mask_id).all() and out.max() < vocab
    assert torch.equal(out[known], tokens[known])
    for x in calls:                                      # and in every pass's input too
        assert torch.equal(x[known], tokens[known])
    # masked counts only fall, and row 0 (nothing known) follows the schedule
    masked = torch.stack([(x == mask_id).sum(1) for x in calls] + [(out == mask_id).sum(1)])
    assert (masked[1:] <= masked[:-1]).all()
    k = min(steps, length)
    for t in range(k - 1):
        want = min(math.floor(gamma(schedule, (t + 1) / k) * length), int(masked[t, 0]) - 1)
        assert int(masked[t + 1, 0]) == max(want, 0), (t, masked[:, 0].tolist())


def test_decoding_is_the_same_for_the_same_generators_and_rows_are_independent():
    tokens = torch.zeros(2, 16, dtype=torch.long)
    known = torch.zeros_like(tokens, dtype=torch.bool)
    run = lambda seeds: decode(random_logits(8, []), tokens[:len(seeds)], known[:len(seeds)], steps=4,  # noqa: E731
                               mask_id=8, generators=[torch.Generator().manual_seed(s) for s in seeds])
    assert torch.equal(run([5, 6]), run([5, 6]))
    assert not torch.equal(run([5, 6])[0], run([7, 6])[0])


def test_a_pixel_mask_marks_the_tokens_any_of_whose_pixels_it_covers(maskgit):
    h, w = maskgit.grid
    cell = TINY_RES // h
    mask = torch.zeros(1, 1, TINY_RES, TINY_RES)
    mask[..., cell + 1, 2 * cell] = 1                   # one pixel: the token at (1, 2)
    unknown = maskgit.token_mask(mask, 2)
    assert unknown.shape == (2, h * w) and unknown.sum(1).tolist() == [1, 1]
    assert unknown[0].view(h, w)[1, 2]


def test_inpainting_keeps_unmasked_pixels_and_the_known_tokens(maskgit):
    x = maskgit.sample(2, seed=1)
    mask = torch.zeros(2, 1, TINY_RES, TINY_RES)
    mask[0, :, : TINY_RES // 2] = 1
    mask[1, :, :, -2:] = 1
    out = maskgit.inpaint(x, mask, seeds=[0, 1])
    keep = (mask == 0).expand_as(x)
    assert out.shape == x.shape and torch.equal(out[keep], x[keep])
    assert torch.equal(out, maskgit.inpaint(x, mask, seeds=[0, 1]))
    # the tokens outside the mask are the image's own
    tokens = maskgit.encode_to_tokens(x)
    known = ~maskgit.token_mask(mask, 2)
    filled = maskgit.decode_masked(tokens, known, [0, 1], None, maskgit.sample_options(), use_ema=True)
    assert torch.equal(filled[known], tokens[known]) and (filled != maskgit.mask_id).all()


def test_network_evaluations_are_the_steps_doubled_under_guidance(maskgit):
    assert maskgit.network_evaluations({"steps": 4, "guidance_scale": 1.0}) == 4
    assert maskgit.network_evaluations({"steps": 4, "guidance_scale": 3.0}) == (8 if maskgit.num_classes else 4)
    assert maskgit.network_evaluations({"steps": 200, "guidance_scale": 1.0}) == maskgit.length


def test_a_wrong_family_parent_is_refused_in_one_line(tmp_path, tiny_runs):
    res = run_on_parent("maskgit", tiny_runs["ddpm"].checkpoint, tmp_path)
    assert_refused_in_one_line(res, "a ddpm checkpoint cannot be the parent of a maskgit model", "vqvae")


def test_a_multi_scale_tokenizer_is_refused_in_one_line(tmp_path):
    res = run_on_parent("maskgit", msrq_tokenizer(tmp_path), tmp_path)
    assert_refused_in_one_line(res, "msrq", "vq or fsq")
