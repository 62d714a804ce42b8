"""Inpainting with a diffusion model that was trained unconditionally: the known part of the image
is imposed on the sampling chain, at the noise level of each step.

- blend: after every solver step the known region is replaced by the original noised to the new
  step's level, with one noise drawn up front (as diffusers' inpaint pipeline does for ordinary
  models). Cheap; the generated part may not fit its surroundings perfectly.
- repaint (Lugmayr et al. 2022): fresh noise for the known region every step, and every `jump`
  steps the chain is re-noised `jump` steps back and denoised again, `resample` times in all, so the
  generated part can harmonise with the known one. Costs about `resample` times the steps.

Both take any registered solver (engine/diffusion/solvers.py) over any level type
(engine/diffusion/levels.py) and a soft mask (1 = regenerate; values between blend the two).
Positions index the solver's schedule of levels: 0 is its noisiest level, n (the number of
steps) the clean image.
"""
from __future__ import annotations

from typing import Any

import torch

from engine.diffusion.denoise import as_denoiser
from engine.diffusion.solvers import Solver
from engine.family.noise import RowGenerators, randn_like
from engine.family.progress import Cancel, Progress, check_cancel

DIFFUSION_METHODS = ("repaint", "blend")



def repaint_schedule(n: int, jump: int, resample: int) -> list[int]:
    """RePaint's walk over a schedule of n steps, as the positions visited: from 0 (noisiest) to n
    (clean), one step down at a time, except that on reaching positions n-1-k·jump (k = 0, 1, …,
    the last jump at least `jump` steps from the start) the walk climbs `jump` steps back up,
    `resample` - 1 times each. resample 1 is plain sampling. This is the reference code's
    get_schedule_jump with its time t = n - 1 - position."""
    if n < 1 or jump < 1 or resample < 1:
        raise ValueError(f"RePaint needs steps, jump and resample >= 1 (got {n}, {jump}, {resample})")
    left = {t: resample - 1 for t in range(0, n - jump, jump)}   # in the reference's time t
    t, times = n, []
    while t >= 1:
        t -= 1
        times.append(t)
        if left.get(t, 0) > 0:
            left[t] -= 1
            for _ in range(jump):
                t += 1
                times.append(t)
    times.append(-1)
    return [n - 1 - t for t in times]


def paper_jump(steps: int) -> int:
    """RePaint's jump length of 10 in a chain of 250 steps, scaled to a chain of `steps` (at least 1)."""
    return max(1, round(10 * steps / 250))


def start_position(n: int, strength: float) -> int:
    """Where a chain of n steps starts for a strength in (0, 1]: 1 starts from the noisiest step,
    0.5 halfway (diffusers' img2img convention: int(n * strength) steps are run)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength = {strength} must be in (0, 1]")
    return n - max(1, min(int(n * strength), n))


@torch.no_grad()
def inpaint_diffusion(denoiser: Any, solver: Solver, known: torch.Tensor,
                      mask: torch.Tensor, x_init: torch.Tensor, steps: int, *, method: str = "repaint",
                      jump: int = 10, resample: int = 10, strength: float = 1.0,
                      noise_init: torch.Tensor | None = None, noise_start: torch.Tensor | None = None,
                      generator: torch.Generator | RowGenerators | None = None,
                      merge_generator: torch.Generator | RowGenerators | None = None,
                      progress: Progress | None = None, cancel: Cancel | None = None) -> torch.Tensor:
    """Fill the masked part of `known` (jump 0: paper_jump of the steps). `denoiser`: a Denoiser
    (engine/diffusion/denoise.py; or see its as_denoiser).

    known: (B, C, H, W) the images in [-1, 1]; mask: (B or 1, 1, H, W) in [0, 1], 1 = regenerate;
    x_init: what the chain starts from, noised to the starting step (the original, or the original
    with its hole pre-filled); noise_init: the noise for that (B, C, H, W; drawn from
    merge_generator if None); noise_start: if given, the regenerated part starts from this noise
    alone (the "noise" start: like strength 1 there, whatever the strength). generator drives the
    solver's own noise; merge_generator the known region's and RePaint's re-noising, so a
    deterministic solver with an all-ones mask retraces plain sampling exactly.
    Returns (B, C, H, W): the last step merges the known region exactly (weight 1 - mask).
    """
    if method not in DIFFUSION_METHODS:
        raise ValueError(f"unknown diffusion inpainting method {method!r}; choose one of {', '.join(DIFFUSION_METHODS)}")
    den = as_denoiser(denoiser)
    dev = known.device
    levels = solver.levels(steps, dev)   # n noisy levels, then the clean one at position n
    n = len(levels) - 1
    s0 = start_position(n, strength)
    walk = repaint_schedule(n - s0, jump or paper_jump(n), resample) if method == "repaint" else list(range(n - s0 + 1))
    walk = [p + s0 for p in walk]
    mask = mask.to(dev, torch.float32)

    def randn():
        return randn_like(known.float(), merge_generator)

    fixed = noise_init.to(dev) if noise_init is not None else randn()
    x = levels[s0].noised(x_init.to(dev).float(), fixed)
    if noise_start is not None:
        x = mask * (solver.noise_levels.prior_std * noise_start.to(dev).float()) + (1 - mask) * x
    total = len(walk) - 1
    for i, (p, q) in enumerate(zip(walk[:-1], walk[1:])):
        check_cancel(cancel)
        if q == p + 1:   # one denoising step, then the known region at the new level
            x_gen, _ = solver.step(den, levels[p], x, generator=generator)
            known_q = known if q >= n else levels[q].noised(known, fixed if method == "blend" else randn())
            x = mask * x_gen + (1 - mask) * known_q
        else:            # RePaint's jump back: forward diffusion from position p up to q < p
            a, var = levels[q].transition(levels[p])
            x = a * x + var.sqrt() * randn()
        if progress is not None:
            progress(i + 1, total)
    return x
