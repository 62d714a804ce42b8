"""Cost of sample-quality metrics on this machine:
- feature throughput (images/s) of the FID Inception network and of the domain network;
- wall time of a 2,000-sample FD-domain pass (sampling + features + statistics) with the
  ddpm-digits preset, and its share of training time at the preset's evaluation interval.

    python benchmarks/metrics_cost.py [--samples 2000]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from common import write_result

import torch


def throughput(fn, x, repeats=3):
    fn(x[:8])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return repeats * len(x) / (time.perf_counter() - t0)


def main():
    from engine.core.config import load_preset
    from engine.data import build_dataset
    from engine.metrics import domain
    from engine.metrics.evaluate import Evaluator, family_sampler
    from engine.metrics.inception import FIDInceptionV3
    from engine.family.base import build_family
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=2000)
    a = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = load_preset("ddpm-digits")
    data = build_dataset(cfg.data)
    x = data.float_batch(torch.arange(64)).to(dev)
    inc = FIDInceptionV3().eval().to(dev)  # random weights: the cost is the same as with the real file
    with torch.no_grad():
        inc_ips = throughput(lambda b: inc(b), x[:32], repeats=2)
    cache = tempfile.mkdtemp(prefix="genlab-metrics-bench-")
    t0 = time.perf_counter()
    net, _, _ = domain.load_or_train(data.images, data.labels, data.num_classes, steps=cfg.metrics.domain_steps,
                                     device=dev, cache=__import__("pathlib").Path(cache))
    domain_train_s = time.perf_counter() - t0
    with torch.no_grad():
        dom_ips = throughput(lambda b: net(b), data.float_batch(torch.arange(1024)).to(dev), repeats=3)

    # a 2,000-sample pass as the training loop runs it (EMA model, the preset's sampler settings)
    fam = build_family(cfg, data.channels, data.resolution, data.class_names).to(dev)
    ev = Evaluator(data.images, data.labels, data.num_classes, metrics=cfg.metrics.metrics, device=dev,
                   domain_steps=cfg.metrics.domain_steps, cache=__import__("pathlib").Path(cache))
    ev.reference(a.samples)  # cached once per dataset, like the extractor
    m = cfg.metrics
    t0 = time.perf_counter()
    sample_s = [0.0]
    draw = family_sampler(fam, m.sampling_steps)  # as the training loop samples

    def sample(n, seed):
        t = time.perf_counter()
        out = draw(n, seed)
        sample_s[0] += time.perf_counter() - t
        return out
    scores = ev.score_sampler(sample, a.samples)
    pass_s = time.perf_counter() - t0
    pass_sampling_s = sample_s[0]
    ev.reference(m.samples)
    t0 = time.perf_counter()
    ev.score_sampler(sample, m.samples)
    preset_pass_s = time.perf_counter() - t0

    # training time between evaluations at the preset's interval, from a short timed run
    from engine.family.base import Batch, StepContext
    opts = fam.make_optimizers()
    ctx = StepContext(dev, torch.Generator(device=dev).manual_seed(0), opts, grad_clip=1.0)
    xb, yb = data.float_batch(torch.arange(cfg.training.batch_size)).to(dev), data.labels[:cfg.training.batch_size].to(dev)
    for _ in range(3):
        fam.training_step(Batch(xb, yb), ctx)
    t0 = time.perf_counter()
    for _ in range(30):
        fam.training_step(Batch(xb, yb), ctx)
    step_s = (time.perf_counter() - t0) / 30
    every = m.every or cfg.training.steps
    interval_s = every * step_s
    write_result(f"metrics_cost_{dev.type}", {
        "inception_features_img_per_s": round(inc_ips, 1),
        "domain_features_img_per_s": round(dom_ips, 1),
        "domain_extractor_training_s": round(domain_train_s, 1),
        "pass": {"samples": a.samples, "sampling_steps": m.sampling_steps, "wall_s": round(pass_s, 1),
                 "of_which_sampling_s": round(pass_sampling_s, 1), "scores": {k: round(v, 4) for k, v in scores.items()}},
        "preset_eval_every_steps": every, "train_step_s": round(step_s, 4),
        "training_s_between_evals": round(interval_s, 1),
        "share_of_training_time_2000": round(pass_s / (pass_s + interval_s), 3),
        "preset_pass": {"samples": m.samples, "sampling_steps": m.sampling_steps, "wall_s": round(preset_pass_s, 1)},
        "share_of_training_time_preset": round(preset_pass_s / (preset_pass_s + interval_s), 3),
    })


if __name__ == "__main__":
    main()
