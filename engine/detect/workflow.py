"""The detector jobs end to end, shared by the CLI (and any worker op): gather the sources, push
them through one pipeline, train, evaluate per generator, the format-bias control, leave one
generator out. progress(stage, done, total) throughout; cancel() stops between steps (Cancelled)."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.detect.evaluation import Split, evaluate, format_bias_control, leave_one_out, split_prepared
from engine.detect.pipeline import ImagePipeline
from engine.detect.trained import TrainedDetector, TrainSettings
from engine.detect.training_data import (Prepared, choose_color, fake_source, prepare, real_source, run_and_step,
                                         unique_names)


@dataclass
class SourceSpec:
    real: str                        # a built-in dataset or a folder
    fakes: list[str]                 # checkpoints trained against (and tested on their held-back images)
    holdout: list[str] = field(default_factory=list)   # checkpoints only tested on
    real_count: int = 256
    fake_count: int = 256
    real_start: int = 0              # the real images used start here (eval: after the training's)
    seed: int = 0                    # fakes: image i from seed + i; the train/test split
    size: int = 0                    # 0: the first checkpoint's resolution
    color: str = "auto"              # auto: grayscale when any source is
    format: str = "png"
    jpeg_quality: int = 95
    use_cache: bool = True
    device: str = "cpu"


def _stage(progress, name):
    return (lambda d, t: progress(name, d, t)) if progress else None


def gather(spec: SourceSpec, progress=None, cancel=None, pipeline: ImagePipeline | None = None,
           ) -> tuple[Prepared, list[str]]:
    """(every source through one pipeline, the held-out generators' names). A given pipeline (an
    existing detector's) is used as it is."""
    from engine.family.progress import check_cancel
    fakes = []
    for i, ckpt in enumerate([*spec.fakes, *spec.holdout]):
        check_cancel(cancel)
        fakes.append(fake_source(ckpt, spec.fake_count, spec.seed, use_cache=spec.use_cache, device=spec.device,
                                 progress=_stage(progress, f"sampling {run_and_step(ckpt)}"), cancel=cancel))
    fakes = unique_names(fakes)
    holdout = [f.name for f in fakes[len(spec.fakes):]]
    if pipeline is None:
        size = spec.size or (fakes[0].images.shape[1] if fakes else 32)
        real = real_source(spec.real, spec.real_count, size, spec.real_start, spec.seed)
        color = choose_color([real, *fakes]) if spec.color == "auto" else spec.color
        pipeline = ImagePipeline(size, color, spec.format, spec.jpeg_quality)
    else:
        real = real_source(spec.real, spec.real_count, pipeline.size, spec.real_start, spec.seed)
    if progress:
        progress("pipeline", 0, 1)
    prepared = prepare(pipeline, real, fakes)
    if progress:
        progress("pipeline", 1, 1)
    return prepared, holdout


def train(arch: str, spec: SourceSpec, settings: TrainSettings, test_fraction: float = 0.25,
          bias_control: bool = True, progress=None, cancel=None, leave_one_out_matrix: bool = False,
          ) -> TrainedDetector:
    """Train a detector, evaluate it per test generator (the trained-on ones on their held-back
    images, the held-out ones on all theirs), and the format-bias control beside it; all in its meta.
    leave_one_out_matrix: also the train x test matrix over every generator, held-out ones included
    (one more detector per generator, with two or more), under report["leave_one_out"]."""
    prepared, holdout = gather(spec, progress, cancel)
    data = split_prepared(prepared.real, prepared.fakes, holdout, test_fraction, spec.seed)
    det = TrainedDetector.fit(arch, data.train, prepared.pipeline, settings, _stage(progress, "training"), cancel)
    det.meta["data"] = {**prepared.report(), "real": spec.real, "real_indices": [spec.real_start,
                                                                                  spec.real_start + len(prepared.real)],
                        "test_fraction": test_fraction, "held_out": holdout}
    report = {"test": evaluate(det, data.test_real, data.test_fakes), "test_real_images": len(data.test_real)}
    if bias_control:
        report["format_bias_control"] = format_bias_control(arch, data, prepared.pipeline, settings,
                                                            _stage(progress, "training (format-bias control)"), cancel)
    if leave_one_out_matrix and len(prepared.fakes) >= 2:
        # every generator, held-out ones too, is left out of one fold and trained on in the others
        every = split_prepared(prepared.real, prepared.fakes, [], test_fraction, spec.seed)
        folds = leave_one_out(arch, every, prepared.pipeline, settings, progress=progress, cancel=cancel)
        report["leave_one_out"] = logo_report(folds)
    det.meta["report"] = report
    return det


def evaluate_saved(det: TrainedDetector, spec: SourceSpec, progress=None, cancel=None) -> dict:
    """A saved detector on new images through its own pipeline; appended to its meta's evaluations."""
    prepared, _ = gather(spec, progress, cancel, pipeline=det.pipeline)
    result = {"real": spec.real, "real_indices": [spec.real_start, spec.real_start + len(prepared.real)],
              "fake_seed": spec.seed, "sources": prepared.origins,
              "results": evaluate(det, prepared.real, prepared.fakes)}
    det.meta.setdefault("evaluations", []).append(result)
    return result


def logo(arch: str, spec: SourceSpec, settings: TrainSettings, test_fraction: float = 0.25, progress=None,
         cancel=None) -> tuple[Split, list, Prepared]:
    prepared, _ = gather(spec, progress, cancel)
    data = split_prepared(prepared.real, prepared.fakes, [], test_fraction, spec.seed)
    return data, leave_one_out(arch, data, prepared.pipeline, settings, progress=progress, cancel=cancel), prepared


def fold_json(folds) -> list[dict]:
    return [{"held_out": f.held_out, "trained_on": f.trained_on, "results": f.results} for f in folds]


def logo_report(folds) -> dict:
    """The folds and their AUC / AP / accuracy matrices (rows: "all but X", columns: test generators)."""
    from engine.detect.evaluation import logo_matrix
    rows, cols, auc = logo_matrix(folds, "auc")
    return {"folds": fold_json(folds),
            "matrix": {"metric": "auc", "rows": rows, "columns": cols, "values": auc.round(5).tolist()},
            "matrix_average_precision": logo_matrix(folds, "average_precision")[2].round(5).tolist(),
            "matrix_accuracy": logo_matrix(folds, "accuracy")[2].round(5).tolist()}
