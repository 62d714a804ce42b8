"""Likelihood families after a fixed CPU budget: each preset trains as Train would run it (its own
steps and learning-rate schedule), stopped after `--budget` seconds of wall time if it has not
finished by then (through its control file, as the GUI's Stop does), and its last checkpoint is
scored: bits/dim on the run's held-out images (`genlab-engine eval --metrics bpd`),
sampling images/s (16 images in this process, the model loaded), parameter count; 50 images are
sampled with the preset's own sampling options and, for a digits preset, read by the digit
classifier of time_to_digits.py: the share that agrees with the asked digit (class-conditional
presets: image i asks for digit i mod 10) or, unconditional, the share read with >= 80 %
confidence (real held-out digits are scored the same way, for reference). One preset at a time,
so each has the CPU to itself.

    python benchmarks/likelihood_families.py [--presets vae-digits,hvae-digits,...] [--budget 300]
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
from time_to_digits import digit_classifier

import numpy as np
from PIL import Image

PRESETS = "vae-digits,cvae-digits,hvae-digits,glow-digits,pixelcnn-digits,realnvp-shapes"

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def engine(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=timeout)


def measure(preset: str, budget: float, folder: Path, classifier) -> dict:
    run = folder / preset
    # the preset's own steps (a learning rate held at its peak for longer than the preset plans is not
    # what Train gives); no evaluation passes or grids inside the budget
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--preset", preset, "--run-dir", str(run),
                             "--no-stdin", "--set", "metrics.every=0",
                             "--set", "training.checkpoint_every=500", "--set", "training.sample_every=0"],
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
    train_s = time.perf_counter() - t0
    (run / "control").write_text("stop\n")
    proc.communicate(timeout=600)
    status = json.loads((run / "status.json").read_text())
    ckpts = sorted((run / "checkpoints").glob("step_*.safetensors"))
    if status["state"] == "failed" or not ckpts:  # (a NaN keeps the last good checkpoint: scored, and said)
        print(f"{preset}: the run failed at step {status['step']}: {status['message']}", flush=True)
        if not ckpts:
            return {"preset": preset, "failed": status["message"], "steps": status["step"]}
    ckpt = ckpts[-1]
    ev = engine("eval", "--checkpoint", str(ckpt), "--metrics", "bpd", "--n", "500")
    scores = json.loads([l for l in ev.stdout.splitlines() if '"result"' in l][-1])
    s = engine("sample", "--checkpoint", str(ckpt), "--n", "50", "--out", str(run / "grid.png"))
    assert s.returncode == 0, s.stderr
    sample_s = time_sampling(ckpt, 16)
    return {"preset": preset, "params": params, "steps": last.get("step"), "train_s": round(train_s, 1), "engine_elapsed_s": last.get("elapsed_s"),
            "checkpoint_step": int(ckpt.stem.split("_")[1]), "run_state": status["state"],
            **digit_scores(preset, run / "grid_images", classifier),
            "train_loss": {k: round(v, 4) for k, v in last.items() if k.startswith("loss/")},
            "bits_per_dim_heldout": round(scores["bits_per_dim"], 4), "bpd_images": scores["bpd_images"],
            "bpd_split": scores["bpd_split"], "sample_img_per_s": round(16 / sample_s, 2),
            "grid": str(run / "grid.png")}


def digit_scores(preset: str, images: Path, classifier) -> dict:
    """How the digit classifier reads the 50 sampled images (one PNG each, in seed order)."""
    from engine.core.config import load_preset
    cfg = load_preset(preset)
    if cfg.data.dataset != "digits":
        return {}
    clf, real_acc, real_confident = classifier
    files = sorted(images.glob("*.png"))
    tiles = np.stack([np.asarray(Image.open(f).convert("L").resize((16, 16)), np.float64).ravel() / 255.0
                      for f in files])
    if getattr(cfg.model, "class_conditional", False):
        score, what, real = float((clf.predict(tiles) == np.arange(len(tiles)) % 10).mean()), "agrees with the asked digit", real_acc
    else:
        score, what, real = float((clf.predict_proba(tiles).max(1) >= 0.8).mean()), "read with >= 80 % confidence", real_confident
    return {"digits_read": round(score, 3), "digits_score": what, "real_digits_same_score": round(real, 3),
            "temperature": getattr(cfg.sampling, "temperature", None)}


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
    p.add_argument("--presets", default=PRESETS)
    p.add_argument("--budget", type=float, default=300.0, help="seconds of training per preset")
    a = p.parse_args()
    classifier = digit_classifier()
    folder = Path(tempfile.mkdtemp(prefix="genlab-likelihood-"))
    rows = []
    for name in a.presets.split(","):
        load = os.getloadavg()[0]
        rows.append({**measure(name, a.budget, folder, classifier), "load_average_before": round(load, 2),
                     "load_average_after": round(os.getloadavg()[0], 2)})
        print(json.dumps(rows[-1]), flush=True)
    write_result("likelihood_families", {"budget_s": a.budget, "results": rows})


if __name__ == "__main__":
    main()
