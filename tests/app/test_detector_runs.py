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


def test_a_loose_detector_file_is_listed_opened_and_not_renamed_alone(qtbot, tmp_path):
    det = write_detector(tmp_path / "runs" / "20261207-120000-detector-cnn", arch="cnn")
    loose = tmp_path / "runs" / "mine.safetensors"
    loose.write_bytes(det.read_bytes())
    loose.with_suffix(".json").write_text(det.with_suffix(".json").read_text())
    b = RunsBrowser(tmp_path / "runs", trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    item = b.run_item(loose)
    assert item is not None and item.text(C_FAMILY) == "detector (cnn)" and item.text(C_NAME) == "mine.safetensors"
    b.select_run(loose)
    assert "\"kind\": \"genlab-trained-detector\"" in b.config_text.toPlainText()
    assert not b.actions.rename_btn.isEnabled() and "DET.json" in b.actions.delete_btn.toolTip()
    with qtbot.waitSignal(b.open_detector) as opened:
        b.actions.open_btn.click()
    assert opened.args == [str(loose)]
    with qtbot.waitSignal(b.open_detector) as opened:
        b._on_double_click(item, 0)
    assert opened.args == [str(loose)]


def test_a_loose_detector_from_elsewhere_opens_by_drop_and_file_dialog(faked, tmp_path, monkeypatch):
    _, w = faked
    det = write_detector(tmp_path / "elsewhere" / "folder", arch="npr")
    loose = tmp_path / "elsewhere" / "mine.safetensors"
    loose.write_bytes(det.read_bytes())
    loose.with_suffix(".json").write_text(det.with_suffix(".json").read_text())
    canvas = w.canvases["detection"]
    w.open_dropped(str(loose))                          # its weights dropped on the window
    assert w.current_tab() == "detection" and canvas.detector == str(loose) and canvas.detector_arch == "npr"
    canvas.detector = ""
    from PySide6.QtWidgets import QFileDialog
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(loose.with_suffix(".json")), ""))
    canvas.open_detector_btn.click()                    # Open… picks its description
    assert canvas.detector == str(loose) and "mine" in canvas.detector_label.text()
