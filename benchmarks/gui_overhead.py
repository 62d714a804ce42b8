"""GUI overhead: images/s of a run launched from the GUI (main window, live plot and sample view
running) vs the same run headless (`genlab-engine train`), interleaved, in one run.

    python benchmarks/gui_overhead.py [--steps 300] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, write_result

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def median_img_s(run: Path) -> float:
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["img_per_s"] for r in rows[2:])  # skip warm-up lines


def headless(cfg_path: Path, tmp: Path, k: int) -> float:
    run = tmp / f"headless{k}"
    subprocess.run([sys.executable, "-m", "engine", "train", "--config", str(cfg_path), "--run-dir", str(run),
                    "--no-stdin"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return median_img_s(run)


def gui(cfg, app, tmp: Path, k: int) -> float:
    from PySide6.QtCore import QEventLoop
    from app.main_window import MainWindow
    w = MainWindow(runs_root=tmp / f"gui{k}")
    w.show()
    w.model_panel.set_config(cfg)
    w.data_panel.set_config(cfg.data)
    loop = QEventLoop()
    w.training.run_ended.connect(lambda *_: loop.quit())
    assert w.training.start()
    loop.exec()
    run = w.training.run_dir
    points = w.loss_plot.point_count()
    w.close()
    assert points > 0, "the GUI plot got no points"
    return median_img_s(run)


def main():
    from PySide6.QtWidgets import QApplication
    from engine.core.config import load_preset
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    app = QApplication.instance() or QApplication([])
    cfg = load_preset("ddpm-digits").replace(training={"steps": a.steps, "sample_every": 100,
                                                       "checkpoint_every": 0})
    tmp = Path(tempfile.mkdtemp(prefix="genlab-gui-bench-"))
    cfg_path = tmp / "cfg.toml"
    cfg.save(cfg_path)
    hs, gs = [], []
    for k in range(a.rounds):
        hs.append(headless(cfg_path, tmp, k))
        gs.append(gui(cfg, app, tmp, k))
        print(f"round {k}: headless {hs[-1]:.1f} img/s, GUI {gs[-1]:.1f} img/s", flush=True)
    h, g = statistics.median(hs), statistics.median(gs)
    write_result("gui_overhead", {"steps": a.steps, "rounds": a.rounds,
                                  "headless_img_per_s": [round(v, 1) for v in hs],
                                  "gui_img_per_s": [round(v, 1) for v in gs],
                                  "ratio_gui_over_headless": round(g / h, 3)})


if __name__ == "__main__":
    main()
