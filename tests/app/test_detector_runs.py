"""Detectors in the runs browser: a detector folder is a row of family "detector (…)", its header
says what it is, and opening it (the Open button, a double click) loads it into the Detection canvas
of the window, whose check of its architecture switches on."""
from __future__ import annotations

from app.panels.run_tree import C_FAMILY, C_NAME
from app.panels.runs import RunsBrowser
from tests.engine.test_detector_listing import write_detector


def test_the_browser_lists_a_detector_and_open_emits_it(qtbot, tmp_path):
    det = write_detector(tmp_path / "runs" / "20261207-120000-detector-cnn", arch="cnn")
    b = RunsBrowser(tmp_path / "runs", trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    item = b.run_item(det.parent)
    assert item is not None and item.text(C_FAMILY) == "detector (cnn)" and item.text(C_NAME) == det.parent.name
    b.select_run(det.parent)
    assert "Detection canvas" in b.header.text() and "held out" in b.header.text()
    assert b.tabs.currentWidget() is b.config_text and "\"kind\": \"genlab-trained-detector\"" in b.config_text.toPlainText()
    assert "Detection canvas" in b.actions.open_btn.toolTip() and not b.actions.resume_btn.isEnabled()
    with qtbot.waitSignal(b.open_detector) as opened:
        b.actions.open_btn.click()
    assert opened.args == [str(det)]
    with qtbot.waitSignal(b.open_detector):
        b._on_double_click(item, 0)


def test_opening_a_listed_detector_loads_it_into_the_detection_canvas(faked, tmp_path):
    _, w = faked
    det = write_detector(w.runs_root / "20261207-120000-detector-npr")
    w.runs.poll()
    w.runs.select_run(det.parent)
    w.runs.actions.open_btn.click()
    canvas = w.canvases["detection"]
    assert w.current_tab() == "detection" and canvas.detector == str(det) and canvas.detector_arch == "npr"
    assert canvas.check_boxes["npr-cnn"].isChecked() and det.parent.name in canvas.detector_label.text()
    assert canvas.detectors_folder == w.runs_root
    w.open_dropped(str(det.with_suffix(".json")))      # a dropped detector file goes there too
    assert canvas.detector == str(det)
