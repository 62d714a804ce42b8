"""Training throughput (images/s) of the GAN presets, through the real training loop, on this
machine (CUDA when present). One D step and one G step per training step; images/s counts real
images per step (the batch size).

    python benchmarks/gan_throughput.py [--presets stylegan-shapes,dcgan-digits] [--steps 60] [--device cpu]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from common import write_result

import torch

from engine.core.config import load_preset
from engine.training.loop import Trainer


def measure(preset: str, steps: int, device: str, warmup: int = 10) -> dict:
    cfg = load_preset(preset).replace(training={"steps": warmup + steps, "device": device, "sample_every": 0,
                                                "checkpoint_every": 0, "log_every": 10 ** 6},
                                      metrics={"every": 0})
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, d, emit=lambda e: None)
        tr.setup()
        tr.bad_flag = torch.zeros((), dtype=torch.bool, device=tr.device)
        for _ in range(warmup):
            tr._train_step()
            tr.step += 1
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            tr._train_step()
            tr.step += 1
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    bs = cfg.training.batch_size
    return {"preset": preset, "family": cfg.model.family, "resolution": cfg.data.resolution, "batch": bs,
            "steps": steps, "seconds": round(dt, 2), "img_per_s": round(steps * bs / dt, 1),
            "steps_per_s": round(steps / dt, 2), "params": tr.family.num_parameters(), "precision": tr.precision}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="stylegan-shapes,dcgan-digits,cgan-digits")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    rows = [measure(name, a.steps, a.device) for name in a.presets.split(",")]
    write_result("gan_throughput" + ("_cuda" if a.device == "cuda" else ""), {"device": a.device, "results": rows})


if __name__ == "__main__":
    main()
