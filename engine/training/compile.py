"""The training.compile switch: the family's networks run through torch.compile for the training
step, or eagerly with one line saying why where that cannot be.

Each network is compiled in place (nn.Module.compile: its __call__ is swapped, the module is the
same object), so its state_dict keys, the optimizers' parameters, the EMA copies and checkpoints
are exactly those of an uncompiled run: no `_orig_mod.` prefixes, and a checkpoint of either kind
loads into the other. Compiling is lazy: it happens in the first step, whose time the loop
reports as the compile time, apart from the steady-state images/s."""
from __future__ import annotations

import os
import shutil

import torch
import torch.nn as nn

CXX_COMPILERS = ("g++", "c++", "clang++", "cl")


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot work here (None when it can): no TorchDynamo for this Python,
    Apple MPS, or no C++ compiler for the CPU code Inductor writes."""
    dynamo = getattr(torch, "_dynamo", None)
    if dynamo is not None and hasattr(dynamo, "is_dynamo_supported") and not dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    if device.type == "mps":
        return "torch.compile's MPS backend is not reliable enough to train with"
    if device.type == "cpu":
        cxx = os.environ.get("CXX")
        if not (cxx and shutil.which(cxx)) and not any(shutil.which(c) for c in CXX_COMPILERS):
            return "no C++ compiler found (Inductor needs one for CPU code; install g++ or clang, or set CXX)"
    return None


def compile_networks(networks: nn.ModuleDict) -> None:
    """Compile every network in place (its forward becomes compiled at its first call)."""
    for net in networks.values():
        net.compile()


def uncompile_networks(networks: nn.ModuleDict) -> None:
    """Back to eager: undo nn.Module.compile (which only sets this attribute)."""
    for net in networks.values():
        net._compiled_call_impl = None


def first_line(error: BaseException) -> str:
    """An exception as one short line (Inductor's errors run to pages)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
