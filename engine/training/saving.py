"""What a checkpoint holds and the checks before one is written: every rank's weights agree (a
distributed run), every tensor is finite, and every rank's random state is gathered."""
from __future__ import annotations

from typing import Callable

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.core import protocol
from engine.training import checkpoint as ck
from engine.training.errors import TrainingFailed


def ranks_agree(family, dist, device, step: int, emit: Callable[[dict], None]) -> None:
    """Every rank should hold the same weights, averages and buffers (same start, same averaged
    gradients, the same updates of state kept from the batch such as a VQ codebook's usage steps).
    Checked at each checkpoint with two sums per network over its float tensors and its integer
    buffers (one small all-gather); a difference is reported and healed from rank 0, whose state
    the checkpoint keeps."""
    if not dist.enabled:
        return
    parts = {f"weights of {n}": m for n, m in family.networks.items()}
    parts.update({f"EMA of {n}": m for n, m in (family.ema or {}).items()})
    sums = {}
    for label, m in parts.items():
        total = torch.zeros(2, dtype=torch.float64, device=device)
        for t in (*m.parameters(), *m.buffers()):
            if not t.is_complex():   # floats, and integer buffers too (a codebook's usage steps, counters)
                t64 = t.detach().double()  # one tensor at a time: no second copy of the model
                total += torch.stack([t64.sum(), (t64 * t64).sum()])
        sums[label] = total
    differ = dist.mismatched(sums)
    if differ:
        emit(protocol.event("warning", message=f"the processes' {', '.join(differ)} differed at step {step}; "
                                               f"set to rank 0's, which the checkpoint keeps"))
        dist.broadcast_state(family.networks, family.ema)


def rng_tensors(generator, device, dist, alone: bool = False) -> dict[str, torch.Tensor]:
    """Every rank's random states (rank 0's as in a single-process run, rank r's under
    rng.rank{r}.*), gathered to all ranks as safetensors bytes. `alone`: this rank's only."""
    mine = ck.rng_tensors(generator, device, rank=dist.rank)
    if not dist.enabled or alone:
        return mine
    out: dict[str, torch.Tensor] = {}
    for blob in dist.all_gather_bytes(st_save({k: v.contiguous() for k, v in mine.items()})):
        out.update(st_load(blob))
    return out


def state_tensors(family, optimizers: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """The checkpoint's tensors (net.*, ema.*, optim.*) and the optimizers' JSON part."""
    tensors = {f"net.{k}": v for k, v in family.networks.state_dict().items()}
    if family.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in family.ema.state_dict().items()})
    opt_meta = {}
    for name, opt in optimizers.items():
        ts, js = ck.optimizer_to_flat(name, opt)
        tensors.update(ts)
        opt_meta[name] = js
    return tensors, opt_meta


def check_state_finite(tensors: dict[str, torch.Tensor], device, step: int) -> None:
    """A checkpoint counts as good only if all its weights, averages and optimizer state are
    finite: a NaN can reach Adam's state or the EMA while the logged losses still look fine.
    One isfinite per tensor and a single sync; run only when saving."""
    groups: dict[str, list[torch.Tensor]] = {}
    for key, v in tensors.items():
        if v.is_floating_point():
            groups.setdefault(_state_label(key), []).append(v)
    if not groups:
        return
    flags = [torch.stack([torch.isfinite(v).all() for v in vs]).all().to(device) for vs in groups.values()]
    bad = [label for label, ok in zip(groups, torch.stack(flags).tolist()) if not ok]
    if bad:
        raise TrainingFailed(f"the {' and the '.join(bad)} {'has' if len(bad) == 1 else 'have'} NaN/Inf at step "
                             f"{step}, so no checkpoint was written; training stopped. Try a lower training.lr or "
                             f"training.grad_clip.")


def _state_label(key: str) -> str:
    """What a checkpoint tensor belongs to, in words: net.G.* -> "weights of G"."""
    kind, _, rest = key.partition(".")
    owner = rest.split(".", 1)[0]
    return {"net": f"weights of {owner}", "ema": f"EMA of {owner}",
            "optim": f"optimizer state of {owner}",
            "phema": "post-hoc EMA profiles"}.get(kind, key)
