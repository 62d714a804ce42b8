"""Reflow (Liu et al. 2022): the (noise, sample) pairs a flow_matching parent's ODE makes, drawn
once before the child trains and cached in the child's run folder (engine/family/parent.py's
cached_encoding, keyed by the parent's hash and the options, so a resumed run reads them back), and
the child's start from the parent's weights.

Pair i's noise is the parent's initial noise for seed PAIR_SEED + i (CPU-drawn, the same on every
device); a conditional parent draws it for class i mod K (kept with the pair) at guidance 1: the
pairs then follow the parent's p(x | class), and, classes mixed, its p(x), which is what the child's
label dropout trains its unconditional field on."""
from __future__ import annotations

from typing import Callable

import torch

from engine.core.schema import ConfigError
from engine.family.parent import Parent, cached_encoding, encoding_key

PAIR_SEED = 7_000_000   # away from the seeds sample grids and evaluation use
PAIR_BATCH = 256
DETERMINISTIC_FALLBACK = "euler"   # a parent sampling with a stochastic solver reflows with its ODE


def pair_sampler(parent_family, steps: int) -> tuple[str, object]:
    """The parent's solver (its run's sampler, or Euler when that one draws fresh noise: reflow needs
    a deterministic coupling) and the sample options the pairs are drawn with."""
    opts = parent_family.sample_options(steps=steps, guidance_scale=1.0)
    sampler = opts.sampler if not parent_family.solver(opts).stochastic else DETERMINISTIC_FALLBACK
    return sampler, parent_family.sample_options(opts, sampler=sampler)


@torch.no_grad()
def draw_pairs(parent_family, n: int, steps: int, say: Callable[[str], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """n pairs: "noise" (n, C, H, W) standard normal, "sample" (n, C, H, W) in [-1, 1] the parent's
    ODE end from it, "labels" (n,) int64 (-1 for an unconditional parent)."""
    sampler, opts = pair_sampler(parent_family, steps)
    noise, samples = [], []
    labels = parent_family.labels_for(n)
    for i in range(0, n, PAIR_BATCH):
        k = min(PAIR_BATCH, n - i)
        z = parent_family.initial_noise(list(range(PAIR_SEED + i, PAIR_SEED + i + k)))
        noise.append(z)
        samples.append(parent_family.generate(k, seed=PAIR_SEED + i, labels=labels[i:i + k] if labels else None,
                                              use_ema=True, options=opts, progress=None, cancel=cancel))
        if say is not None:
            say(f"reflow pairs: {i + k}/{n} drawn by the parent ({sampler}, {steps} steps)")
    lab = torch.tensor(labels if labels else [-1] * n, dtype=torch.int64)
    return {"noise": torch.cat(noise), "sample": torch.cat(samples), "labels": lab}


def pairs_key(parent: Parent, data_config: dict, n: int, steps: int, sampler: str) -> str:
    return encoding_key(parent, data_config, f"reflow-pairs:n={n}:steps={steps}:sampler={sampler}:seed={PAIR_SEED}")


def cached_pairs(parent: Parent, cache_dir, data_config: dict, n: int, steps: int,
                 say: Callable[[str], None]) -> tuple[dict[str, torch.Tensor], bool, str]:
    """The pairs, drawn once into cache_dir/<key>.safetensors; (pairs, read_from_cache, key)."""
    sampler, _ = pair_sampler(parent.family, steps)
    key = pairs_key(parent, data_config, n, steps, sampler)
    pairs, cached = cached_encoding(cache_dir, key, lambda: draw_pairs(parent.family, n, steps, say))
    return pairs, cached, key


def start_from_parent(child_nets: torch.nn.ModuleDict, parent: Parent) -> None:
    """The child's networks from the parent's averaged weights (the ones that drew the pairs)."""
    source = parent.family.nets(True)
    try:
        child_nets.load_state_dict(source.state_dict())
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "shapes differ"
        raise ConfigError(f"{parent.path}: the parent's network differs from this run's [model] ({first[:160]}); "
                          f"use the parent's model fields, or model.reflow_init = \"scratch\"") from None
