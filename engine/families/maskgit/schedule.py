"""MaskGIT's masking schedules and its iterative parallel decoding (Chang et al. 2022, section 3).

gamma(r) is the fraction of tokens still masked at ratio r in [0, 1]: training masks
ceil(gamma(r) * N) tokens at a uniform r (cosine schedule); decoding step t of K leaves
floor(gamma((t + 1) / K) * U) of the U unknown tokens masked, re-masking the least confident of the
tokens it just drew. Confidence is the drawn token's log-probability plus Gumbel noise whose
temperature anneals to 0 over the steps, so early steps choose less greedily."""
from __future__ import annotations

import math
from typing import Callable

import torch

from engine.families.maskgit.section import SCHEDULES
from engine.family.progress import check_cancel
from engine.family.token_prior import draw, filter_logits, gumbel, row_uniforms


def gamma(schedule: str, r: float) -> float:
    """Fraction of tokens masked at ratio r: 1 at r = 0, 0 at r = 1."""
    if schedule == "cosine":
        return math.cos(math.pi * r / 2)
    if schedule == "linear":
        return 1.0 - r
    if schedule == "square":
        return 1.0 - r * r
    raise ValueError(f"unknown masking schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def training_mask_counts(ratios: torch.Tensor, n: int) -> torch.Tensor:
    """ceil(cos(pi r / 2) * n) per ratio (at least 1: a row with nothing masked teaches nothing)."""
    return torch.ceil(torch.cos(math.pi * ratios.double() / 2) * n).long().clamp(1, n)


def training_mask(ratios: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """(B, n) bool: row i masks training_mask_counts(ratios)[i] positions chosen uniformly."""
    b = ratios.shape[0]
    counts = training_mask_counts(ratios, n).to(ratios.device)
    noise = torch.rand(b, n, generator=generator, device=ratios.device)
    rank = noise.argsort(1).argsort(1)     # a random permutation's rank of each position
    return rank < counts[:, None]


def decoding_steps(steps: int, unknown: int) -> int:
    """The network passes of decoding `unknown` tokens in `steps` steps: one at least per token."""
    return min(int(steps), int(unknown))


@torch.no_grad()
def decode(logits_fn: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor, known: torch.Tensor, *,
           steps: int, mask_id: int, generators: list[torch.Generator],
           confidence_generators: list[torch.Generator] | None = None, schedule: str = "cosine",
           temperature: float = 1.0, top_k: int = 0, remask_temperature: float = 4.5,
           progress: Callable[[int], None] | None = None, cancel=None) -> torch.Tensor:
    """Iterative parallel decoding: tokens (B, L) whose `known` (B, L) positions are given (never
    changed); the others are drawn in min(steps, most unknown in a row) passes of
    logits_fn(x (B, L) with mask_id where unknown) -> (B, L, V). Each row's random draws come from
    its own generators: `generators` for the token draws, `confidence_generators` (default: the
    same) for the confidence noise. progress(t) after pass t (1-based)."""
    b, length = tokens.shape
    dev = tokens.device
    x = torch.where(known, tokens, torch.full_like(tokens, mask_id))
    unknown = (~known).sum(1)                               # U per row
    total = decoding_steps(steps, int(unknown.max()) if b else 0)
    for t in range(total):
        check_cancel(cancel)
        logits = filter_logits(logits_fn(x), temperature, top_k)
        v = logits.shape[-1]
        sampled = draw(logits, row_uniforms(generators, (length, v), dev))
        still = x == mask_id
        sampled = torch.where(still, sampled, x)
        r = (t + 1) / total
        # how many stay masked after this pass: the schedule's share of U, one fewer than now at
        # most (every pass decodes a token), none after the last
        masked_now = still.sum(1)
        keep = torch.minimum(torch.floor(gamma(schedule, r) * unknown.double()).long(), masked_now - 1).clamp(min=0)
        if t == total - 1:
            keep = torch.zeros_like(keep)
        logp = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]
        noise = gumbel(row_uniforms(confidence_generators or generators, (length,), dev))
        conf = logp + remask_temperature * (1.0 - r) * noise
        conf = torch.where(still, conf, torch.full_like(conf, float("inf")))   # decoded tokens stay
        rank = conf.argsort(1).argsort(1)
        x = torch.where(rank < keep[:, None], torch.full_like(sampled, mask_id), sampled)
        if progress is not None:
            progress(t + 1)
    return x
