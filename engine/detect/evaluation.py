"""How well a trained detector tells each generator's images from real ones: accuracy at 0.5,
average precision and ROC AUC (scikit-learn), ROC points and the confusion table. AP and AUC only
rank; accuracy needs the 0.5 threshold to be calibrated, which it often is not on a generator the
detector never saw (Wang et al. 2020): both are reported. Plus leave-one-generator-out and the
format-bias control (engine/detect/pipeline.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.detect.pipeline import ImagePipeline, biased_real
from engine.detect.trained import TrainedDetector, TrainingSet, TrainSettings

ROC_POINTS = 101      # at most this many ROC points are kept


def binary_metrics(labels, scores) -> dict:
    """labels 1 = generated; scores P(generated)."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
    y, p = np.asarray(labels, int), np.asarray(scores, float)
    if len(np.unique(y)) != 2:
        raise ValueError("metrics need both real and generated images")
    pred = (p >= 0.5).astype(int)
    fpr, tpr, thr = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).round().astype(int))
    return {"accuracy": float((pred == y).mean()), "average_precision": float(average_precision_score(y, p)),
            "auc": float(roc_auc_score(y, p)),
            "real_accuracy": float((pred[y == 0] == 0).mean()), "fake_accuracy": float((pred[y == 1] == 1).mean()),
            "confusion": {"real_called_real": int(((y == 0) & (pred == 0)).sum()),
                          "real_called_fake": int(((y == 0) & (pred == 1)).sum()),
                          "fake_called_real": int(((y == 1) & (pred == 0)).sum()),
                          "fake_called_fake": int(((y == 1) & (pred == 1)).sum())},
            "roc": {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist(),
                    "threshold": np.clip(thr[keep], 0, 1).round(5).tolist()},
            "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}


def evaluate(detector: TrainedDetector, real: np.ndarray, fakes: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per generator: the real images against that generator's (all already through the pipeline)."""
    p_real = detector.probabilities(real)
    out = {}
    for name, images in fakes.items():
        p_fake = detector.probabilities(images)
        out[name] = {**binary_metrics(np.r_[np.zeros(len(p_real)), np.ones(len(p_fake))], np.r_[p_real, p_fake]),
                     "seen_in_training": name in detector.trained_on}
    return out


@dataclass
class Split:
    """The pipeline's images split once: what training sees and what testing sees."""
    train: TrainingSet
    test_real: np.ndarray
    test_fakes: dict[str, np.ndarray]
    holdout: list[str] = field(default_factory=list)    # generators never trained on (all their images test)


def split_prepared(real: np.ndarray, fakes: dict[str, np.ndarray], holdout: list[str], test_fraction: float,
                   seed: int) -> Split:
    from engine.detect.training_data import split
    tr, te = split(len(real), test_fraction, seed)
    train_fakes, test_fakes = {}, {}
    for i, (name, images) in enumerate(fakes.items()):
        if name in holdout:
            test_fakes[name] = images
            continue
        a, b = split(len(images), test_fraction, seed + 1 + i)
        train_fakes[name], test_fakes[name] = images[a], images[b]
    if not train_fakes:
        raise ValueError("every generator is held out: nothing to train against")
    return Split(TrainingSet(real[tr], train_fakes), real[te], test_fakes, list(holdout))


def format_bias_control(arch: str, data: Split, pipeline: ImagePipeline, settings: TrainSettings,
                        progress=None, cancel=None) -> dict:
    """The same training and evaluation with the real images JPEG-compressed at quality 75 and the
    fakes not: how much a format-biased set inflates the scores, and what the biased detector does
    on the fair test set (it learned the JPEG)."""
    from engine.detect.pipeline import BIAS_JPEG_QUALITY
    biased_train = TrainingSet(biased_real(data.train.real), data.train.fakes)
    det = TrainedDetector.fit(arch, biased_train, pipeline, settings, progress, cancel)
    return {"real_jpeg_quality": BIAS_JPEG_QUALITY,
            "statement": f"Control: the real images JPEG-compressed at quality {BIAS_JPEG_QUALITY} after the pipeline, "
                         f"the fakes not; a detector trained and tested so learns the format.",
            "biased_test": evaluate(det, biased_real(data.test_real), data.test_fakes),
            "biased_detector_on_fair_test": evaluate(det, data.test_real, data.test_fakes)}


@dataclass
class Fold:
    held_out: str
    trained_on: list[str]           # the generators whose images the fold's detector was fitted on
    results: dict[str, dict]        # test generator -> metrics


def leave_one_out(arch: str, data: Split, pipeline: ImagePipeline, settings: TrainSettings,
                  fit=TrainedDetector.fit, progress=None, cancel=None) -> list[Fold]:
    """For each generator: fit on the others' training images, test on every generator's test images.
    `fit` is TrainedDetector.fit (a test passes a spy). progress(stage, done, total)."""
    names = list(data.test_fakes)
    if len(names) < 2:
        raise ValueError("leave-one-generator-out needs at least two generators")
    folds = []
    for k, held in enumerate(names):
        others = {n: data.train.fakes[n] for n in names if n != held and n in data.train.fakes}
        stage_progress = (lambda d, t, k=k: progress(f"fold {k + 1}/{len(names)} (without {held})", d, t)) \
            if progress else None
        det = fit(arch, TrainingSet(data.train.real, others), pipeline, settings, stage_progress, cancel)
        folds.append(Fold(held, sorted(others), evaluate(det, data.test_real, data.test_fakes)))
    return folds


def logo_matrix(folds: list[Fold], metric: str = "auc") -> tuple[list[str], list[str], np.ndarray]:
    """(row labels "all but X", column labels, values): rows are what a fold trained on, columns the test generator."""
    cols = list(folds[0].results)
    rows = [f"all but {f.held_out}" for f in folds]
    return rows, cols, np.array([[f.results[c][metric] for c in cols] for f in folds])


def logo_csv(folds: list[Fold]) -> str:
    lines = ["held_out,trained_on,test_generator,seen_in_training,accuracy,average_precision,auc"]
    for f in folds:
        for test, m in f.results.items():
            lines.append(f"{_csv(f.held_out)},{_csv(' + '.join(f.trained_on))},{_csv(test)},{int(m['seen_in_training'])},"
                         f"{m['accuracy']:.4f},{m['average_precision']:.4f},{m['auc']:.4f}")
    return "\n".join(lines) + "\n"


def _csv(s: str) -> str:
    return f'"{s}"' if any(c in s for c in ',"\n') else s


def heat_map_png(rows: list[str], cols: list[str], values: np.ndarray, title: str) -> bytes:
    """A train x test heat map drawn with PIL: white at 0.5 (chance), green towards 1, red towards 0,
    the value written in each cell; a held-out cell (never trained on) is outlined."""
    import io

    from PIL import Image, ImageDraw
    cell, left, top = 64, 8 + 7 * max(len(r) for r in rows), 40
    width = left + cell * len(cols) + 8
    height = top + cell * len(rows) + 30 + 12 * len(cols)
    im = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(im)
    d.text((8, 8), title, fill="black")
    for i, r in enumerate(rows):
        d.text((8, top + i * cell + cell // 2 - 5), r, fill="black")
        for j, _ in enumerate(cols):
            v = float(values[i, j])
            t = min(abs(v - 0.5) * 2, 1.0)
            color = (int(255 * (1 - t)), 255, int(255 * (1 - t))) if v >= 0.5 else (255, int(255 * (1 - t)), int(255 * (1 - t)))
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 2, top + (i + 1) * cell - 2)
            d.rectangle(box, fill=color, outline="black" if r == f"all but {cols[j]}" else None,
                        width=3 if r == f"all but {cols[j]}" else 1)
            d.text((box[0] + 14, box[1] + cell // 2 - 6), f"{v:.3f}", fill="black")
    for j, c in enumerate(cols):   # column names below the grid, numbered to their columns
        d.text((left + j * cell + 4, top + len(rows) * cell + 2), f"[{j + 1}]", fill="black")
        d.text((8, top + len(rows) * cell + 14 + 12 * j), f"[{j + 1}] test: {c}", fill="black")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
