"""Exponential moving average of weights."""
from __future__ import annotations

import torch
import torch.nn as nn


def ema_decay_at(step: int, decay: float) -> float:
    """Warm-up: average over the steps seen so far early on, so early samples are not just init."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    e_params = list(ema.parameters())
    m_params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e_params, m_params, 1.0 - decay)  # e += (1 - decay) * (m - e), fused
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)
