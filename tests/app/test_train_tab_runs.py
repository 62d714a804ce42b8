"""Everything on the Train tab belongs to the run it shows: opening a run of another family leaves
no loss, legend, plot, readout, speed or state line of the run shown before; a run training here
shows live again when opened again. And the Training panel's controls tell the truth: paused at the
step the engine paused at, no ETA while paused, Sample now while paused, phase messages that go
once steps begin, and Stop's final grid."""
import json
import re

import pytest
from PySide6.QtCore import Qt
from test_canvas_views import FakeClient

from app.main_window import MainWindow
from app.worker_session import WorkerSession
from engine.runs.rundir import RunDir
from engine.training.loop import train
from tests.conftest import tiny_family_config

GAN_WORDS = ("loss D", "loss G", "D(real)", "d_real")


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    w.training.ask = lambda *a: "Stop and save"   # closing during a run: no dialog in tests
    w.resize(1280, 800)
    w.show()
    yield w
    w.close()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A StyleGAN run stopped at step 3 of 6 and a DDPM run finished at step 4, on disk."""
    root = tmp_path_factory.mktemp("two-runs")
    gan = train(tiny_family_config("stylegan", steps=6), root / "stylegan", until_step=3, emit=lambda e: None)
    ddpm = train(tiny_family_config("ddpm", steps=4), root / "ddpm", emit=lambda e: None)
    assert (gan.state, ddpm.state) == ("stopped", "finished")
    return root / "stylegan", root / "ddpm"


def _last_row(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in reversed(rows) if "img_per_s" in r)


def _train_tab_text(w) -> str:
    """Every text of the Train tab a person reads: panel lines, plot titles, readouts, legends."""
    tp = w.training
    parts = [tp.stats.text(), tp.ack.text(), tp.device.text(), tp.error.text(), tp.progress.text(),
             w.quality_plot.title.text(), w.quality_plot.status.text()]
    for plot in w.plots.values():
        if plot.isVisible():
            parts += [plot.readout.text(), plot.title, *getattr(plot, "legend_names", lambda: [])()]
    parts += [v.caption.text() for v in w.artifacts.views.values()]
    return " | ".join(parts)


def _open(w, qtbot, run, key):
    w.open_run(str(run))
    qtbot.waitUntil(lambda: w.loss_plot.point_count(key) >= 1, timeout=10000)
    qtbot.waitUntil(lambda: w.loss_plot.readout.text() != "", timeout=5000)   # drawn at its redraw tick


def _shows_ddpm_only(w, ddpm):
    tp, row = w.training, _last_row(ddpm)
    assert w.loss_plot.legend_names() == ["mse"] and set(w.loss_plot.series) == {"loss/mse"}
    assert w.loss_plot.readout.text().startswith("step 4: ")
    gan = w.plots["gan"]
    assert gan.isHidden() and gan.point_count() == 0 and gan.legend_names() == []
    assert tp.stats.text() == f"loss mse {row['loss/mse']:.4f} · {row['img_per_s']:.0f} img/s"
    assert tp.progress.format() == "finished (opened run) at step %v / %m" and tp.progress.value() == 4
    assert tp.ack.text() == "" and tp.error.isHidden()
    assert "samples at step 4" in w.artifacts.views["samples"].caption.text()
    text = _train_tab_text(w)
    assert not any(word in text for word in GAN_WORDS), text


def test_opening_a_run_of_another_family_leaves_nothing_of_the_run_shown_before(window, qtbot, two_runs):
    w, tp = window, window.training
    gan, ddpm = two_runs
    _open(w, qtbot, gan, "loss/D")
    qtbot.waitUntil(lambda: not w.plots["gan"].isHidden(), timeout=5000)
    row = _last_row(gan)
    assert w.loss_plot.legend_names() == ["D", "G"]
    assert tp.stats.text() == (f"loss D {row['loss/D']:.4f} · loss G {row['loss/G']:.4f} · "
                               f"{row['img_per_s']:.0f} img/s")
    assert tp.progress.format() == "stopped (opened run) at step %v / %m" and tp.progress.value() == 3
    assert tp.continue_btn.isEnabled() and tp.run_dir == gan

    _open(w, qtbot, ddpm, "loss/mse")
    _shows_ddpm_only(w, ddpm)
    assert tp.run_dir == ddpm and tp.state == "finished"   # Continue (+N steps) acts on the run shown

    _open(w, qtbot, gan, "loss/D")   # and the other way round: no "mse" stays
    assert w.loss_plot.legend_names() == ["D", "G"]
    text = _train_tab_text(w)
    assert "mse" not in text and "samples at step 3" in text, text


def test_the_quality_plot_tells_the_plan_of_the_run_shown_and_before_any_the_panels_plan(window, qtbot, two_runs):
    w = window
    q = w.quality_plot
    w.model_panel.metrics_form.editors["every"].setValue(600)   # before a run: the Model panel's plan
    assert "every 600 steps, next at step 600" in q.title.text()
    assert "FD-domain" in q.title.text() and "FID" not in q.title.text()   # no Inception weights here
    gan, _ = two_runs
    w.open_run(str(gan))   # a run that scores nothing: its plan, not the panel's
    assert "off" in q.title.text()


def test_a_run_training_here_and_another_opened_meanwhile_each_show_their_own(window, qtbot, two_runs):
    """Trains a StyleGAN from the window, opens the DDPM run meanwhile, opens the training run again
    (live), pauses it (the bar and the message name one step, no ETA), samples while paused, stops
    it (its final grid), and opens the DDPM run again: nothing of the StyleGAN run stays."""
    w, tp = window, window.training
    _, ddpm = two_runs
    cfg = tiny_family_config("stylegan", steps=100000, log_every=1)
    tp.config_provider = lambda: cfg
    assert tp.start()
    live = tp.run_dir
    qtbot.waitUntil(lambda: w.loss_plot.point_count("loss/D") >= 3 and tp.state == "running", timeout=240000)
    assert "loss D" in tp.stats.text()
    assert "…" not in tp.ack.text()   # the phases ("loading data…", "building the model…") went with the steps

    _open(w, qtbot, ddpm, "loss/mse")
    qtbot.wait(600)   # the StyleGAN run keeps logging meanwhile
    assert "loss D" not in tp.stats.text() and tp.stats.text().startswith("loss mse")
    assert w.loss_plot.legend_names() == ["mse"] and w.plots["gan"].isHidden()
    assert "trains meanwhile" in tp.ack.text() and live.name in tp.ack.text()
    assert not tp.pause_btn.isEnabled() and not tp.stop_btn.isEnabled() and not tp.start_btn.isEnabled()

    w.open_run(str(live))   # the training run again: live
    qtbot.waitUntil(lambda: "loss D" in tp.stats.text() and "ETA" in tp.stats.text(), timeout=30000)
    assert tp.pause_btn.isEnabled() and tp.progress.format() == "step %v / %m"
    qtbot.mouseClick(tp.pause_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: tp.state == "paused", timeout=30000)
    paused_at = int(re.search(r"paused at step (\d+)", tp.ack.text()).group(1))
    assert tp.progress.value() == paused_at and tp.progress.format() == "paused at step %v / %m"
    assert "ETA" not in tp.stats.text() and tp.stats.text().endswith("paused")

    qtbot.mouseClick(tp.sample_btn, Qt.LeftButton)   # while paused: drawn at once, still paused
    qtbot.waitUntil(lambda: tp.ack.text() == f"sample grid at step {paused_at}", timeout=30000)
    assert tp.state == "paused" and RunDir(live).sample_path(paused_at).exists()

    qtbot.mouseClick(tp.stop_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: tp.state == "stopped", timeout=60000)
    assert RunDir(live).sample_path(paused_at).exists() and tp.ack.text() == f"stopped at step {paused_at}"

    _open(w, qtbot, ddpm, "loss/mse")
    _shows_ddpm_only(w, ddpm)
    assert tp.run_dir == ddpm and tp.start_btn.isEnabled()


def test_stop_writes_the_final_grid_and_the_tab_shows_it(window, qtbot):
    w, tp = window, window.training
    cfg = tiny_family_config("ddpm", steps=100000, log_every=1, sample_every=1000)
    tp.config_provider = lambda: cfg
    assert tp.start()
    qtbot.waitUntil(lambda: w.loss_plot.point_count() >= 3 and tp.state == "running", timeout=240000)
    qtbot.mouseClick(tp.stop_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: tp.state == "stopped", timeout=60000)
    step = json.loads((tp.run_dir / "status.json").read_text())["step"]
    assert RunDir(tp.run_dir).sample_path(step).exists()
    qtbot.waitUntil(lambda: w.artifacts.views["samples"].caption.text() == f"samples at step {step}", timeout=5000)


# ---- the pieces, without an engine -----------------------------------------------------------------
def test_a_cleared_loss_plot_keeps_no_curve_legend_readout_or_log_choice_of_the_run_before(qtbot):
    from app.panels.plots_panel import LossPlot
    plot = LossPlot(keys=("loss/",), title="loss", log=True)
    qtbot.addWidget(plot)
    plot.add_rows([{"step": s, "loss/D": -0.5, "loss/G": 1.0} for s in (1, 2)])   # a hinge loss: no log axis
    qtbot.waitUntil(lambda: plot.readout.text() != "", timeout=2000)
    assert plot.legend_names() == ["D", "G"] and not plot.log.isChecked()
    plot.clear()
    assert plot.legend_names() == [] and plot.series == {} and plot.readout.text() == "" and plot.log.isChecked()
    assert not [item for item in plot.plot.getPlotItem().listDataItems()]
    plot.add_rows([{"step": 1, "loss/mse": 0.3}])
    assert plot.legend_names() == ["mse"]


def test_the_quality_plan_names_what_the_passes_will_log():
    from app.panels.plots_panel import planned_labels
    assert planned_labels(["fid", "kid", "pr", "is", "bpd"], domain=False) == ["FID", "KID", "precision", "recall",
                                                                               "IS"]
    assert planned_labels(["fid", "kid", "pr"], domain=True) == ["FD-domain", "KID-domain", "precision-domain",
                                                                 "recall-domain"]


def test_a_long_phase_message_is_elided_and_never_widens_the_panel(qtbot, tmp_path):
    from app.panels.training_panel import TrainingPanel
    tp = TrainingPanel(tmp_path, lambda: None)
    qtbot.addWidget(tp)
    tp.resize(700, 200)
    tp.show()
    before = tp.minimumSizeHint().width()
    long = "restoring " + "/a-long-folder-name" * 30 + "/step_000049.safetensors"
    tp.state = "running"   # a phase while running goes to the message line only
    tp.shown = tp._driven = tmp_path
    tp._on_event({"event": "phase", "what": long, "step": 49})
    assert tp.ack.text() == long + "…" and tp.ack.toolTip() == long + "…"
    assert tp.minimumSizeHint().width() == before and tp.width() == 700
    tp._on_event({"event": "metrics", "step": 50, "total_steps": 100, "loss/mse": 0.1, "img_per_s": 60.0,
                  "eta_s": 50.0})
    assert tp.ack.text() == ""   # steps began: the phase is over
    tp.state = "idle"
