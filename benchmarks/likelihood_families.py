"""Likelihood families after a fixed CPU budget: each preset trains for `--budget` seconds of wall
time (the run is then stopped through its control file, as the GUI's Stop does), and the stopped
checkpoint is scored: bits/dim on the run's held-out images (`genlab-engine eval --metrics bpd`),
sampling images/s (16 images in this process, the model loaded), parameter count; a 50-image grid
is written for a look. One preset at a
time, so each has the CPU to itself.

    python benchmarks/likelihood_families.py [--presets vae-digits,glow-digits,pixelcnn-digits] [--budget 300]
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

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def engine(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=timeout)


def measure(preset: str, budget: float, folder: Path) -> dict:
    run = folder / preset
    # long enough that the budget, not the step count, ends the run; no evaluation passes inside it
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--preset", preset, "--run-dir", str(run),
                             "--no-stdin", "--set", "metrics.every=0", "--set", "training.steps=1000000",
                             "--set", "training.checkpoint_every=0", "--set", "training.sample_every=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    t0 = time.perf_counter()
    params, last = None, {}
    while time.perf_counter() - t0 < budget and proc.poll() is None:
        line = proc.stdout.readline()
        ev = json.loads(line) if line.startswith("{") else {}
        if ev.get("event") == "started":
            params = ev.get("params")
        elif ev.get("event") == "metrics":
            last = ev
    (run / "control").write_text("stop\n")
    proc.communicate(timeout=600)
    ckpt = sorted((run / "checkpoints").glob("step_*.safetensors"))[-1]
    ev = engine("eval", "--checkpoint", str(ckpt), "--metrics", "bpd", "--n", "500")
    scores = json.loads([l for l in ev.stdout.splitlines() if '"result"' in l][-1])
    s = engine("sample", "--checkpoint", str(ckpt), "--n", "50", "--out", str(run / "grid.png"))
    assert s.returncode == 0, s.stderr
    sample_s = time_sampling(ckpt, 16)
    return {"preset": preset, "params": params, "steps": last.get("step"), "train_s": round(budget, 1),
            "train_loss": {k: round(v, 4) for k, v in last.items() if k.startswith("loss/")},
            "bits_per_dim_heldout": round(scores["bits_per_dim"], 4), "bpd_images": scores["bpd_images"],
            "bpd_split": scores["bpd_split"], "sample_img_per_s": round(16 / sample_s, 2),
            "grid": str(run / "grid.png")}


def time_sampling(ckpt: Path, n: int) -> float:
    """Seconds to sample n images in this process (the model loaded first, one warm-up image)."""
    import torch
    from engine.training.checkpoint import family_from_checkpoint
    torch.set_num_threads(os.cpu_count() or 1)
    fam, _ = family_from_checkpoint(ckpt, "cpu")
    fam.sample(1, seed=0)
    t0 = time.perf_counter()
    fam.sample(n, seed=1)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="vae-digits,glow-digits,pixelcnn-digits")
    p.add_argument("--budget", type=float, default=300.0, help="seconds of training per preset")
    a = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="genlab-likelihood-"))
    rows = [measure(name, a.budget, folder) for name in a.presets.split(",")]
    write_result("likelihood_families", {"budget_s": a.budget, "results": rows})


if __name__ == "__main__":
    main()
