"""Family comparison: checkpoints of any families trained on the same dataset, measured the same
way, so the quality-diversity-speed trade-off shows on the user's own data.

For each checkpoint, one row (engine/runs/compare_table.py lists the columns):

  quality     FD (FID with the Inception weights, else FD-domain on GenLab's domain features), KID,
              precision, IS where the extractor has logits: the evaluate op's Evaluator
              (engine/metrics/evaluate.py), not a reimplementation
  diversity   recall; bits/dim where the family has a likelihood (the evaluate op's
              heldout_scores: the run's held-out images, else its training images)
  speed       images/s drawing the n evaluation samples (after an untimed warm-up batch) at the
              run's sample options, and NFE: network evaluations per image, which the family says
              (Family.network_evaluations: the steps an iterative sampler visits, x2 under
              classifier-free guidance; H x W x C for an autoregressive family; 1 for one-pass ones)
  cost        parameters, the training seconds up to the checkpoint's step (metrics.jsonl, continued
              across resumes, as the runs browser's curves count them), steps, images seen

Every checkpoint is scored against the SAME real reference: one Evaluator (one feature extractor,
one set of n real features, cached after the first checkpoint) built from the first checkpoint's
dataset. Checkpoints trained on another dataset, resolution or channel count are refused before
any is loaded: their numbers would not be comparable."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

from engine.core import metrics as registry
from engine.runs.compare_table import columns, metric_cells
from engine.training.checkpoint import Checkpoint, peek_checkpoint

WARMUP = 16   # images in the untimed warm-up batch (first-call allocation, cuDNN autotuning, caches)

# progress(item, items, stage, done, total): checkpoint `item` (0-based) of `items`; the stage names
# follow the evaluator's ("training domain features", "real features", "generated features") plus
# "warm-up", "sampling" and "bits/dim" (engine/compare_table.overall_fraction weighs them)
CompareProgress = Callable[[int, int, str, int, int], None]


class CompareError(ValueError):
    """The checkpoints cannot be compared (different datasets, none given); one line."""


# ---- which data a checkpoint was trained on ------------------------------------------------------
def data_identity(ck: Checkpoint) -> tuple[str, int, int]:
    """(dataset, resolution, channels) of a checkpoint: what its samples are scored against. A
    folder dataset is named by its resolved path."""
    cfg = ck.config
    name = cfg.data.dataset
    if name == "folder":
        name = f"folder {Path(cfg.data.path).expanduser().resolve()}"
    data = ck.meta["data"]
    return name, int(data["resolution"]), int(data["channels"])


def describe_data(identity: tuple[str, int, int]) -> str:
    name, res, ch = identity
    return f"{name} at {res}x{res}, {ch} channel{'s' if ch != 1 else ''}"


def check_same_data(checkpoints: list[Checkpoint]) -> None:
    """A CompareError naming the first checkpoint and the first one trained on other data."""
    first = data_identity(checkpoints[0])
    for ck in checkpoints[1:]:
        other = data_identity(ck)
        if other != first:
            raise CompareError(
                f"cannot compare {checkpoints[0].path} and {ck.path}: the first was trained on "
                f"{describe_data(first)}, the second on {describe_data(other)}; a family comparison needs "
                f"checkpoints of one dataset at one resolution and channel count (all are scored against "
                f"the same real images)")


# ---- training cost -------------------------------------------------------------------------------
def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder holding checkpoints/step_N.safetensors, or None (an exported checkpoint)."""
    parent = Path(checkpoint).absolute().parent
    if parent.name == "checkpoints" and (parent.parent / "config.toml").is_file():
        return parent.parent
    return None


def training_cost(ck: Checkpoint) -> dict:
    """Steps, batch size, images seen (steps x the global batch) and training seconds up to the
    checkpoint's step: from the run's metrics.jsonl (elapsed time continued across resumes), else
    the checkpoint's own last metrics line (that process's time only: a resumed run's earlier
    sessions are missing), else None."""
    from engine.runs.index import read_curves
    step, batch = ck.step, ck.config.training.batch_size
    seconds, source = None, ""
    run = run_dir_of(ck.path) if ck.path else None
    if run is not None:
        steps, times, _ = read_curves(run, ("lr",)).get("lr", ((), (), ()))
        upto = [t for s, t in zip(steps, times) if s <= step and math.isfinite(t)]
        if upto:
            seconds, source = float(upto[-1]), "metrics.jsonl"
    if seconds is None:
        el = (ck.meta.get("metrics") or {}).get("elapsed_s")
        if isinstance(el, (int, float)) and math.isfinite(el):
            seconds, source = float(el), "checkpoint (its last training session only)"
    return {"train_seconds": seconds, "train_steps": step, "batch_size": batch, "images_seen": step * batch,
            "train_time_source": source}


def run_name(ck: Checkpoint) -> str:
    run = run_dir_of(ck.path) if ck.path else None
    return run.name if run is not None else (ck.path.stem if ck.path else ck.config.name)


# ---- the comparison ------------------------------------------------------------------------------
def compare_checkpoints(paths, n: int = 500, device: str = "auto", progress: CompareProgress | None = None,
                        cancel: Callable[[], bool] | None = None, *, steps: int = 0, inception: str = "",
                        on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per checkpoint (engine/compare_table.columns()), in the order given. n: generated
    images per checkpoint, and real images in the shared reference; steps: an iterative sampler's
    steps (0: each run's own sample options); inception: the FID weight file (empty: the first
    run's setting or the usual cache; without it FD-domain). cancel() -> True stops between
    batches (engine.family.progress.Cancelled). on_row(row) hears each row as it is done."""
    from engine.ops.evaluate import check_eval_args
    paths = [Path(p) for p in paths]
    if not paths:
        raise CompareError("no checkpoints to compare")
    check_eval_args(n, steps)
    peeks = [peek_checkpoint(p) for p in paths]   # the JSONs only: refuse before loading any weights
    check_same_data(peeks)

    import torch
    from engine.data import build_dataset
    from engine.metrics.evaluate import Evaluator
    from engine.training.device import select_device
    report = progress or (lambda item, items, stage, done, total: None)
    dev = select_device(device)
    first = peeks[0].config
    real = build_dataset(first.data)
    # the one evaluator: its extractor (trained now on the real images if it is the domain one and
    # not cached) and its real features serve every checkpoint
    ev = Evaluator(real.images, real.labels, real.num_classes, metrics=None,   # every sample measure
                   inception_path=inception or first.metrics.inception_weights or None, device=dev,
                   domain_steps=first.metrics.domain_steps,
                   progress=lambda stage, done, total: report(0, len(paths), stage, done, total))
    datasets = {json.dumps(dataclasses.asdict(first.data), sort_keys=True): real}
    rows = []
    for i, path in enumerate(paths):
        row = measure(path, ev, n, dev, datasets, steps=steps, cancel=cancel,
                      progress=lambda stage, done, total, i=i: report(i, len(paths), stage, done, total))
        rows.append(row)
        if on_row is not None:
            on_row(row)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def within(progress, stage: str, before: int, k: int, total: int):
    """A sampler's progress(done, total steps) while it draws `k` images after `before` of the
    stage's `total`, as progress(stage, images done, total): the images of the batch count in
    step by step."""
    def report(done: int, steps: int) -> None:
        if steps > 0 and done < steps:   # the batch's end is the stage's own report
            progress(stage, before + int(k * done / steps), total)
    return report


def measure(path: Path, ev, n: int, dev, datasets: dict, *, steps: int = 0, cancel=None, progress=None) -> dict:
    """One checkpoint's row, scored by the shared Evaluator `ev`."""
    import torch
    from engine.data import build_dataset
    from engine.family.interfaces import IterativeSampler, Likelihood
    from engine.ops.evaluate import EvaluateRequest, heldout_scores
    from engine.family.progress import Cancelled
    from engine.training.checkpoint import family_from_checkpoint
    progress = progress or (lambda stage, done, total: None)
    fam, ck = family_from_checkpoint(path, str(dev))
    cfg = ck.config
    iterative = isinstance(fam, IterativeSampler)
    sample_steps = (steps or int(fam.sample_options().steps)) if iterative else None
    options = fam.sample_options(steps=sample_steps) if iterative else fam.sample_options()

    def sample(k: int, seed: int, step_progress=None, cancel=None) -> torch.Tensor:
        """family_sampler's draw (engine/metrics/evaluate.py), with the sampler's step progress."""
        return fam.sample(k, seed=seed, labels=fam.labels_for(k, offset=seed), use_ema=True, options=options,
                          progress=step_progress, cancel=cancel)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if cancel is not None and cancel():
        raise Cancelled()
    # the warm-up batch and each timed batch report the sampler's own steps (a diffusion model's
    # denoising steps, an autoregressive model's rows), scaled to images: one batch of a slow
    # family takes minutes, and the progress (and its ETA) must move meanwhile
    warm = min(n, WARMUP)
    progress("warm-up", 0, warm)
    sample(warm, 0, within(progress, "warm-up", 0, warm, warm), cancel)
    progress("warm-up", warm, warm)
    clock, drawn = [0.0], [0]

    def timed(k: int, seed: int) -> torch.Tensor:
        inner = within(progress, "sampling", drawn[0], k, n)
        sync()
        t0 = time.perf_counter()
        out = sample(k, seed, inner, cancel)
        sync()
        clock[0] += time.perf_counter() - t0
        drawn[0] += k
        return out

    ev.progress = progress   # the evaluator's stages ("sampling", "real features", ...) under this checkpoint
    scores = ev.score_sampler(timed, n, cancel=cancel)
    row = {"family": fam.name, "run": run_name(ck), "step": ck.step,
           "dataset": data_identity(ck)[0], "resolution": fam.resolution, "channels": fam.channels,
           "fd_kind": registry.value("fid").label(ev.domain), **metric_cells(scores, ev.domain),
           "images_per_s": n / clock[0] if clock[0] > 0 else None,
           "nfe": int(fam.network_evaluations(options)), "sample_steps": sample_steps,
           "sample_seconds": clock[0], "sample_batch": min(n, ev.batch), "n": n,
           "params": int(fam.num_parameters()), **training_cost(ck),
           "device": str(dev), "checkpoint": str(path)}
    if isinstance(fam, Likelihood):
        if cancel is not None and cancel():
            raise Cancelled()
        key = json.dumps(dataclasses.asdict(cfg.data), sort_keys=True)
        if key not in datasets:
            datasets[key] = build_dataset(cfg.data)
        progress("bits/dim", 0, 1)
        row.update(heldout_scores(fam, cfg, datasets[key], EvaluateRequest(n=n)))
        progress("bits/dim", 1, 1)
    row = {k: row.get(k) for k in columns()}
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
