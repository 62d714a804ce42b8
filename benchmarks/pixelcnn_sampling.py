"""PixelCNN sampling images/s, cached (each layer's finished rows and columns kept; the mixture's
level from its edge CDF) against the uncached reference loop, on the pixelcnn-digits architecture
(16x16 grayscale, 32 features, 6 gated layers, 5-logistic mixture, 10 classes). Interleaved
rounds, one batch each way per round with the same seeds; every round checks that both drew the
same pixels. Weights: the preset's initialisation with a random output layer (std --head-std, so
the per-pixel distributions differ from pixel to pixel as a trained model's do; the preset zeroes
it, which would make every pixel's distribution the same).

    python benchmarks/pixelcnn_sampling.py [--rounds 3] [--batch 50]
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import write_result

import torch

from engine.core.config import load_preset
from engine.families.pixelcnn.model import PixelCNNFamily


def build(preset: str, head_std: float) -> PixelCNNFamily:
    torch.manual_seed(0)
    cfg = load_preset(preset).replace(training={"device": "cpu"})
    fam = PixelCNNFamily(cfg, 1, cfg.data.resolution, [str(d) for d in range(10)])
    for nets in (fam.networks, fam.ema):
        torch.nn.init.normal_(nets["pixelcnn"].out.conv.weight, std=head_std)
    return fam


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="pixelcnn-digits")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--head-std", type=float, default=0.3)
    a = p.parse_args()
    fam = build(a.preset, a.head_std)
    labels = [i % 10 for i in range(a.batch)]
    times = {"uncached": [], "cached": []}
    for r in range(a.rounds):
        images = {}
        for kind in ("uncached", "cached") if r % 2 == 0 else ("cached", "uncached"):
            fam.cached_sampling = kind == "cached"
            t0 = time.perf_counter()
            images[kind] = fam.sample(a.batch, seed=1000 * r, labels=labels)
            times[kind].append(time.perf_counter() - t0)
        same = torch.equal(images["cached"], images["uncached"])
        print(f"round {r}: uncached {a.batch / times['uncached'][-1]:.1f} img/s, cached "
              f"{a.batch / times['cached'][-1]:.1f} img/s, same pixels: {same}", flush=True)
        if not same:
            raise SystemExit("cached sampling drew other pixels than the reference")
    rate = {k: a.batch / statistics.median(v) for k, v in times.items()}
    ratios = [u / c for u, c in zip(times["uncached"], times["cached"])]
    write_result("pixelcnn_sampling", {
        "preset": a.preset, "batch": a.batch, "rounds": a.rounds, "head_std": a.head_std,
        "uncached_img_per_s": round(rate["uncached"], 2), "cached_img_per_s": round(rate["cached"], 2),
        "ratio_median_of_rounds": round(statistics.median(ratios), 2),
        "ratio_per_round": [round(x, 2) for x in ratios], "same_pixels": True})


if __name__ == "__main__":
    main()
