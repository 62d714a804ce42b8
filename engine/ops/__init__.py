"""The operations canvases and the CLI run on a loaded model, by name. Each is a module with a
Request and a Result dataclass and run(session, request, progress, cancel) -> Result (see
engine/ops/base.py); the worker dispatches requests through OPS and the CLI subcommands build the
same requests. Adding an operation: one module and one line here.

A newer request of an op supersedes the older one in the worker (a slider drag never queues stale
renders), unless the op is `superseded=False`: an export writes a file someone asked for, so only
its own cancel stops it; interpolate-export is the interpolate walk under that rule, and each
projection (project) is of an image someone dropped."""
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
    superseded: bool = True    # False: a newer request of the op queues behind it instead of cancelling it


OPS: dict[str, Op] = {
    "sample": Op(sample.SampleRequest, sample.run, "sample"),
    # each dropped image is projected once: a second drop must not cancel the first's projection
    "project": Op(project.ProjectRequest, project.run, "project", superseded=False),
    "mix": Op(style_mix.StyleMixRequest, style_mix.run, "mix"),
    "interpolate": Op(interpolate.InterpolateRequest, interpolate.run, "interp"),
    "interpolate-export": Op(interpolate.ExportRequest, interpolate.run, "interp", superseded=False),
    "evaluate": Op(evaluate.EvaluateRequest, evaluate.run, ""),
    "inpaint": Op(inpaint.InpaintRequest, inpaint.run, "inpaint", needs_model=False),
}
