"""The window's flow between its parts, as a person meets it: one checkpoint for every canvas (the
toolbar picker; a canvas's own pick sticks), a dropped GenLab PNG restores its settings, a run
folder dropped on the Data panel opens as a run, the panels are read-only while their run trains,
the first loss point comes before the step-0 grid, and the layout holds at 1024×640: no tab scrolls
sideways and the model form shows a useful number of rows."""
import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QFormLayout, QScrollArea, QStackedWidget, QWidget
from test_canvas_views import DDPM, DDPM_OPTIONS, STYLE, FakeClient

from app.canvases import TAB_KEYS
from app.main_window import MainWindow
from app.worker_session import WorkerSession
from engine.core.pnginfo import write_png
from tests.conftest import tiny_config

OPTIONS = DDPM_OPTIONS


def _loads(client) -> list[str]:
    return [r["checkpoint"] for r in client.sent if r["op"] == "load"]


def test_one_checkpoint_reaches_every_canvas_and_a_canvas_pick_never_reverts(faked, tmp_path):
    client, w = faked
    a, b = str(tmp_path / "a" / "step_000010.safetensors"), str(tmp_path / "b" / "step_000020.safetensors")
    for p in (a, b):
        Path(p).parent.mkdir(parents=True)
        Path(p).write_bytes(b"")
    w._open_checkpoint(a)                                    # e.g. from the runs browser
    client.ready(DDPM, OPTIONS, checkpoint=a, rid=client.last("load")["id"])
    assert w.checkpoint_bar.state.text().startswith("loaded: ddpm")
    w.canvases["sample"].set_checkpoint(b)                   # the Sample canvas opens its own
    client.ready(STYLE, {"truncation_psi": 0.7, "noise_mode": "const"}, checkpoint=b,
                 rid=client.last("load")["id"])
    for key in ("style-mixing", "interpolate", "inpaint", "sample", "train"):
        w.show_tab(key)
        QApplication.processEvents()
    assert _loads(client) == [a, b]                          # switching tabs never loads A again
    assert w.checkpoint_bar.combo.currentData() == b         # the toolbar follows the canvas's pick
    assert all(c.checkpoint == b for c in w.canvases.values())
    assert w.tabs.isTabEnabled(TAB_KEYS.index("style-mixing"))   # the StyleGAN serves it
    # the toolbar's recent list switches every canvas back to A, without leaving the tab
    w.show_tab("style-mixing")
    index = next(i for i in range(w.checkpoint_bar.combo.count()) if w.checkpoint_bar.combo.itemData(i) == a)
    w.checkpoint_bar.combo.activated.emit(index)
    assert w.session.checkpoint == a and _loads(client)[-1] == a
    assert w.current_tab() == "style-mixing"
    client.ready(DDPM, OPTIONS, checkpoint=a, rid=client.last("load")["id"])
    assert not w.tabs.isTabEnabled(TAB_KEYS.index("style-mixing"))   # a DDPM has no styles
    assert "per-layer styles" in w.tabs.tabToolTip(TAB_KEYS.index("style-mixing"))


def test_a_dropped_genlab_png_restores_its_settings_in_the_sample_tab(faked, tmp_path):
    client, w = faked
    ckpt = str(tmp_path / "r" / "step_000010.safetensors")
    w._open_checkpoint(ckpt)
    client.ready(DDPM, OPTIONS, checkpoint=ckpt, rid=client.last("load")["id"])
    w.show_tab("train")
    png = tmp_path / "0003_seed41.png"
    write_png(png, np.zeros((8, 8, 3), np.uint8),
              {"kind": "sample", "family": "ddpm", "checkpoint": ckpt, "step": 10, "seed": 41, "n": 1, "cls": 3,
               "options": {**OPTIONS, "steps": 33}})
    w.open_dropped(str(png))
    sample = w.canvases["sample"]
    assert w.current_tab() == "sample"
    assert sample.seed.value() == 41 and sample.n.value() == 1 and sample.cls.currentData() == 3
    assert sample.option_values()["steps"] == 33


def test_a_run_folder_dropped_on_the_data_panel_opens_the_run(faked, tmp_path):
    from engine.training.loop import train
    _client, w = faked
    run = tmp_path / "runs" / "r1"
    train(tiny_config(training={"steps": 2, "checkpoint_every": 0}), run, emit=lambda e: None)
    dataset_before = w.data_panel.values()
    w.data_panel.set_folder(str(run))
    assert w.watcher.run_dir is not None and Path(w.watcher.run_dir) == run
    assert w.tabs.currentIndex() == 0
    assert w.data_panel.values()["dataset"] == "digits" and w.data_panel.values() != {**dataset_before, "path": str(run)}
    assert w.model_panel.run_name.text() == "tiny"
    assert w.model_panel.preset.currentText() == "(custom)"   # "tiny" is no preset


def test_the_panels_are_read_only_while_their_run_trains(faked, tmp_path):
    _client, w = faked
    w.training.run_started.emit(str(tmp_path / "runs" / "x"))
    assert not w.model_panel.tabs.isEnabled() and not w.model_panel.family.isEnabled()
    assert not w.model_panel.lock_note.isHidden() and "Read-only" in w.model_panel.lock_note.text()
    assert not w.data_panel.combo.isEnabled()
    w.training.job.ended.emit(0, False, "")
    assert w.model_panel.tabs.isEnabled() and w.model_panel.lock_note.isHidden() and w.data_panel.combo.isEnabled()


def test_the_preset_combo_follows_the_family_and_the_run_name_names_the_run(faked):
    _client, w = faked
    assert w.model_panel.preset.currentData() == "ddpm-digits" and w.model_panel.run_name.text() == "ddpm-digits"
    w.model_panel.family.setCurrentText("vae")
    assert w.model_panel.preset.currentText() == "(custom)"
    w.model_panel.load_preset("vae-digits")
    assert w.model_panel.family.currentText() == "vae" and w.model_panel.preset.currentData() == "vae-digits"
    w.model_panel.run_name.setText("my vae")
    assert w.build_config().name == "my vae"


def test_the_first_loss_point_shows_before_the_step_0_grid(qtbot, tmp_path):
    """A grid that takes a while to draw (a diffusion model's many sampling steps) does not hold
    the first loss point back, and the status says what the engine does meanwhile."""
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.training.ask = lambda *a: "Stop and save"
    w.show()
    cfg = tiny_config(training={"steps": 3, "log_every": 100, "checkpoint_every": 0},
                      sampling={"steps": 50, "grid_size": 64, "sampler": "ddpm"})
    w.model_panel.set_config(cfg)
    w.data_panel.set_config(cfg.data)
    seen = []
    w.watcher.metrics.connect(lambda rows: seen.append(("loss", rows[0]["step"])))
    w.watcher.artifact.connect(lambda key, path: seen.append(("grid", Path(path).name)) if key == "samples" else None)
    qtbot.mouseClick(w.training.start_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.training.job.is_running(), timeout=90000)
    w.watcher.poll()
    assert seen[0] == ("loss", 1), seen
    assert ("grid", "step_000000.png") in seen
    w.close()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX scheduling priorities")
def test_a_run_started_from_the_app_trains_at_a_lower_priority_than_the_window(qtbot, tmp_path):
    """Training is background work: it must not take the CPU from the window's event loop."""
    from app.engine_client import TRAIN_NICE, TrainJob
    job = TrainJob()
    events = []
    job.event.connect(events.append)
    job.start_run(tiny_config(training={"steps": 100_000, "checkpoint_every": 0}), tmp_path / "run")
    try:
        qtbot.waitUntil(lambda: any(e.get("event") == "metrics" for e in events), timeout=60000)
        assert TRAIN_NICE >= 5 and os.getpriority(os.PRIO_PROCESS, job.proc.processId()) == TRAIN_NICE
    finally:
        job.stop()
        qtbot.waitUntil(lambda: not job.is_running(), timeout=30000)


def _overlaps(root: QWidget) -> list[str]:
    """Visible sibling widgets whose rectangles intersect (pages of a stack and scroll-area parts
    excepted: they are meant to share a place)."""
    out = []
    for parent in [root, *root.findChildren(QWidget)]:
        if not parent.isVisible() or isinstance(parent, (QStackedWidget, QAbstractScrollArea)):
            continue
        kids = [c for c in parent.children() if isinstance(c, QWidget) and c.isVisible() and not c.isWindow()]
        for i, a in enumerate(kids):
            for b in kids[i + 1:]:
                inter = a.geometry().intersected(b.geometry())
                if inter.width() > 1 and inter.height() > 1:
                    out.append(f"{type(parent).__name__}: {a.objectName() or type(a).__name__} × "
                               f"{b.objectName() or type(b).__name__} ({inter.width()}×{inter.height()})")
    return out


def _sideways_scroll(area: QScrollArea) -> str:
    """Why `area` (a tab page's or a form's scroll area) scrolls sideways, or ''."""
    page, bar = area.widget(), area.horizontalScrollBar()
    if bar.maximum() > 0 or page.minimumSizeHint().width() > area.viewport().width():
        return (f"scrolls sideways: its {type(page).__name__} needs {page.minimumSizeHint().width()} px, "
                f"the view is {area.viewport().width()} px")
    return ""


def _form_rows_shown(w: MainWindow) -> float:
    """How many rows of the model form (the Model panel's Network tab, shown) its view shows."""
    area, form = w.model_panel.tabs.currentWidget(), w.model_panel.model_form
    first, second = (form.layout().itemAt(i, QFormLayout.FieldRole).widget().geometry() for i in (0, 1))
    return area.viewport().height() / (second.top() - first.top())


# Five rows of the model form in view: enough to see a section's main fields together (DDPM's
# channels, their multipliers, blocks per level, attention) and to scroll it a useful step at a
# time. The Data panel above it once left two rows (70 px) at 1024×640, and two at 1400×900.
MODEL_ROWS_SHOWN = 5


def _layout_problems(w: MainWindow, qtbot, width: int, height: int) -> list[str]:
    """At width×height: the window fits, nothing overlaps, no tab page needs sideways scrolling,
    and the model form shows MODEL_ROWS_SHOWN rows without scrolling sideways."""
    w.resize(width, height)
    problems = []
    for key in ("train", "runs", "sample", "style-mixing", "interpolate", "inpaint"):
        w.show_tab(key)
        qtbot.wait(50)
        if w.width() > width or w.height() > height:
            problems.append(f"{key}: the window cannot be {width}×{height} (it is {w.width()}×{w.height()})")
        problems += [f"{key}: {p}" for p in _overlaps(w)]
        if why := _sideways_scroll(w.tabs.currentWidget()):
            problems.append(f"{key} tab {why}")
    w.model_panel.tabs.setCurrentIndex(0)   # Network: the model form
    qtbot.wait(20)
    if why := _sideways_scroll(w.model_panel.tabs.currentWidget()):
        problems.append(f"the model form {why}")
    if (rows := _form_rows_shown(w)) < MODEL_ROWS_SHOWN:
        problems.append(f"the model form shows {rows:.1f} rows, fewer than {MODEL_ROWS_SHOWN}")
    return problems


def test_the_layout_holds_at_1024_by_640(faked, qtbot):
    _client, w = faked
    problems = _layout_problems(w, qtbot, 1024, 640)
    assert not problems, "\n".join(problems)


def test_the_layout_holds_at_1400_by_900(faked, qtbot):
    """A usual window size keeps all of it too (the Runs tab once scrolled sideways even here)."""
    _client, w = faked
    problems = _layout_problems(w, qtbot, 1400, 900)
    assert not problems, "\n".join(problems)
