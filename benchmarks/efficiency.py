"""Training efficiency against the machine's own limit: for each family's default preset, the FLOPs
of one training step (torch's FLOP formulas for matrix multiplies and convolutions, forward and
backward), the GFLOP/s the step achieves, and its ratio to this machine's float32 matrix-multiply
rate measured in the same run (a 2048³ matmul, timed before and after the presets; the better of
the two is the limit).

    python benchmarks/efficiency.py [--presets ddpm-digits vae-digits ...] [--steps 20] [--device cpu]

The FLOP count leaves out elementwise work (normalisation, activations, the optimizer's update), so
a family whose step is mostly that reads low against a matmul rate: that is the point of the table.

With --switches, the same step is timed instead under the speed switches the engine does not turn
on by default, each on its own copy of the preset's family (same initial weights, same batch),
interleaved round by round and reported as ratios to the default path:

    python benchmarks/efficiency.py --switches [--presets ddpm-digits vae-digits] [--steps 10] [--rounds 3]

  default        the preset's own optimizer as the family makes it (torch's choice of implementation:
                 the per-parameter for-loop on a CPU, foreach on a GPU)
  foreach        the same optimizer with foreach=True (one multi-tensor kernel per operation)
  fused          the same optimizer with fused=True (the whole update in one kernel)
  channels-last  the networks and the batch in channels-last (NHWC) memory format, default optimizer

With --profile, torch.profiler's top operators by self CPU time over a few training steps of each
preset, and the step's time split into the matmul/convolution kernels that the FLOP count covers
and the rest (normalisation, activations, attention's softmax, the optimizer, copies):

    python benchmarks/efficiency.py --profile [--presets ddpm-digits] [--steps 5]
"""
from __future__ import annotations

import argparse
import inspect
import statistics
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


def matmul_rate(device: torch.device, seconds: float = 2.0, clock=time.perf_counter) -> float:
    """GFLOP/s of a float32 MATMUL_N³ matrix multiply, steady state (per second of `clock`:
    time.process_time gives it per CPU second of this process, for a CPU shared with other jobs)."""
    a = torch.randn(MATMUL_N, MATMUL_N, device=device)
    b = torch.randn(MATMUL_N, MATMUL_N, device=device)
    for _ in range(2):
        a @ b
    n, t0 = 0, clock()
    while clock() - t0 < seconds:
        a @ b
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 2 * MATMUL_N ** 3 * n / (clock() - t0) / 1e9


SWITCHES = ("default", "foreach", "fused", "channels-last")


def with_implementation(opt: torch.optim.Optimizer, impl: str) -> torch.optim.Optimizer:
    """The same optimizer over the same parameter groups and hyper-parameters, its update run by
    torch's foreach or fused implementation (impl "foreach" or "fused")."""
    # only what the constructor takes (AdamW's defaults also hold Adam's decoupled_weight_decay)
    takes = set(inspect.signature(type(opt)).parameters) - {"params", "foreach", "fused"}
    groups = [{k: v for k, v in g.items() if k == "params" or k in takes} for g in opt.param_groups]
    defaults = {k: v for k, v in opt.defaults.items() if k in takes}
    return type(opt)(groups, **defaults, foreach=True if impl == "foreach" else None,
                     fused=True if impl == "fused" else None)


def preset_step(name: str, device: torch.device, switch: str = "default", cfg=None):
    """The preset's family (or `cfg`'s, a RunConfig in place of the preset) and a step function
    over one fixed batch of its shape, under `switch` (one of SWITCHES). The family's weights come
    from torch's global seed, set here, so every switch starts from the same network."""
    from engine.core.config import load_preset
    from engine.family.base import Batch, StepContext, build_family
    cfg = cfg or load_preset(name)
    channels = 1 if cfg.data.dataset in ("digits", "faces") else 3
    res, bs = cfg.data.resolution, cfg.training.batch_size
    torch.manual_seed(0)
    fam = build_family(cfg, channels, res, [str(i) for i in range(10)]).to(device)
    if switch == "channels-last":
        fam.networks.to(memory_format=torch.channels_last)
    optimizers = fam.make_optimizers()
    if switch in ("foreach", "fused"):
        optimizers = {k: with_implementation(o, switch) for k, o in optimizers.items()}
    ctx = StepContext(device, torch.Generator(device=device).manual_seed(0), optimizers,
                      grad_clip=cfg.training.grad_clip)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(bs, channels, res, res, generator=g) * 2 - 1).to(device)
    if switch == "channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
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


def steps_per_s(step, steps: int, device: torch.device) -> tuple[float, float]:
    """(steps per wall second, steps per CPU second of this process): on a CPU shared with other
    jobs the CPU seconds are the steadier measure (with one torch thread nothing spins)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def first_loss(logs: dict) -> float:
    """The first loss a training step logs ("loss/..."), as a number."""
    return float(next(v for k, v in logs.items() if k.startswith("loss/")).detach())


def measure_switches(name: str, device: torch.device, steps: int, rounds: int) -> list[dict]:
    """Steps/s of each switch's copy of the preset, rounds interleaved (the order reversed every
    other round), as medians and ratios to the default path; with the first steps' losses, which
    agree across switches to float rounding (the same weights, batch and generator)."""
    runs = {}
    for sw in SWITCHES:
        cfg, fam, step = preset_step(name, device, sw)
        losses = [first_loss(step()) for _ in range(3)]   # also the warm-up
        runs[sw] = {"step": step, "losses": losses, "rates": []}
    for r in range(rounds):
        for sw in (SWITCHES if r % 2 == 0 else SWITCHES[::-1]):
            runs[sw]["rates"].append(steps_per_s(runs[sw]["step"], steps, device))
    rows = []
    for sw in SWITCHES:
        row = {"preset": name, "switch": sw, "first_losses": [round(v, 6) for v in runs[sw]["losses"]]}
        for k, clock in ((0, "wall"), (1, "cpu")):
            rates = [v[k] for v in runs[sw]["rates"]]
            base = [v[k] for v in runs["default"]["rates"]]
            row[clock] = {"img_per_s": round(cfg.training.batch_size * statistics.median(rates), 1),
                          "ratio_to_default": round(statistics.median(rates) / statistics.median(base), 3),
                          "ratio_per_round": [round(a / b, 3) for a, b in zip(rates, base)],
                          # robust to load drifting between rounds: each round's ratio, then their median
                          "median_of_round_ratios": round(statistics.median(a / b for a, b in zip(rates, base)), 3)}
        rows.append(row)
    return rows


# operator name -> what kind of work (first match); the first two are what the FLOP count covers
OP_KINDS = (("convolution", ("conv", "mkldnn_convolution")),
            ("matmul", ("addmm", "aten::mm", "bmm", "baddbmm", "matmul", "linear", "scaled_dot_product")),
            ("normalisation", ("group_norm", "layer_norm", "batch_norm", "native_norm")),
            ("optimizer", ("adam", "_foreach", "addcdiv", "addcmul", "lerp", "sqrt", "clip_grad", "norm")),
            ("copies and layout", ("copy_", "cat", "contiguous", "clone", "to_dense", "reorder", "empty", "zero_",
                                   "fill_", "stack", "view", "reshape", "permute", "transpose", "slice")))


def op_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in OP_KINDS if any(k in low for k in keys)), "elementwise and other")


def profile_preset(name: str, device: torch.device, steps: int, top: int = 12) -> dict:
    """Self CPU time per operator over `steps` training steps (after warm-up), the top ones and
    the split by kind of work, in ms per step; with the step's FLOPs per CPU second of the whole
    step and of its convolution and matmul kernels alone."""
    from torch.profiler import ProfilerActivity, profile
    cfg, fam, step = preset_step(name, device)
    for _ in range(3):
        step()
    with FlopCount() as counter:
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = {}
    for e in events:
        kinds[op_kind(e.key)] = kinds.get(op_kind(e.key), 0.0) + e.self_cpu_time_total
    events.sort(key=lambda e: -e.self_cpu_time_total)
    ms = lambda us: round(us / 1e3 / steps, 2)   # noqa: E731  (profiler times are in microseconds)
    kernels = kinds.get("convolution", 0.0) + kinds.get("matmul", 0.0)
    return {"preset": name, "steps": steps, "self_cpu_ms_per_step": ms(total),
            "gflop_per_step": round(counter.total / 1e9, 3),
            "gflop_per_cpu_s": round(counter.total * steps / total / 1e3, 2),
            "gflop_per_cpu_s_in_conv_and_matmul": round(counter.total * steps / kernels / 1e3, 2),
            "kinds": {k: {"ms_per_step": ms(v), "share": round(v / total, 3)}
                      for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top": [{"op": e.key, "kind": op_kind(e.key), "ms_per_step": ms(e.self_cpu_time_total),
                     "share": round(e.self_cpu_time_total / total, 3), "calls_per_step": e.count // steps}
                    for e in events[:top]]}


def main_profile(a, device: torch.device) -> None:
    peak = matmul_rate(device, clock=time.process_time)
    results = [profile_preset(name, device, a.steps) for name in a.presets]
    print(f"\nfloat32 {MATMUL_N}³ matmul: {peak:.1f} GFLOP per CPU second")
    for r in results:
        r["ratio_to_matmul"] = round(r["gflop_per_cpu_s"] / peak, 3)
        r["conv_and_matmul_ratio_to_matmul"] = round(r["gflop_per_cpu_s_in_conv_and_matmul"] / peak, 3)
        print(f"\n{r['preset']}: {r['self_cpu_ms_per_step']} ms of self CPU time per step, {r['gflop_per_step']} GFLOP: "
              f"{r['gflop_per_cpu_s']} GFLOP/CPU-s ({r['ratio_to_matmul']} of matmul); in its convolution and "
              f"matmul kernels alone {r['gflop_per_cpu_s_in_conv_and_matmul']} ({r['conv_and_matmul_ratio_to_matmul']})")
        for kind, v in r["kinds"].items():
            print(f"  {kind:24} {v['ms_per_step']:8.1f} ms  {100 * v['share']:5.1f} %")
        for t in r["top"]:
            print(f"  {t['op']:40} {t['ms_per_step']:8.1f} ms  {100 * t['share']:5.1f} %  {t['calls_per_step']:4d} calls  ({t['kind']})")
    write_result(f"efficiency_profile_{device.type}", {"threads": torch.get_num_threads(),
                                                       "matmul_gflop_per_cpu_s": round(peak, 1), "presets": results})


def main_switches(a, device: torch.device) -> None:
    rows = [row for name in a.presets for row in measure_switches(name, device, a.steps, a.rounds)]
    print(f"\n{'preset':16} {'switch':14} {'img/s':>8} {'ratio':>6} {'by round':>8} {'img/CPU-s':>9} {'ratio':>6} "
          f"{'by round':>8}  per round (wall; cpu)")
    for r in rows:
        w, c = r["wall"], r["cpu"]
        print(f"{r['preset']:16} {r['switch']:14} {w['img_per_s']:8.1f} {w['ratio_to_default']:6.3f} "
              f"{w['median_of_round_ratios']:8.3f} {c['img_per_s']:9.1f} {c['ratio_to_default']:6.3f} "
              f"{c['median_of_round_ratios']:8.3f}  {w['ratio_per_round']}; {c['ratio_per_round']}  losses {r['first_losses']}")
    write_result(f"efficiency_switches_{device.type}", {"steps_per_round": a.steps, "rounds": a.rounds,
                                                       "threads": torch.get_num_threads(), "rows": rows})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--switches", action="store_true",
                   help="time the speed switches (optimizer implementation, channels-last) against the default path")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of --switches")
    p.add_argument("--profile", action="store_true", help="top operators by self CPU time (torch.profiler)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default); 1 on a shared, loaded machine")
    a = p.parse_args()
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.profile:
        if a.presets == list(DEFAULT_PRESETS):
            a.presets = ["ddpm-digits"]
        main_profile(a, device)
        return
    if a.switches:
        if a.presets == list(DEFAULT_PRESETS):
            a.presets = ["ddpm-digits", "vae-digits"]
        main_switches(a, device)
        return
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
