"""Issue 20's reliability classes as the window shows them: a checkpoint that cannot be loaded
leaves the toolbar (and every canvas) on the checkpoint loaded before, with one line saying why the
other failed; a run resumed before it ever wrote a checkpoint says that it starts from step 0."""
import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from test_canvas_views import DDPM, DDPM_OPTIONS, FakeClient

from app.canvases import TAB_KEYS
from app.main_window import MainWindow
from app.widgets.checkpoint_bar import CheckpointBar
from app.worker_session import WorkerSession
from engine.runs.rundir import RunDir
from tests.conftest import tiny_config

OPTIONS = DDPM_OPTIONS


def _error(client, rid, message):
    client.event.emit({"event": "error", "id": rid, "op": "load", "message": message})


def test_a_failed_open_leaves_the_toolbar_and_the_canvases_on_the_loaded_checkpoint(faked, tmp_path):
    client, w = faked
    a = str(tmp_path / "runs" / "good" / "checkpoints" / "step_000010.safetensors")
    b = str(tmp_path / "runs" / "cut" / "checkpoints" / "step_000020.safetensors")
    w._open_checkpoint(a, switch_tab=False)
    w.show_tab("sample")
    client.ready(DDPM, OPTIONS, checkpoint=a, rid=client.last("load")["id"])
    sample = w.canvases["sample"]
    assert w.checkpoint_bar.state.text().startswith("loaded: ddpm") and sample.capabilities is not None

    w.checkpoint_bar.picked.emit(b)                          # the person picks another one in the toolbar
    load = client.last("load")
    assert load["checkpoint"] == b and w.checkpoint_bar.combo.currentData() == b
    _error(client, load["id"], f"{b}: cannot read safetensors (Error while deserializing header: "
                               f"MetadataIncompleteBuffer)")
    QApplication.processEvents()
    # the toolbar shows the loaded checkpoint again, and one line says why the other did not open
    assert w.session.checkpoint == a and w.checkpoint_bar.combo.currentData() == a
    state = w.checkpoint_bar.state.text()
    assert state.endswith("✖ cut / step_000020 not opened (kept ddpm, step 10): cannot read safetensors (Error "
                          "while deserializing header: MetadataIncompleteBuffer)</span>") and "\n" not in state
    assert b in w.checkpoint_bar.state.toolTip() and "Still loaded: " + a in w.checkpoint_bar.state.toolTip()
    # every canvas keeps the loaded model: tabs enabled, options kept, and the next request names A
    assert w.tabs.isTabEnabled(TAB_KEYS.index("sample")) and sample.capabilities is not None
    assert sample.ckpt.text() == a and "step_000020.safetensors was not opened (cannot read safetensors" in \
        sample.status.text() and "still working on step_000010.safetensors" in sample.status.text()
    sent = len(client.sent)
    QTest.mouseClick(sample.sample_btn, Qt.LeftButton)
    assert len(client.sent) == sent + 1 and client.sent[-1]["op"] == "sample" and client.sent[-1]["checkpoint"] == a
    assert [r["checkpoint"] for r in client.sent if r["op"] == "load"] == [a, b]   # A was never reloaded


def test_a_failed_open_with_nothing_loaded_says_why_in_the_toolbar(faked, tmp_path):
    client, w = faked
    b = str(tmp_path / "gone" / "step_000020.safetensors")
    w._open_checkpoint(b, switch_tab=False)
    w.session.ensure_loaded()
    _error(client, client.last("load")["id"], f"{b}: checkpoint not found")
    assert "✖ not loaded: " in w.checkpoint_bar.state.text() and "checkpoint not found" in w.checkpoint_bar.state.text()
    assert w.session.capabilities is None and "checkpoint not found" in w.canvases["sample"].status.text()


def test_with_the_real_worker_a_truncated_checkpoint_leaves_the_loaded_one_serving(qtbot, tiny_runs, tmp_path):
    from app.canvases.sampling import SamplingCanvas
    a = str(tiny_runs["ddpm"].checkpoint)
    cut = tmp_path / "cut" / "checkpoints" / "step_000002.safetensors"
    cut.parent.mkdir(parents=True)
    data = Path(a).read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    cut.with_suffix(".json").write_bytes(Path(a).with_suffix(".json").read_bytes())
    session = WorkerSession()
    bar = CheckpointBar(session)
    canvas = SamplingCanvas(session)
    for wdg in (bar, canvas):
        qtbot.addWidget(wdg)
    canvas.show()
    try:
        session.set_checkpoint(a)
        qtbot.waitUntil(lambda: bar.state.text().startswith("loaded: ddpm"), timeout=60000)
        session.set_checkpoint(str(cut))
        qtbot.waitUntil(lambda: "not opened" in bar.state.text(), timeout=60000)
        assert "cannot read safetensors" in bar.state.text() and bar.combo.currentData() == a
        assert session.checkpoint == a and session.capabilities.family == "ddpm"
        canvas.n.setValue(2)
        qtbot.mouseClick(canvas.sample_btn, Qt.LeftButton)
        qtbot.waitUntil(canvas.view.has_image, timeout=60000)      # sampled by the model that stayed loaded
    finally:
        canvas.shutdown()
        session.shutdown()


def test_resuming_a_run_that_never_wrote_a_checkpoint_says_it_starts_from_step_0(qtbot, tmp_path):
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.training.ask = lambda *a: "Stop and save"
    w.show()
    run = tmp_path / "runs" / "killed"
    rd = RunDir(run).create()
    tiny_config(training={"steps": 3, "checkpoint_every": 0}).save(rd.config_path)
    rd.write_status(state="running", step=2, pid=999_999_999, total_steps=3)   # killed before its first checkpoint
    try:
        w.continue_run(str(run))
        qtbot.waitUntil(lambda: w.training.state == "finished", timeout=120000)
        assert not w.training.error.isHidden()
        assert "no checkpoint yet" in w.training.error.text() and "from step 0" in w.training.error.text()
        assert json.loads((run / "status.json").read_text())["step"] == 3
    finally:
        w.close()
