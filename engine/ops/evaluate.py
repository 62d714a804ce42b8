"""Score a checkpoint's samples against its training data: FID (FD-domain without the Inception
weights), KID, precision/recall, IS."""
from __future__ import annotations

from dataclasses import dataclass

from engine.config import MetricsConfig
from engine.ops.base import Cancel, ModelSession, StageProgress
from engine.schema import check_like


@dataclass
class EvaluateRequest:
    n: int = 5000
    metrics: str = "fid,kid,pr,is"
    steps: int = 0                   # sampling steps of iterative samplers; 0: the run's metrics.sampling_steps
    inception: str = ""              # the FID Inception weight file; empty: the run's setting or the usual cache

    def check(self) -> None:
        check_eval_args(self.n, self.steps)


def check_eval_args(n: int, steps: int = 0) -> None:
    """The rules of the config fields these stand for (steps 0 = the run's)."""
    check_like(n, MetricsConfig, "samples", "n", "metrics.samples")
    if steps:
        check_like(steps, MetricsConfig, "sampling_steps", "steps", "metrics.sampling_steps")


@dataclass
class EvaluateResult:
    scores: dict
    extractor: str
    note: str
    n: int
    step: int


def run(session: ModelSession, req: EvaluateRequest, progress: StageProgress, cancel: Cancel) -> EvaluateResult:
    from engine.data import build_dataset
    from engine.metrics.evaluate import Evaluator, family_sampler, parse_metrics
    metrics = parse_metrics(req.metrics)
    cfg = session.config
    data = build_dataset(cfg.data)
    ev = Evaluator(data.images, data.labels, data.num_classes, metrics=metrics,
                   inception_path=req.inception or cfg.metrics.inception_weights or None,
                   device=session.family.device, domain_steps=cfg.metrics.domain_steps, progress=progress)
    scores = ev.score_sampler(family_sampler(session.family, req.steps or cfg.metrics.sampling_steps), req.n,
                              cancel=cancel)
    return EvaluateResult(scores, ev.kind, ev.note, req.n, session.step)
