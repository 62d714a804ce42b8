"""A latent walk through seeds and/or images: a strip PNG, a GIF or an MP4. The worker serves it
as two ops: "interpolate" (a preview, superseded by a newer one) and "interpolate-export" (the same
walk written to `out`, which no newer request cancels)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.core.flags import Flag, request_field, result_field, seed_or_path, seeds_or_paths
from engine.family.interfaces import LatentModel
from engine.ops.latent_walk import check_output, interpolate, save_animation
from engine.family.progress import Cancel, StageProgress
from engine.ops.base import ModelSession, check_encode_steps, check_scale


@dataclass
class InterpolateRequest:
    endpoints: list = request_field(flags=(   # seeds and/or image paths, in order
        Flag("--from", "a seed or an image path", metavar="SRC", parse=seed_or_path),
        Flag("--via", "more endpoints in between, comma-separated", parse=seeds_or_paths),
        Flag("--to", "a seed or an image path", metavar="DST", parse=seed_or_path, required=True)))
    out: str = request_field("", ".png (strip), .gif or .mp4", output="file",   # by suffix
                             cli_default="walk.gif")
    frames: int = request_field(16, flags=(Flag("--frames", "frames in the walk"),
                                           Flag("--steps", deprecated="use --frames")))
    mode: str = request_field("", "default: what suits the latent space",   # lerp or slerp
                              choices=("lerp", "slerp"))
    cls: int | None = request_field(None, "class for a conditional model", flag="--class", metavar="CLS")
    options: dict = request_field(factory=dict, sample_options=(
        "truncation_psi", "noise_mode",
        Flag("--sample-steps", "iterative samplers (diffusion): steps per frame (default: the run's)", key="steps"),
        Flag(key="guidance_scale", help="diffusion: guidance scale (default: the run's)")))
    encode_steps: int = request_field(0, "steps to encode image endpoints (projection or inversion)")
    fps: float = 12.0
    bounce: bool = request_field(False, "animations play forward then back")
    scale: int = request_field(4, "upscale frames by this factor (nearest)")   # of the written frames
    # also write the frames as a one-row PNG at scale 1 (the canvas reads it)
    strip: str = request_field("", output="strip", cli=False)

    def check(self) -> None:
        if not 2 <= self.frames <= 1000:
            raise ValueError(f"frames = {self.frames} must be between 2 and 1000")
        if len(self.endpoints) < 2:
            raise ValueError("interpolation needs at least two endpoints")
        if not (self.out or self.strip):
            raise ValueError("give out (a .png, .gif or .mp4 file), strip, or both")
        if not 0 < self.fps <= 120:
            raise ValueError(f"fps = {self.fps} must be above 0 and at most 120")
        check_encode_steps(self.encode_steps)
        check_scale(self.scale)
        if self.out:
            check_output(self.out)  # before seconds of rendering, not after


@dataclass
class ExportRequest(InterpolateRequest):
    """An export: the fields of InterpolateRequest, with `out` required (the file someone named)."""

    def check(self) -> None:
        if not self.out:
            raise ValueError("interpolate-export: the request is missing 'out' (a .png, .gif or .mp4 file)")
        super().check()


@dataclass
class InterpolateResult:
    out: str = result_field()
    frames: int = result_field()
    frame_size: int = result_field(report=False)
    space: str = result_field()
    path: str = result_field("", report=False)    # the scale-1 strip, when asked for


def run(session: ModelSession, req: InterpolateRequest, progress: StageProgress, cancel: Cancel) -> InterpolateResult:
    session.require(LatentModel, "offers no latent space to interpolate in")
    fam = session.family
    frames = interpolate(fam, req.endpoints, req.frames, req.mode or fam.default_mode, labels=session.labels(req.cls),
                         cache=session.endpoints, encode_steps=req.encode_steps or None,
                         options=fam.sample_options(req.options), progress=progress, cancel=cancel)
    if req.strip:
        save_animation(frames, req.strip, scale=1)
    out = save_animation(frames, req.out, fps=req.fps, scale=req.scale, bounce=req.bounce) if req.out else ""
    return InterpolateResult(str(out), len(frames), fam.resolution, fam.latent_space, req.strip)
