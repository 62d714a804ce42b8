"""Device and precision selection."""
from __future__ import annotations

import torch

from engine.core.config import ConfigError


def select_device(pref: str = "auto") -> torch.device:
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if pref == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if pref == "cuda" and not cuda:
        raise ConfigError("training.device = 'cuda' but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'")
    if pref == "mps" and not mps:
        raise ConfigError("training.device = 'mps' but Apple MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(pref)


def resolve_precision(pref: str, device: torch.device) -> tuple[str, torch.dtype | None, bool]:
    """(name, autocast dtype or None, needs a GradScaler)."""
    if pref == "auto":
        if device.type == "cuda":
            pref = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            pref = "fp32"
    if pref == "fp32":
        return "fp32", None, False
    if pref == "bf16":
        return "bf16", torch.bfloat16, False
    if device.type != "cuda":
        raise ConfigError(f"training.precision = 'fp16' needs a CUDA GPU (device is {device.type}); use 'auto' or 'bf16'")
    return "fp16", torch.float16, True


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
