"""GUI responsiveness: the longest gap between ticks of a 10 ms QTimer on the GUI thread (the event
loop's worst stall) and its 99th percentile, while
  (a) the main window trains a tiny DDPM run with live plots (a metrics line every 5 steps),
  (b) the Sampling canvas fills with results (sample() again as soon as each result is shown),
  (c) the style-mixing and interpolation canvases re-render live during a scripted slider drag
      (truncation psi moved every 30 ms), with the frame rate each canvas reached and the engine's
      render time beside it.
Goals: max stall < 50 ms; during a drag, frames/s at least the render rate (one frame per round
trip, or per slider move where the slider moves slower than that: 33/s) and never zero; "met" allows
20 % below it. Everything runs offscreen with real engine processes (train job, worker).

    python benchmarks/ui_stall.py [--train-seconds 20] [--gallery-seconds 12] [--drag-seconds 5]
                                  [--checkpoint STYLEGAN_CKPT] [--engine-threads N] [--json]

--engine-threads sets OMP_NUM_THREADS for the engine processes (default: torch's own choice, as the
app runs them); on a shared, oversubscribed CPU one thread renders far faster than two.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import write_result  # noqa: E402  (puts the repository on sys.path)

import numpy as np  # noqa: E402
from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

STALL_GOAL_MS = 50.0
TICK_MS = 10
DRAG_PERIOD_MS = 30


# ---- the event loop, driven and measured ------------------------------------------------------
def spin(seconds: float) -> None:
    """Run the event loop for `seconds` (idle, not a busy loop)."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_until(ready, timeout_s: float, what: str) -> None:
    """Run the event loop until ready() (polled every 50 ms); SystemExit naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        spin(0.05)


class StallMeter:
    """Ticks of a 10 ms timer on the GUI thread: a long gap between two ticks is the event loop stalling."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def start(self) -> None:
        self.ticks = [time.perf_counter()]
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        gaps = np.diff(self.ticks) * 1000
        return {"max_stall_ms": round(float(gaps.max()), 1), "p99_stall_ms": round(float(np.percentile(gaps, 99)), 1),
                "median_tick_ms": round(float(np.median(gaps)), 1), "ticks": len(gaps),
                "gaps_over_50ms": int((gaps > STALL_GOAL_MS).sum())}


class RenderLog:
    """What a canvas sent and was shown: send times per request id, round trips, the engine's own
    time (elapsed_s of each result), and how long the canvas took to show each result."""

    def __init__(self, canvas, op: str):
        self.sent: dict[int, float] = {}
        self.round_trip_ms: list[float] = []
        self.engine_ms: list[float] = []
        self.handle_ms: list[float] = []
        request, on_result = canvas.request, canvas.on_result

        def logged_request(kind, **fields):
            rid = request(kind, **fields)
            if kind == op:
                self.sent[rid] = time.perf_counter()
            return rid

        def logged_result(ev):
            t0 = time.perf_counter()
            on_result(ev)
            if ev.get("id") in self.sent:
                self.handle_ms.append((time.perf_counter() - t0) * 1000)
                self.round_trip_ms.append((t0 - self.sent[ev["id"]]) * 1000)
                self.engine_ms.append(float(ev.get("elapsed_s", 0.0)) * 1000)

        canvas.request, canvas.on_result = logged_request, logged_result  # the base calls self.request

    def summary(self) -> dict:
        med = (lambda xs: round(statistics.median(xs), 1) if xs else None)
        p90 = round(float(np.percentile(self.round_trip_ms, 90)), 1) if self.round_trip_ms else None
        return {"engine_ms_median": med(self.engine_ms), "round_trip_ms_median": med(self.round_trip_ms),
                "round_trip_ms_p90": p90,
                "show_result_ms_max": round(max(self.handle_ms), 1) if self.handle_ms else None}


# ---- models ---------------------------------------------------------------------------------------
def tiny_ddpm_config(steps: int):
    """A DDPM small enough to log many lines a second on a CPU (the tests' tiny model)."""
    from engine.core.config import RunConfig
    return RunConfig(name="ui-stall").replace(
        data={"dataset": "digits", "resolution": 8},
        model={"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4], "timesteps": 50,
               "attention_heads": 2},
        training={"steps": steps, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5, "log_every": 5,
                  "sample_every": 100, "checkpoint_every": 0, "device": "cpu", "ema_decay": 0.9},
        sampling={"steps": 5, "grid_size": 10})


def stylegan_checkpoint(folder: Path) -> str:
    """The stylegan-shapes architecture (32x32) after two steps: render time does not depend on training."""
    from engine.core.config import load_preset
    from engine.training.loop import train
    cfg = load_preset("stylegan-shapes").replace(training={"steps": 2, "checkpoint_every": 0, "sample_every": 0},
                                                 metrics={"every": 0})
    return str(train(cfg, folder / "stylegan", emit=lambda e: None).last_checkpoint)


# ---- scenarios ------------------------------------------------------------------------------------
def training_scenario(tmp: Path, seconds: float) -> dict:
    """(a) the window trains with live plots."""
    from app.main_window import MainWindow
    w = MainWindow(runs_root=tmp / "runs")
    w.training.ask = lambda *a: "Stop and save"
    w.resize(1400, 900)
    w.show()
    cfg = tiny_ddpm_config(steps=1_000_000)
    w.model_panel.set_config(cfg)
    w.data_panel.set_config(cfg.data)
    assert w.training.start(), "the run did not start"
    wait_until(lambda: w.loss_plot.point_count() >= 2, 120, "the first metrics lines")
    points, steps = w.loss_plot.point_count(), last_step(w.training.run_dir)
    meter = StallMeter()
    meter.start()
    spin(seconds)
    stats = meter.stop()
    points, steps = w.loss_plot.point_count() - points, last_step(w.training.run_dir) - steps
    w.training.stop()
    wait_until(lambda: not w.training.job.is_running(), 60, "the run to stop")
    w.close()
    return {"scenario": "training with live plots", **stats,
            "plotted_points": points, "steps": steps,
            "note": f"{points / seconds:.1f} metrics lines/s plotted ({steps / seconds:.0f} steps/s trained)"}


def last_step(run_dir: Path) -> int:
    """The step of the newest metrics line the run wrote."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def load(session, ckpt: str) -> None:
    session.set_checkpoint(ckpt)
    wait_until(session.is_loaded, 180, "the worker to load the checkpoint")


def gallery_scenario(canvas, seconds: float) -> dict:
    """(b) the Sampling canvas fills: the next sample is asked for as soon as a result is shown."""
    canvas.resize(1200, 800)
    canvas.show()
    wait_until(lambda: canvas.capabilities is not None, 60, "the sampling canvas to get the model")
    log = RenderLog(canvas, "sample")
    results: list[float] = []
    canvas.sampled.connect(lambda _: (results.append(time.perf_counter()), QTimer.singleShot(0, canvas.sample)))
    meter = StallMeter()
    meter.start()
    canvas.sample()
    spin(seconds)
    stats = meter.stop()
    canvas.sampled.disconnect()
    wait_until(lambda: not canvas.inflight, 60, "the last sample")
    canvas.hide()
    timing = log.summary()
    return {"scenario": "sampling canvas filling", **stats, "results_shown": len(results), **timing,
            "note": f"{len(results)} results shown ({len(results) / seconds:.1f}/s); engine "
                    f"{timing['engine_ms_median']} ms each; showing one took at most {timing['show_result_ms_max']} ms"}


def drag(slider, seconds: float) -> int:
    """Move a QSlider back and forth, one step of 4 every 30 ms, as a hand drags it; returns the moves."""
    positions = [*range(slider.minimum(), slider.maximum() + 1, 4), *range(slider.maximum(), slider.minimum() - 1, -4)]
    step = iter(positions * 100)
    timer = QTimer()
    timer.setInterval(DRAG_PERIOD_MS)
    timer.timeout.connect(lambda: slider.setValue(next(step)))
    moves = []
    timer.timeout.connect(lambda: moves.append(1))
    timer.start()
    spin(seconds)
    timer.stop()
    return len(moves)


def drag_scenario(name: str, canvas, op: str, seconds: float) -> dict:
    """(c) a canvas re-renders while its psi slider is dragged: stalls, frames shown per second."""
    canvas.resize(1200, 800)
    canvas.show()
    wait_until(lambda: canvas.options is not None and "truncation_psi" in canvas.options.editors, 60,
               f"the {name} canvas to get the model")
    wait_until(lambda: not canvas.live_busy(), 60, f"the {name} canvas's first render")
    log = RenderLog(canvas, op)
    frames: list[float] = []
    canvas.rendered.connect(lambda _: frames.append(time.perf_counter()))
    meter = StallMeter()
    meter.start()
    t0 = time.perf_counter()
    moves = drag(canvas.options.editors["truncation_psi"].slider, seconds)
    during = sum(1 for t in frames if t - t0 <= seconds)
    wait_until(lambda: not canvas.live_busy(), 60, f"the {name} canvas's last frame")
    stats = meter.stop()
    canvas.hide()
    timing = log.summary()
    fps = during / seconds
    render_rate = 1000 / timing["round_trip_ms_median"] if timing["round_trip_ms_median"] else 0.0
    reachable = min(render_rate, 1000 / DRAG_PERIOD_MS)   # no more frames than the slider moves
    return {"scenario": f"{name} drag", **stats, "frames_per_s": round(fps, 1),
            "render_rate_per_s": round(render_rate, 1), "reachable_frames_per_s": round(reachable, 1),
            "slider_moves": moves, "requests_sent": len(log.sent),
            "frames_shown": len(frames), **timing,
            "note": f"{fps:.1f} frames/s during the drag; one frame per round trip = {render_rate:.1f}/s, "
                    f"per slider move {1000 / DRAG_PERIOD_MS:.1f}/s; "
                    f"engine {timing['engine_ms_median']} ms, round trip {timing['round_trip_ms_median']} ms "
                    f"(p90 {timing['round_trip_ms_p90']}); {moves} moves, {len(log.sent)} renders sent, "
                    f"{len(frames)} shown; "
                    f"showing one took at most {timing['show_result_ms_max']} ms"}


# ---- report ---------------------------------------------------------------------------------------
def table(rows: list[dict]) -> str:
    out = ["| scenario | max stall | p99 stall | ticks > 50 ms | frames/s (drag) | reachable | met? | notes |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = r["max_stall_ms"] < STALL_GOAL_MS
        if "frames_per_s" in r:
            ok = ok and r["frames_per_s"] > 0 and r["frames_per_s"] >= 0.8 * r["reachable_frames_per_s"]
        fps = f"{r['frames_per_s']}" if "frames_per_s" in r else ""
        rate = f"{r['reachable_frames_per_s']}/s" if "reachable_frames_per_s" in r else ""
        out.append(f"| {r['scenario']} | {r['max_stall_ms']} ms | {r['p99_stall_ms']} ms | {r['gaps_over_50ms']} "
                   f"| {fps} | {rate} | {'yes' if ok else 'no'} | {r['note']} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-seconds", type=float, default=20)
    p.add_argument("--gallery-seconds", type=float, default=12)
    p.add_argument("--drag-seconds", type=float, default=5)
    p.add_argument("--checkpoint", help="a style-based generator checkpoint (default: train one for 2 steps)")
    p.add_argument("--engine-threads", type=int, help="OMP_NUM_THREADS of the engine processes")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    a = p.parse_args()
    if a.engine_threads:
        os.environ["OMP_NUM_THREADS"] = str(a.engine_threads)  # inherited by the train job and the worker
    app = QApplication.instance() or QApplication([])
    app.setApplicationName("genlab-ui-stall")   # not "GenLab": a benchmark is not the person's app
    tmp = Path(tempfile.mkdtemp(prefix="genlab-ui-stall-"))
    started, load_before = time.monotonic(), os.getloadavg()[0]
    rows = [training_scenario(tmp, a.train_seconds)]

    from app.canvases.interpolation import InterpolationCanvas
    from app.canvases.sampling import SamplingCanvas
    from app.canvases.style_mixing import StyleMixCanvas
    from app.worker_session import WorkerSession
    session = WorkerSession()
    # the canvases exist before the load, as in the window: each hears the model's capabilities
    sampling, mixing, walk = SamplingCanvas(session), StyleMixCanvas(session), InterpolationCanvas(session)
    try:
        load(session, a.checkpoint or stylegan_checkpoint(tmp))
        rows.append(gallery_scenario(sampling, a.gallery_seconds))
        rows.append(drag_scenario("style-mixing", mixing, "mix", a.drag_seconds))
        rows.append(drag_scenario("interpolation", walk, "interpolate", a.drag_seconds))
    finally:
        session.shutdown()
    result = {"goal_max_stall_ms": STALL_GOAL_MS, "tick_ms": TICK_MS, "drag_period_ms": DRAG_PERIOD_MS,
              "platform": os.environ["QT_QPA_PLATFORM"], "engine_threads": a.engine_threads or "torch default",
              "total_s": round(time.monotonic() - started, 1),
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "scenarios": rows}
    if a.json:
        write_result("ui_stall", result)
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            write_result("ui_stall", result)
        print(table(rows))
        avg = result["load_average_1min"]
        print(f"\n{result['total_s']} s in all; Qt platform {result['platform']}; engine threads "
              f"{result['engine_threads']}; load average {avg['before']} -> {avg['after']}; results/ui_stall.json")


if __name__ == "__main__":
    main()
