"""The operations canvases and the CLI run on a loaded model, by name. Each is a module with a
Request and a Result dataclass and run(session, request, progress, cancel) -> Result (see
engine/ops/base.py); the worker dispatches requests through OPS and the CLI subcommands build the
same requests. Adding an operation: one module and one line here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.ops import evaluate, inpaint, interpolate, project, sample, style_mix


@dataclass(frozen=True)
class Op:
    request: type
    run: Callable
    cache_name: str     # the PNG (or folder) a worker writes when the request names no output
    needs_model: bool = True   # False: runs with no checkpoint loaded (the session may be None)


OPS: dict[str, Op] = {
    "sample": Op(sample.SampleRequest, sample.run, "sample"),
    "project": Op(project.ProjectRequest, project.run, "project"),
    "mix": Op(style_mix.StyleMixRequest, style_mix.run, "mix"),
    "interpolate": Op(interpolate.InterpolateRequest, interpolate.run, "interp"),
    "evaluate": Op(evaluate.EvaluateRequest, evaluate.run, ""),
    "inpaint": Op(inpaint.InpaintRequest, inpaint.run, "inpaint", needs_model=False),
}
