"""The evaluation pass of a training run: score EMA samples against the real data (the [metrics]
section), and bits/dim of a likelihood family on the held-out images (training ones when the run
keeps none out); one metrics.jsonl row and an "eval" event. Rank 0 alone runs it."""
from __future__ import annotations

import time
from typing import Callable

from engine.core import logkeys, protocol
from engine.core.util import throttled
from engine.family.interfaces import Likelihood
from engine.runs.rundir import RunDir

Emit = Callable[[dict], None]


class RunEvaluation:
    """Evaluation passes of one run; the feature network is built on the first pass and kept."""

    def __init__(self, metrics, data, heldout, device, rd: RunDir, emit: Emit):
        self.metrics, self.data, self.heldout, self.device, self.rd, self.emit = metrics, data, heldout, device, rd, emit
        self.evaluator = None
        self.step = 0

    def run(self, family, step: int) -> dict:
        from engine.metrics.evaluate import METRICS, Evaluator, bits_per_dim_on, family_sampler
        m = self.metrics
        self.step = step
        t0 = time.perf_counter()
        progress = throttled(lambda stage, done, total: self.emit(
            protocol.event("eval_progress", step=self.step, stage=stage, done=done, total=total)), 0.25)
        extra_row: dict = {}
        sample_metrics = [k for k in m.metrics if k in METRICS]  # only bpd asked: no samples, no feature network
        if self.evaluator is None and sample_metrics:
            self.evaluator = Evaluator(self.data.images, self.data.labels, self.data.num_classes,
                                       metrics=m.metrics, inception_path=m.inception_weights or None,
                                       device=self.device, domain_steps=m.domain_steps, progress=progress)
            self.emit(protocol.event("warning" if self.evaluator.kind == "domain" else "info",
                                     message=self.evaluator.note))
        scores = self.evaluator.score_sampler(family_sampler(family, m.sampling_steps), m.samples) \
            if self.evaluator is not None else {}
        if isinstance(family, Likelihood):  # held-out images when the run keeps some out, else training ones
            on = self.heldout if self.heldout is not None else self.data
            scores["bits_per_dim"] = bits_per_dim_on(family, on, m.samples, self.device)
            extra_row["bpd_images"] = min(m.samples, len(on))
            extra_row["bpd_split"] = "held-out" if self.heldout is not None else "training"
        row = {"step": step, "time": round(time.time(), 3), **logkeys.quality(scores),
               "eval_s": round(time.perf_counter() - t0, 2), "eval_samples": m.samples, **extra_row}
        self.rd.append_metrics(row)
        self.emit(protocol.event("eval", **row))
        return row


def skip_final_evaluation(metrics, total: int) -> str | None:
    """Why a finished run gets no final evaluation, or None. A run shorter than one evaluation
    interval has had none: its first would build the feature network (minutes on a CPU) for a few
    steps' model, so it is skipped, and the run says so and how to score it."""
    if total < metrics.every:
        return (f"no evaluation: the run ({total} steps) is shorter than the evaluation interval (metrics.every = "
                f"{metrics.every}); score it with Evaluate in the Sample tab or `genlab-engine eval --checkpoint …`")
    return None
