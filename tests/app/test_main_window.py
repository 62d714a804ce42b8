"""The window driven as a person would: click Start, watch the plot and the samples, click Stop."""
from PySide6.QtCore import Qt
import json

import pytest
from PIL import Image

from app.main_window import MainWindow
from engine.runs.rundir import RunDir
from tests.conftest import tiny_config


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.training.ask = lambda *a: "Stop and save"   # closing during a run: no dialog in tests
    w.show()
    yield w
    w.close()


def _use(window, cfg):
    window.model_panel.set_config(cfg)
    window.data_panel.set_config(cfg.data)


def test_opens_on_digits_and_default_preset(window, qtbot):
    assert window.data_panel.combo.currentData() == "digits"
    assert window.model_panel.preset.currentData() == "ddpm-digits"
    cfg = window.build_config()
    assert cfg is not None and cfg.name == "ddpm-digits" and cfg.data.resolution == 16
    # the data preview comes from an engine process, and the panel shows the count
    qtbot.waitUntil(lambda: "1,797 images" in window.data_panel.info.text(), timeout=60000)
    assert window.data_panel.preview.has_image()


def test_start_plots_loss_shows_samples_and_stop_ends_engine(window, qtbot):
    _use(window, tiny_config(training={"steps": 100000, "log_every": 2, "sample_every": 10, "checkpoint_every": 0}))
    qtbot.mouseClick(window.training.start_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.loss_plot.point_count() >= 3, timeout=90000)
    qtbot.waitUntil(lambda: "step_000010" in window.artifacts.views["samples"].image.path, timeout=60000)
    assert window.training.state == "running"
    assert "device: cpu" in window.training.device.text()
    assert "img/s" in window.training.stats.text()
    assert not window.training.start_btn.isEnabled() and window.training.stop_btn.isEnabled()

    qtbot.mouseClick(window.training.pause_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.training.state == "paused", timeout=20000)
    assert window.training.pause_btn.text() == "Resume"
    qtbot.mouseClick(window.training.pause_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.training.state == "running", timeout=20000)

    qtbot.mouseClick(window.training.stop_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.training.job.is_running(), timeout=30000)
    qtbot.waitUntil(lambda: window.training.state == "stopped", timeout=5000)
    rd = RunDir(window.training.run_dir)
    assert json.loads(rd.status_path.read_text())["state"] == "stopped"
    assert rd.latest_checkpoint() is not None
    assert window.training.start_btn.isEnabled()
    assert window.canvases["sample"].ckpt.text().endswith(".safetensors")  # the canvas is offered the new checkpoint


def test_quality_metric_point_appears_during_training(window, qtbot):
    _use(window, tiny_config(training={"steps": 20, "log_every": 5, "checkpoint_every": 0},
                             metrics={"every": 10, "samples": 40, "sampling_steps": 3, "domain_steps": 20}))
    assert window.training.start()
    qtbot.waitUntil(lambda: window.quality_plot.point_count() >= 1, timeout=120000)
    assert "FD-domain" in window.quality_plot.title.text()
    assert "fd_domain" in window.quality_plot.status.text()
    qtbot.waitUntil(lambda: not window.training.job.is_running(), timeout=60000)
    assert window.quality_plot.point_count() == 2


def test_engine_error_and_crash_leave_gui_running(window, qtbot, tmp_path):
    # a dataset folder that does not exist: the engine exits with a clear message
    cfg = tiny_config(data={"dataset": "folder", "path": str(tmp_path / "missing")})
    _use(window, cfg)
    assert window.training.start()
    qtbot.waitUntil(lambda: window.training.state == "failed", timeout=60000)
    assert "folder not found" in window.training.error.text()
    assert window.training.start_btn.isEnabled()

    # the engine process killed mid-run: the GUI shows it and offers to resume
    _use(window, tiny_config(training={"steps": 100000, "checkpoint_every": 5, "log_every": 5}))
    assert window.training.start()
    qtbot.waitUntil(lambda: RunDir(window.training.run_dir).latest_checkpoint() is not None, timeout=90000)
    window.training.job.proc.kill()
    qtbot.waitUntil(lambda: window.training.state == "failed", timeout=20000)
    assert "crashed" in window.training.error.text() or "exited" in window.training.error.text()
    assert window.training.continue_btn.isEnabled()       # continue from the last checkpoint
    qtbot.mouseClick(window.training.continue_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.training.state == "running", timeout=60000)
    window.training.job.kill(wait_ms=10000)   # only cleanup: a graceful stop would save and draw a grid first


def test_bad_field_is_named_and_nothing_starts(window):
    window.model_panel.model_form.editors["channel_mults"].setText("1, 2, 2, 2, 2, 2")
    assert window.training.start() is False
    assert "data.resolution = 16 must be divisible by 32" in window.model_panel.error.text()
    assert not window.training.job.is_running()


def test_data_panel_folder_with_bad_files(window, qtbot, tmp_path):
    folder = tmp_path / "pics"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (50 * i, 0, 0)).save(folder / "a" / f"{i}.png")
        Image.new("RGB", (20, 20), (0, 50 * i, 0)).save(folder / "b" / f"{i}.jpg")
    (folder / "b" / "broken.png").write_bytes(b"nope")
    window.data_panel.set_folder(str(folder))
    qtbot.waitUntil(lambda: "6 images" in window.data_panel.info.text(), timeout=60000)
    assert "2 classes" in window.data_panel.info.text()
    assert "skipped 1 of 7" in window.data_panel.info.text() and "broken.png" in window.data_panel.info.text()
    cfg = window.build_config()
    assert cfg.data.dataset == "folder" and cfg.data.path == str(folder)


def test_gan_run_plots_both_losses_and_d_scores_then_canvases_get_the_model(window, qtbot):
    from tests.engine.test_gan import gan_config
    window.model_panel.family.setCurrentText("stylegan")         # the Network form follows the family
    assert "w_dim" in window.model_panel.model_form.editors
    assert "channel_mults" not in window.model_panel.model_form.editors
    _use(window, gan_config("stylegan", augment="ada").replace(training={"steps": 24, "log_every": 2,
                                                                         "checkpoint_every": 0}))
    assert window.build_config().model.family == "stylegan"
    gan_plot, mix = window.plots["gan"], window.canvases["style-mixing"]
    assert gan_plot.isHidden()
    assert window.training.start()
    qtbot.waitUntil(lambda: window.loss_plot.point_count("loss/G") >= 2, timeout=90000)
    assert window.loss_plot.point_count("loss/D") >= 2
    assert "loss D" in window.training.stats.text() and "loss G" in window.training.stats.text()
    qtbot.waitUntil(lambda: gan_plot.point_count("gan/ada_p") >= 2, timeout=30000)
    assert not gan_plot.isHidden() and gan_plot.point_count("gan/d_real") >= 2
    qtbot.waitUntil(lambda: window.training.state == "finished", timeout=90000)
    window.show_tab("style-mixing")
    qtbot.waitUntil(lambda: len(mix.layer_checks) == 6, timeout=60000)
    assert all(window.tabs.isTabEnabled(i) for i in range(window.tabs.count()))
    with qtbot.waitSignal(mix.rendered, timeout=60000):
        mix.render()


def _rows(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]


def test_stop_then_continue_longer_gives_one_continuous_history_and_start_asks_first(window, qtbot):
    _use(window, tiny_config(training={"steps": 100000, "log_every": 2, "checkpoint_every": 0}))
    tp = window.training
    assert not tp.continue_btn.isEnabled()                     # nothing to continue yet
    qtbot.mouseClick(tp.start_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.loss_plot.point_count() >= 2, timeout=90000)
    qtbot.mouseClick(tp.save_btn, Qt.LeftButton)
    assert tp.ack.text() == "saving a checkpoint…"               # acknowledged at once
    qtbot.waitUntil(lambda: tp.ack.text().startswith("saved step"), timeout=30000)
    qtbot.mouseClick(tp.stop_btn, Qt.LeftButton)
    assert tp.ack.text() == "stopping…" and not tp.stop_btn.isEnabled()
    qtbot.waitUntil(lambda: tp.state == "stopped", timeout=30000)
    stopped_at = json.loads((tp.run_dir / "status.json").read_text())["step"]
    assert tp.progress.value() == stopped_at and "ETA" not in tp.stats.text()
    assert tp.continue_btn.isEnabled()
    run = tp.run_dir
    # Start on a stopped run asks; "Cancel" starts nothing
    asked = []
    tp.ask = lambda title, text, choices: asked.append((text, choices)) or "Cancel"
    assert tp.start() is False and "Continue it" in asked[0][0] and not tp.job.is_running()
    # Continue for 6 more steps than planned: the same run directory, one history without gaps
    tp.ask = lambda *a: "Continue"
    tp.planned_steps = lambda: stopped_at   # as if the plan had ended where it stopped: +6 goes 6 further
    tp.more_steps.setValue(6)
    assert tp.start() is True and tp.run_dir == run
    tp.ask = lambda *a: "Stop and save"
    try:
        qtbot.waitUntil(lambda: tp.state == "finished", timeout=120000)
    finally:
        print("STATE", tp.state, tp.progress.format(), tp.stats.text(), tp.ack.text(), tp.error.text(), tp.job.stderr_tail())
    steps = [r["step"] for r in _rows(run)]
    assert steps == sorted(set(steps)) and steps[-1] == stopped_at + 6
    assert all(b - a <= 2 for a, b in zip(steps, steps[1:]))   # logged every 2 steps, no gap at the resume


def test_closing_while_training_asks_and_cancel_keeps_the_window(window, qtbot):
    # a bounded run: should the test fail midway, the process handed over still ends by itself
    _use(window, tiny_config(training={"steps": 400, "log_every": 2, "checkpoint_every": 0}))
    tp = window.training
    assert tp.start()
    qtbot.waitUntil(lambda: tp.state == "running", timeout=90000)
    asked = []
    tp.ask = lambda title, text, choices: asked.append(choices) or "Cancel"
    assert not window.close()                                  # refused: still open, still training
    assert asked[0] == ["Keep training in the background", "Stop and save", "Cancel"] and tp.job.is_running()
    tp.ask = lambda *a: "Keep training in the background"
    run = tp.run_dir
    try:
        assert window.close()
        # the run goes on in a process of its own, a shell-like run now: its control file steers it
        qtbot.waitUntil(lambda: json.loads((run / "status.json").read_text()).get("state") == "running"
                        and json.loads((run / "status.json").read_text()).get("pid") != tp.job.proc.processId(),
                        timeout=60000)
    finally:
        (run / "control").write_text("stop\n")
    qtbot.waitUntil(lambda: json.loads((run / "status.json").read_text()).get("state") == "stopped", timeout=60000)
    assert json.loads((run / "status.json").read_text())["step"] > 0


def test_processes_k_starts_the_run_under_torchrun_and_the_device_line_lists_every_rank(window, monkeypatch):
    # the engine side of K processes is tested in tests/engine/test_distributed.py (real torchrun);
    # here: what the panel asks the engine for, and what it shows of the answer
    _use(window, tiny_config(training={"steps": 6, "batch_size": 16}))
    tp = window.training
    started = []
    monkeypatch.setattr(tp.job, "start", lambda *args: started.append(args))
    tp.nproc.setValue(2)
    assert tp.start()
    assert started[0][-4:] == ("--nproc", "2", "--nice", "10") and "--config" in started[0]   # below the window
    assert not tp.nproc.isEnabled()                               # fixed while the run trains
    tp._on_event({"event": "started", "device": "cpu (1 thread)", "devices": ["cpu (1 thread)", "cpu (1 thread)"],
                  "world_size": 2, "precision": "fp32", "step": 0, "total_steps": 6})
    assert tp.device.text().startswith("2 processes: cpu (1 thread), cpu (1 thread)")
    assert tp.device.toolTip() == "rank 0: cpu (1 thread)\nrank 1: cpu (1 thread)"
    tp.state = "stopped"
    tiny_config().save(tp.run_dir / "config.toml")             # what the engine writes when it starts
    tp.more_steps.setValue(4)
    tp.planned_steps = lambda: 6
    assert tp.continue_run(4)
    assert started[1][-6:] == ("--steps", "10", "--nproc", "2", "--nice", "10") and "--resume" in started[1]
    tp.state = "idle"                                            # nothing runs: the window may close
