"""Evaluate a saved NPR or CNN detector from the Detection canvas on new images: real ones from a
dataset (after the ones it was trained on, for its own real data) and samples of checkpoints, all
through the detector's own pipeline (engine/detect/workflow.py evaluate_saved). Per generator:
accuracy at 0.5, AP, AUC, the ROC points and the confusion table; appended to DET.json's
evaluations (only once it finished: a cancelled evaluation changes nothing)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.core.flags import request_field, result_field
from engine.family.progress import Cancel, StageProgress


@dataclass
class DetectorEvalRequest:
    detector: str = request_field(help="the detector (DET, DET.json or DET.safetensors)")
    real: str = request_field(help="real images: a built-in dataset or a folder")
    fakes: list = request_field(help="checkpoints whose samples are the generated images")
    real_count: int = request_field(256, "real images")
    fake_count: int = request_field(256, "images sampled per checkpoint (cached)")
    real_start: int | None = request_field(None, "first real image used (None: after the training's, for its "
                                                 "own real data)")
    seed: int = request_field(1000, "fakes: image i from seed + i (not the training's seed 0)")
    use_cache: bool = request_field(True, "read sampled fakes from the sample cache")
    device: str = request_field("cpu")
    save: bool = request_field(True, "append the evaluation to DET.json")

    def check(self) -> None:
        if not self.detector:
            raise ValueError("detector-eval: choose the detector file")
        if not self.real:
            raise ValueError("detector-eval: choose the real images (a built-in dataset or a folder)")
        if not self.fakes:
            raise ValueError("detector-eval: choose at least one checkpoint whose samples to test on")
        if self.real_count < 2 or self.fake_count < 2:
            raise ValueError("detector-eval: 2 real and 2 generated images at least")


@dataclass
class DetectorEvalResult:
    detector: str = result_field()
    arch: str = result_field()
    trained_on: list = result_field(factory=list)
    real_indices: list = result_field(factory=list)
    results: dict = result_field(factory=dict, report=False)   # generator -> metrics (roc, confusion, ...)


def run(session, req: DetectorEvalRequest, progress: StageProgress, cancel: Cancel) -> DetectorEvalResult:
    from engine.detect import workflow
    from engine.detect.trained import TrainedDetector
    det = TrainedDetector.load(req.detector)      # a bad file: one ValueError line naming it
    start = req.real_start
    if start is None:     # its own real data: the images after the training's
        data = det.meta.get("data") or {}
        start = data.get("real_indices", [0, 0])[1] if data.get("real") == req.real else 0
    spec = workflow.SourceSpec(req.real, [str(f) for f in req.fakes], [], req.real_count, req.fake_count, start,
                               req.seed, use_cache=req.use_cache, device=req.device)
    result = workflow.evaluate_saved(det, spec, progress, cancel)
    if req.save:
        det.save_meta(req.detector)
    return DetectorEvalResult(req.detector, det.arch, det.trained_on, result["real_indices"], result["results"])
