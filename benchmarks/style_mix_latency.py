"""Style-mixing canvas latency: a 5x5 grid (plus its source row and column) at 32x32 from the
stylegan-shapes model, re-rendered through a real `genlab-engine worker` process the way the canvas
drives it (JSON request in, PNG path out). Reports the engine's own time and the round trip the
canvas sees (request written -> result line read), median and 90th percentile. Goal: < 100 ms.

    python benchmarks/style_mix_latency.py [--checkpoint CKPT] [--renders 40] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result

import numpy as np


def make_checkpoint(folder: Path) -> str:
    """The preset's architecture after a few steps: latency does not depend on training."""
    from engine.core.config import load_preset
    from engine.training.loop import train
    cfg = load_preset("stylegan-shapes").replace(training={"steps": 2, "checkpoint_every": 0, "sample_every": 0},
                                                 metrics={"every": 0})
    r = train(cfg, folder / "run", emit=lambda e: None)
    return str(r.last_checkpoint)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint")
    p.add_argument("--renders", type=int, default=40)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    ckpt = a.checkpoint or make_checkpoint(tmp)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-u", "-m", "engine", "worker", "--device", a.device,
                             "--cache-dir", str(tmp / "cache")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)

    def send(req: dict) -> dict:
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        while True:
            ev = json.loads(proc.stdout.readline())
            if ev.get("id") == req["id"] and ev["event"] in ("result", "ready", "error"):
                if ev["event"] == "error":
                    raise SystemExit(ev["message"])
                return ev

    send({"id": 0, "op": "load", "checkpoint": ckpt})
    engine_ms, trip_ms = [], []
    for i in range(1, a.renders + 1):
        psi = 0.5 + 0.5 * (i % 10) / 10  # a slider drag: every render differs
        t0 = time.perf_counter()
        ev = send({"id": i, "op": "mix", "rows": [1, 2, 3, 4, 5], "cols": [6, 7, 8, 9, 10], "layers": [0, 1, 2, 3],
                   "options": {"truncation_psi": psi, "noise_mode": "const"}})
        if i > 3:  # the first renders warm up
            trip_ms.append((time.perf_counter() - t0) * 1000)
            engine_ms.append(ev["elapsed_s"] * 1000)
    proc.stdin.close()  # end of input: the worker quits
    proc.wait(timeout=30)

    def stats(v):
        return {"median_ms": round(float(np.median(v)), 1), "p90_ms": round(float(np.percentile(v, 90)), 1)}
    write_result("style_mix_latency" + ("_cuda" if a.device == "cuda" else ""),
                 {"grid": "5x5 cells + sources (35 images) at 32x32", "renders": len(trip_ms),
                  "engine": stats(engine_ms), "round_trip": stats(trip_ms), "goal_ms": 100,
                  "meets_goal": bool(np.median(trip_ms) < 100)})


if __name__ == "__main__":
    main()
