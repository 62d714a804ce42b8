"""Train an NPR or CNN detector from the Detection canvas: the same job as `genlab-engine detector
train` (engine/detect/workflow.py: real and generated images through one pipeline, the test per
generator, the format-bias control and, when asked, the leave-one-generator-out matrix), run in the
worker with progress(stage, done, total) and a cancel checked between sampling batches and training
steps. Writes DET.safetensors + DET.json (atomically, only once everything finished: a cancelled
job writes nothing) and answers with the report the canvas's evaluation view draws."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.core.flags import request_field, result_field
from engine.family.progress import Cancel, StageProgress

ARCH_CHOICES = ("npr", "cnn")    # engine/detect/nets.py ARCHS (kept light here: no torch import)


@dataclass
class DetectorTrainRequest:
    real: str = request_field(help="real images: a built-in dataset (digits, shapes, faces, textures) or a folder")
    fakes: list = request_field(help="checkpoints trained against (their held-back samples are tested on)")
    out: str = request_field(help="the detector file: DET.safetensors and DET.json are written")
    holdout: list = request_field(factory=list, help="checkpoints only tested on, never trained on")
    arch: str = request_field("npr", "npr: a CNN on the NPR residual; cnn: on the image", choices=ARCH_CHOICES)
    augment: bool | None = request_field(None, "blur + JPEG augmentation (None: on for cnn, off for npr)")
    real_count: int = request_field(256, "real images")
    fake_count: int = request_field(256, "images sampled per checkpoint (cached)")
    steps: int = request_field(300, "training steps")
    batch_size: int = request_field(32)
    lr: float = request_field(1e-3)
    width: int = request_field(16, "channels of the first layer")
    test_fraction: float = request_field(0.25, "images of each trained-on source kept for testing")
    bias_control: bool = request_field(True, "the format-bias control (a second detector, real JPEG-compressed)")
    leave_one_out: bool = request_field(False, "the train x test matrix (one more detector per generator)")
    seed: int = request_field(0)
    size: int = request_field(0, "pipeline size (0: the first checkpoint's resolution)")
    use_cache: bool = request_field(True, "read sampled fakes from the sample cache")
    device: str = request_field("cpu", "where checkpoints sample and the detector trains")

    def check(self) -> None:
        if not self.real:
            raise ValueError("detector-train: choose the real images (a built-in dataset or a folder)")
        if not self.fakes:
            raise ValueError("detector-train: choose at least one checkpoint to train against")
        if self.arch not in ARCH_CHOICES:
            raise ValueError(f"detector-train: arch {self.arch!r} is not one of {', '.join(ARCH_CHOICES)}")
        if self.real_count < 2 or self.fake_count < 2:
            raise ValueError("detector-train: 2 real and 2 generated images at least")
        if self.steps < 1 or self.width < 1 or self.batch_size < 2:
            raise ValueError("detector-train: steps and width 1 or more, batch_size 2 or more")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"detector-train: test_fraction = {self.test_fraction} must be between 0 and 1")
        if not self.out:
            raise ValueError("detector-train: the request is missing 'out' (the detector file)")
        both = sorted(set(map(str, self.fakes)) & set(map(str, self.holdout)))
        if both:
            raise ValueError(f"{both[0]}: both trained against and held out; a held-out checkpoint is never "
                             f"trained on")


@dataclass
class DetectorTrainResult:
    detector: str = result_field()                 # DET.safetensors
    meta: str = result_field()                     # DET.json
    arch: str = result_field()
    trained_on: list = result_field(factory=list)
    held_out: list = result_field(factory=list)
    statement: str = result_field("")              # the same-pipeline sentence
    report: dict = result_field(factory=dict, report=False)   # test, format_bias_control, leave_one_out


def run(session, req: DetectorTrainRequest, progress: StageProgress, cancel: Cancel) -> DetectorTrainResult:
    from engine.detect import workflow
    from engine.detect.trained import TrainSettings
    spec = workflow.SourceSpec(req.real, [str(f) for f in req.fakes], [str(h) for h in req.holdout], req.real_count,
                               req.fake_count, 0, req.seed, req.size, use_cache=req.use_cache, device=req.device)
    settings = TrainSettings(req.steps, req.batch_size, req.lr, req.width, req.augment, True, req.seed, req.device)
    det = workflow.train(req.arch, spec, settings, req.test_fraction, req.bias_control, progress, cancel,
                         leave_one_out_matrix=req.leave_one_out)
    weights = det.save(req.out)
    data = det.meta["data"]
    return DetectorTrainResult(str(weights), str(Path(weights).with_suffix(".json")), det.arch, det.trained_on,
                               list(data.get("held_out", [])), data.get("statement", ""), det.meta["report"])
