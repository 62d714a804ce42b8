"""Training efficiency against the machine's own limit: for each family's default preset, the FLOPs
of one training step (torch's FLOP formulas for matrix multiplies and convolutions, forward and
backward), the GFLOP/s the step achieves, and its ratio to this machine's float32 matrix-multiply
rate measured in the same run (a 2048³ matmul, timed before and after the presets; the better of
the two is the limit).

    python benchmarks/efficiency.py [--presets ddpm-digits vae-digits ...] [--steps 20] [--device cpu]

The FLOP count leaves out elementwise work (normalisation, activations, the optimizer's update), so
a family whose step is mostly that reads low against a matmul rate: that is the point of the table.
"""
from __future__ import annotations

import argparse
import time

from common import write_result

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

# one preset per family, the one the app offers first for it
DEFAULT_PRESETS = ("ddpm-digits", "dcgan-digits", "stylegan-shapes", "vae-digits", "hvae-digits", "glow-digits",
                   "pixelcnn-digits")
MATMUL_N = 2048


class FlopCount(TorchDispatchMode):
    """FlopCounterMode's count (its registry of matmul/conv formulas, forward and backward) without
    its module tracker, whose hooks refuse some families' calls ("Expected gradient function to be
    set" on a module fed a tensor that needs no grad inside a graph that does)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            shape = lambda t: t.shape if isinstance(t, torch.Tensor) else t   # noqa: E731
            self.total += formula(*tree_map(shape, args), **tree_map(shape, kwargs), out_val=tree_map(shape, out))
        return out


def matmul_rate(device: torch.device, seconds: float = 2.0) -> float:
    """GFLOP/s of a float32 MATMUL_N³ matrix multiply, steady state."""
    a = torch.randn(MATMUL_N, MATMUL_N, device=device)
    b = torch.randn(MATMUL_N, MATMUL_N, device=device)
    for _ in range(2):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 2 * MATMUL_N ** 3 * n / (time.perf_counter() - t0) / 1e9


def preset_step(name: str, device: torch.device):
    """The preset's family and a step function over one fixed batch of its shape."""
    from engine.core.config import load_preset
    from engine.family.base import Batch, StepContext, build_family
    cfg = load_preset(name)
    channels = 1 if cfg.data.dataset in ("digits", "faces") else 3
    res, bs = cfg.data.resolution, cfg.training.batch_size
    fam = build_family(cfg, channels, res, [str(i) for i in range(10)]).to(device)
    ctx = StepContext(device, torch.Generator(device=device).manual_seed(0), fam.make_optimizers(),
                      grad_clip=cfg.training.grad_clip)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(bs, channels, res, res, generator=g) * 2 - 1).to(device)
    y = torch.randint(0, 10, (bs,), generator=g).to(device)
    batch = Batch(x, y)
    return cfg, fam, (lambda: fam.training_step(batch, ctx))


def measure(name: str, device: torch.device, steps: int) -> dict:
    cfg, fam, step = preset_step(name, device)
    for _ in range(3):
        step()   # warm-up (and lazily built state, e.g. a GAN's augmentation pipeline)
    with FlopCount() as counter:
        step()
    flops = counter.total
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    s = (time.perf_counter() - t0) / steps
    return {"preset": name, "family": cfg.model.family, "batch": cfg.training.batch_size,
            "resolution": cfg.data.resolution, "params": fam.num_parameters(),
            "gflop_per_step": round(flops / 1e9, 3), "ms_per_step": round(1e3 * s, 2),
            "img_per_s": round(cfg.training.batch_size / s, 1), "gflop_per_s": round(flops / s / 1e9, 2)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    before = matmul_rate(device)
    rows = [measure(name, device, a.steps) for name in a.presets]
    after = matmul_rate(device)
    peak = max(before, after)
    for r in rows:
        r["ratio_to_matmul"] = round(r["gflop_per_s"] / peak, 3)
    print(f"\nfloat32 {MATMUL_N}³ matmul: {before:.1f} GFLOP/s before, {after:.1f} after\n")
    print(f"{'preset':18} {'GFLOP/step':>10} {'ms/step':>8} {'img/s':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    for r in rows:
        print(f"{r['preset']:18} {r['gflop_per_step']:10.3f} {r['ms_per_step']:8.1f} {r['img_per_s']:8.1f} "
              f"{r['gflop_per_s']:8.1f} {r['ratio_to_matmul']:9.2f}")
    write_result(f"efficiency_{device.type}", {
        "steps": a.steps, "matmul_gflop_per_s": {"before": round(before, 1), "after": round(after, 1)},
        "rows": rows})


if __name__ == "__main__":
    main()
