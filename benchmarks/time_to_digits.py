"""Time to recognisable digits with a digits preset (default ddpm-digits), headless, on this machine.

"Recognisable" is measured, not eyeballed: a classifier trained on the real 16x16 digits labels each
generated image of the class-conditional sample grid, and we report how often it agrees with the
digit that was asked for (column k of the grid is digit k). Real held-out digits score ~97%.

For an unconditional preset (dcgan-digits) no digit is asked for, so the score is the share of
images the classifier reads with >= 80% confidence (real held-out digits: printed alongside).

    python benchmarks/time_to_digits.py [--preset ddpm-digits] [--steps 1500] [--threshold 0.9]
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

from common import RESULTS, ROOT, write_result

import numpy as np
from PIL import Image


def digit_classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from engine.core.config import DataConfig
    from engine.data import build_dataset
    d = build_dataset(DataConfig(dataset="digits", resolution=16))
    X = d.images.reshape(len(d), -1).numpy() / 255.0
    y = d.labels.numpy()
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    part = LogisticRegression(max_iter=3000, C=0.5).fit(Xa, ya)
    held_out = part.score(Xb, yb)
    held_out_confident = float((part.predict_proba(Xb).max(1) >= 0.8).mean())
    return LogisticRegression(max_iter=3000, C=0.5).fit(X, y), held_out, held_out_confident


def grid_tiles(path: Path, res: int = 16, ncol: int = 10, pad: int = 1) -> np.ndarray:
    a = np.asarray(Image.open(path).convert("L"), np.float64) / 255.0
    nrow = (a.shape[0] - pad) // (res + pad)
    tiles = [a[pad + r * (res + pad):pad + r * (res + pad) + res, pad + c * (res + pad):pad + c * (res + pad) + res]
             for r in range(nrow) for c in range(ncol)]
    return np.stack(tiles).reshape(len(tiles), -1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--preset", default="ddpm-digits")
    a = p.parse_args()
    from engine.core.config import load_preset
    conditional = bool(getattr(load_preset(a.preset).model, "class_conditional", False))
    clf, real_acc, real_conf = digit_classifier()
    run = Path(tempfile.mkdtemp(prefix="genlab-ttd-")) / "run"
    cmd = [sys.executable, "-m", "engine", "train", "--preset", a.preset, "--run-dir", str(run), "--no-stdin"]
    if a.steps:
        cmd += ["--steps", str(a.steps)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    grids = []
    for line in proc.stdout:
        ev = json.loads(line) if line.startswith("{") else {}
        if ev.get("event") == "sample":
            t = time.perf_counter() - t0
            tiles = grid_tiles(Path(ev["path"]))
            if conditional:
                acc = float((clf.predict(tiles) == np.arange(len(tiles)) % 10).mean())
            else:
                acc = float((clf.predict_proba(tiles).max(1) >= 0.8).mean())
            grids.append({"step": ev["step"], "wall_s": round(t, 1), "classifier_agreement": round(acc, 3),
                          "path": ev["path"]})
            print(f"step {ev['step']:5d}  {t:6.1f}s  agreement {acc:.0%}", flush=True)
    proc.wait()
    first = next((g for g in grids if g["classifier_agreement"] >= a.threshold), None)
    out_dir = ROOT / "docs" / "images"
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = first or grids[-1]
    img = Image.open(shown["path"])
    stem = "digits" if a.preset == "ddpm-digits" else a.preset
    img.resize((img.width * 4, img.height * 4), Image.NEAREST).save(out_dir / f"{stem}_samples.png")
    within = [g for g in grids if g["wall_s"] <= 300] or grids[:1]
    five = Image.open(within[-1]["path"])  # the newest grid written within 5 minutes of pressing Train
    five.resize((five.width * 4, five.height * 4), Image.NEAREST).save(out_dir / f"{stem}_samples_5min.png")
    write_result("time_to_digits" + ("" if a.preset == "ddpm-digits" else f"_{a.preset}"), {
        "preset": a.preset, "score": "classifier agrees with the asked digit" if conditional else
        "classifier confidence >= 0.8", "threshold": a.threshold, "real_digits_classifier_accuracy": round(real_acc, 3),
        "real_digits_confident_share": round(real_conf, 3),
        "first_recognisable": {k: v for k, v in (first or {}).items() if k != "path"},
        "last_grid_within_5_min": {k: v for k, v in within[-1].items() if k != "path"},
        "total_wall_s": round(time.perf_counter() - t0, 1), "exit_code": proc.returncode,
        "grids": [{k: v for k, v in g.items() if k != "path"} for g in grids]})


if __name__ == "__main__":
    main()
