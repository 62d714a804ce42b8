"""The training.compile switch: the family's networks run through torch.compile for the training
step, or eagerly with one line saying why where that cannot be.

Each network is compiled in place (nn.Module.compile: its __call__ is swapped, the module is the
same object), so its state_dict keys, the optimizers' parameters, the EMA copies and checkpoints
are exactly those of an uncompiled run: no `_orig_mod.` prefixes, and a checkpoint of either kind
loads into the other. Compiling is lazy: it happens in the first step, whose time the loop
reports as the compile time, apart from the steady-state images/s (compiled_first_step)."""
from __future__ import annotations

import os
import shutil
from typing import Callable

import torch
import torch.nn as nn

from engine.core import protocol

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


def start_compiling(networks: nn.ModuleDict, device: torch.device, emit: Callable[[dict], None]) -> bool:
    """training.compile: compile the networks in place (it happens in the first step), or say in
    one line why not and train eagerly. Whether the first step compiles."""
    why = compile_unavailable(device)
    if why:
        emit(protocol.event("warning", message=f"training.compile: {why}; training without compiling"))
        return False
    compile_networks(networks)
    return True


def compiled_first_step(take_step: Callable[[], dict], *, networks: nn.ModuleDict, optimizers: dict, order,
                        generator: torch.Generator, device: torch.device, clock: Callable[[], float],
                        emit: Callable[[dict], None]) -> tuple[dict, float | None]:
    """The first step of a compiled run (take_step), where compiling happens, and its time in
    seconds: reported as the compile time (the loop restarts the images/s window after it). If
    compiling fails, the networks go back to eager and the step is taken again from the same batch
    (order: the BatchOrder) and random state; then the time is None."""
    batches, rng, cpu_rng = order.state(), generator.get_state(), torch.get_rng_state()
    t0 = clock()
    try:
        losses = take_step()
    except Exception as e:
        uncompile_networks(networks)
        order.load_state(batches)
        generator.set_state(rng)
        torch.set_rng_state(cpu_rng)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        emit(protocol.event("warning", message=f"training.compile: compiling failed ({first_line(e)}); "
                                               f"training without compiling"))
        return take_step(), None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = clock() - t0
    emit(protocol.event("info", message=f"training.compile: compiled in {seconds:.1f} s (the first step; "
                                         f"images/s is measured from the next one)", compile_s=round(seconds, 2)))
    return losses, seconds
