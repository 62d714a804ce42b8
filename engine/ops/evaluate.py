"""Score a checkpoint: its samples against its training data (FID, or FD-domain without the
Inception weights; KID, precision/recall, IS), and the measures on real images its family offers
(bits/dim for a model with a likelihood, codebook usage for a tokenizer) on the run's held-out
images or on any folder of images."""
from __future__ import annotations

from dataclasses import dataclass

from engine.core import metrics as registry
from engine.core.config import MetricsConfig
from engine.family.interfaces import offers
from engine.family.progress import Cancel, StageProgress
from engine.ops.base import ModelSession
from engine.core.flags import request_field
from engine.core.schema import check_like


@dataclass
class EvaluateRequest:
    n: int = request_field(5000, "images to generate / use from each folder")
    # a metric registered later (engine/core/metrics.py) is asked for by default too
    metrics: str = request_field(factory=lambda: ",".join(registry.measure_names(registry.SAMPLING)),
                                 help=registry.metrics_flag_help)
    # sampling steps of iterative samplers; 0: the run's metrics.sampling_steps
    steps: int = request_field(0, "denoising steps for the samples", metavar="SAMPLE_STEPS")
    # the FID Inception weight file; empty: the run's setting or the usual cache
    inception: str = request_field("", "path of the FID Inception weight file")
    # bpd / codebook on this image folder (resized to the model's size and channels)
    real: str = request_field("", "folder of real images (with --fake; or with --checkpoint and --metrics bpd "
                                  "or codebook)")

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
    from engine.core.metrics import parse_metrics
    from engine.metrics.evaluate import Evaluator, family_sampler
    measures = [registry.MEASURES.get(m) for m in dict.fromkeys(parse_metrics(req.metrics))]
    cfg, fam = session.config, session.family
    needy = next((m for m in measures if m.needs in registry.HELDOUT and not offers(fam, m.needs)), None)
    if needy:
        raise ValueError(f"a {fam.name} model has no {needy.needs}: {needy.key} needs a family that has one "
                         f"(drop {needy.key} from --metrics)")
    data = build_dataset(cfg.data)
    scores: dict = {}
    kind, note = "", ""
    sample = [m.key for m in measures if m.needs == registry.SAMPLING]
    if sample:
        ev = Evaluator(data.images, data.labels, data.num_classes, metrics=sample,
                       inception_path=req.inception or cfg.metrics.inception_weights or None,
                       device=fam.device, domain_steps=cfg.metrics.domain_steps, progress=progress)
        scores = ev.score_sampler(family_sampler(fam, req.steps or cfg.metrics.sampling_steps), req.n, cancel=cancel)
        kind, note = ev.kind, ev.note
    heldout = [m for m in measures if m.needs in registry.HELDOUT]
    if heldout:
        scores.update(heldout_scores(fam, cfg, data, req, heldout))
    return EvaluateResult(scores, kind, note, req.n, session.step)


def heldout_scores(fam, cfg, data, req: EvaluateRequest, measures=None) -> dict:
    """The measures on real images (when None: every one the family offers) on a folder of images
    (--real), else on the run's held-out images, else (a run that kept none out) on its training
    images; the result says which and how many."""
    from engine.metrics.evaluate import heldout_pass
    if req.real:
        on, split = folder_as_data(req.real, fam, req.n), f"folder {req.real}"
    else:
        train, held = data.split(cfg.data.holdout, cfg.data.seed)
        on, split = (held, "held-out") if held is not None else (train, "training")
    if measures is None:
        measures = [m for m in registry.measures(registry.HELDOUT) if offers(fam, m.needs)]
    values, extra = heldout_pass(fam, measures, on, split, req.n, fam.device)
    return {**values, **extra}


def folder_as_data(folder: str, fam, n: int):
    """Images of a folder at the model's resolution and channel count, as ImageData."""
    import torch
    from engine.data.dataset import ImageData, to_uint8_nchw
    from engine.data.folder import load_folder
    arr, labels, names, _, _, _ = load_folder(folder, fam.resolution, n)
    images = to_uint8_nchw(arr)
    if images.shape[1] != fam.channels:  # grey <-> colour, as the model sees images
        images = images.float().mean(1, keepdim=True).round().to(torch.uint8) if fam.channels == 1 \
            else images.expand(-1, fam.channels, -1, -1).contiguous()
    # a conditional model scores each image under its class where the folder's classes are the
    # model's (same names), else under class 0
    same = list(names) == list(fam.class_names)
    lab = torch.from_numpy(labels).long() if same else torch.zeros(len(images), dtype=torch.long)
    return ImageData(images, lab, list(fam.class_names) or ["images"], folder)
