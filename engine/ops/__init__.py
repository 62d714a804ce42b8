"""The operations canvases and the CLI run on a loaded model, by name. Each is a module with a
Request and a Result dataclass and run(session, request, progress, cancel) -> Result (see
engine/ops/base.py). OPS names them as "module:Attr" strings, imported on first use (like the
families and solvers), so the worker's start or `genlab-engine presets` imports no operation it
does not run. The worker dispatches requests through OPS; an op with a `command` is also a
genlab-engine subcommand, its flags read from its Request's fields (engine/core/flags.py).
Adding an operation: one module and one `OPS.register` line here.

A newer request of an op supersedes the older one in the worker (a slider drag never queues stale
renders), unless the op is `superseded=False`: an export writes a file someone asked for, so only
its own cancel stops it; interpolate-export is the interpolate walk under that rule, and each
projection (project) is of an image someone dropped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from engine.core.registry import Registry, load_object


@dataclass(frozen=True)
class Op:
    request_ref: str | type             # "engine.ops.sample:SampleRequest" (or the class itself)
    run_ref: str | Callable = ""        # "": `run` in the request's module
    cache_name: str = ""                # the worker's name for its outputs in the cache folder; "": the op's name
    needs_model: bool = True            # False: runs with no checkpoint loaded (the session may be None)
    superseded: bool = True             # False: a newer request of the op queues behind it instead of cancelling it
    command: str = ""                   # the genlab-engine subcommand's help; "": not a command of its own
    checkpoint_help: str | None = None  # --checkpoint's help on that command
    progress_lines: bool = True         # the command shows progress on stderr (a sample grid is quick: quiet)

    def __post_init__(self):
        if not self.run_ref and not isinstance(self.request_ref, str):
            raise TypeError("an Op given its Request class needs its run function too (run_ref)")

    @property
    def request(self) -> type:
        return _resolve(self.request_ref)

    @property
    def run(self) -> Callable:
        if self.run_ref:
            return _resolve(self.run_ref)
        return load_object(f"{self.request_ref.partition(':')[0]}:run")


def _resolve(ref: Any):
    return load_object(ref) if isinstance(ref, str) else ref


OPS: Registry[Op] = Registry("operation")

OPS.register("sample", Op("engine.ops.sample:SampleRequest", command="sample a grid of images from a checkpoint",
                          progress_lines=False))
# each dropped image is projected once: a second drop must not cancel the first's projection
OPS.register("project", Op("engine.ops.project:ProjectRequest", superseded=False))
OPS.register("mix", Op("engine.ops.style_mix:StyleMixRequest",
                       command="style-mixing grid from a checkpoint with per-layer styles"))
OPS.register("interpolate", Op("engine.ops.interpolate:InterpolateRequest", cache_name="interp",
                               command="latent walk between seeds and/or images: strip PNG, GIF or MP4"))
OPS.register("interpolate-export", Op("engine.ops.interpolate:ExportRequest", cache_name="interp", superseded=False))
# each step's x_t and x̂0 of one seed, for the Sampling canvas's trajectory strip
OPS.register("trajectory", Op("engine.ops.trajectory:TrajectoryRequest",
                              command="write one seed's denoising trajectory (x_t and x̂0 per step, and strip.png)"))
OPS.register("evaluate", Op("engine.ops.evaluate:EvaluateRequest"))   # the command is `eval` (engine/cli/evaluate.py)
# FD against network evaluations over the solvers and step counts (`eval --sweep` is its alias)
OPS.register("sweep", Op("engine.ops.sweep:SweepRequest", superseded=False,
                         command="FD against network evaluations: every solver at several step counts "
                                 "(also `eval --sweep`)",
                         checkpoint_help="the checkpoint of a diffusion or flow model (its run folder gets the files)"))
OPS.register("inpaint", Op("engine.ops.inpaint:InpaintRequest", needs_model=False,
                           command="fill the masked part of an image (mask: white = regenerate)",
                           checkpoint_help="a model that inpaints (diffusion, PixelCNN); not needed for telea/ns"))
# the detection lab's checks and watermarks need no model: they run before anything is trained
OPS.register("detect", Op("engine.ops.detect:DetectRequest", needs_model=False, superseded=False))
OPS.register("watermark", Op("engine.ops.watermark:WatermarkRequest", needs_model=False, superseded=False))
# detectors trained and evaluated from the Detection canvas (the CLI's is `genlab-engine detector`)
OPS.register("detector-train", Op("engine.ops.detector_train:DetectorTrainRequest", needs_model=False,
                                  superseded=False))
OPS.register("detector-eval", Op("engine.ops.detector_eval:DetectorEvalRequest", needs_model=False,
                                 superseded=False))
