"""The evaluation pass of a training run: the sample measures its [metrics] section asks for, scored
by one Evaluator built on the first pass that needs one (its extractor and real statistics serve
every pass), and every measure on real images the family offers (bits/dim with a likelihood,
codebook usage for a tokenizer), on the held-out images when the run keeps some out, else on the
training ones; one metrics.jsonl row and an "eval" event.
Rank 0 alone runs it."""
from __future__ import annotations

import time
from typing import Callable

from engine.core import logkeys, protocol
from engine.core.errors import NotFinite
from engine.core import metrics as registry
from engine.core.metrics import HELDOUT
from engine.core.util import throttled
from engine.family.interfaces import offers
from engine.metrics.evaluate import Evaluator, family_sampler, heldout_pass, sample_measures
from engine.runs.rundir import RunDir

Emit = Callable[[dict], None]


class RunEvaluation:
    def __init__(self, metrics, data, heldout, device, rd: RunDir, emit: Emit):
        self.metrics, self.data, self.heldout, self.device, self.rd, self.emit = metrics, data, heldout, device, rd, emit
        self.evaluator: Evaluator | None = None
        self.sample_measures = sample_measures(metrics.metrics)  # only bpd asked: no samples, no feature network
        self.step = 0

    def run(self, family, step: int) -> dict:
        m = self.metrics
        self.step = step
        t0 = time.perf_counter()
        if self.evaluator is None and self.sample_measures:
            progress = throttled(lambda stage, done, total: self.emit(
                protocol.event("eval_progress", step=self.step, stage=stage, done=done, total=total)), 0.25)
            self.evaluator = Evaluator(self.data.images, self.data.labels, self.data.num_classes,
                                       metrics=[s.key for s in self.sample_measures],
                                       inception_path=m.inception_weights or None, device=self.device,
                                       domain_steps=m.domain_steps, progress=progress)
            self.emit(protocol.event("warning" if self.evaluator.kind == "domain" else "info",
                                     message=self.evaluator.note))
        scores: dict = {}
        if self.evaluator is not None:
            scores = self._or_warn(lambda: self.evaluator.score_sampler(family_sampler(family, m.sampling_steps),
                                                                        m.samples))
        extra_row: dict = {}
        heldout = [h for h in registry.measures(HELDOUT) if offers(family, h.needs)]
        if heldout:
            on = self.heldout if self.heldout is not None else self.data
            values, extra_row = self._or_warn(lambda: heldout_pass(
                family, heldout, on, "held-out" if self.heldout is not None else "training",
                m.samples, self.device), ({}, {}))
            scores.update(values)
        row = {"step": step, "time": round(time.time(), 3), **logkeys.quality(scores),
               "eval_s": round(time.perf_counter() - t0, 2), "eval_samples": m.samples, **extra_row}
        self.rd.append_metrics(row)
        self.emit(protocol.event("eval", **row))
        return row


    def _or_warn(self, score: Callable, empty=None):
        """score(), or, when a score is not a finite number, a warning saying why and `empty`
        ({}): the row leaves it out rather than holding a NaN, and training goes on."""
        try:
            return score()
        except NotFinite as e:
            self.emit(protocol.event("warning", message=f"evaluation at step {self.step}: {e}; left out of the row"))
            return {} if empty is None else empty


def skip_final_evaluation(metrics, total: int) -> str | None:
    """Why a finished run gets no final evaluation, or None. A run shorter than one evaluation
    interval has had none: its first would build the feature network (minutes on a CPU) for a few
    steps' model, so it is skipped, and the run says so and how to score it."""
    if total < metrics.every:
        return (f"no evaluation: the run ({total} steps) is shorter than the evaluation interval (metrics.every = "
                f"{metrics.every}); score it with Evaluate in the Sample tab or `genlab-engine eval --checkpoint …`")
    return None
