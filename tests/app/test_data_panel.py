"""The Data panel as a person uses it: the chosen folder's path, warnings in plain words, a run
folder dropped on it opening the run, and the panel read-only while its run trains."""
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog
import pytest
from PIL import Image

from app.panels.data_panel import PREVIEW_COUNT, DataPanel, run_folder_of
from engine.core.config import DataConfig


@pytest.fixture
def panel(qtbot):
    p = DataPanel()
    qtbot.addWidget(p)
    p.resize(360, 600)
    p.show()
    yield p
    p.job.kill(wait_ms=3000)


@pytest.fixture
def requests(panel, monkeypatch):
    """The previews the panel asks the engine for, recorded instead of run (fast tests)."""
    calls = []
    monkeypatch.setattr(panel.job, "preview", lambda *a, **k: calls.append((a, k)))
    return calls


def _images(folder, n, size=20):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), (40 * i % 256, 90, 0)).save(folder / f"{i}.png")
    return folder


def _run_folder(path):
    path.mkdir(parents=True)
    (path / "config.toml").write_text('name = "r"\n')
    (path / "status.json").write_text('{"state": "running"}')
    (path / "samples").mkdir()
    Image.new("RGB", (20, 20)).save(path / "samples" / "step_000000.png")
    return path


def _drop_event(path, cls=QDropEvent):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    if cls is QDragEnterEvent:
        return QDragEnterEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier), mime
    return QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier), mime


def test_the_chosen_folder_path_is_shown_elided_with_the_full_path_as_tooltip(panel, requests, tmp_path):
    folder = _images(tmp_path / ("a-rather-long-folder-name-" * 4) / "my pictures", 3)
    assert not panel.path_label.isVisible()   # a built-in dataset has no path
    assert panel.set_folder(str(folder))
    assert panel.path_label.isVisible() and panel.open_folder.isVisible()
    assert panel.path_label.path == str(folder) and panel.path_label.toolTip() == str(folder)
    shown = panel.path_label.text()
    assert "…" in shown and shown.endswith("pictures")   # elided in the middle: the folder's name stays
    (args, kwargs), = requests
    assert args[:3] == ("folder", str(folder), 16)
    assert kwargs["n"] == PREVIEW_COUNT and kwargs["fields"]["color"] == "auto"
    panel.set_config(DataConfig(dataset="digits"))
    assert not panel.path_label.isVisible()


def test_model_hint_asks_again_with_the_batch_size(panel, requests, qtbot):
    panel.set_model_hint(64, params=1_000_000)
    qtbot.waitUntil(lambda: len(requests) == 1, timeout=3000)
    assert requests[0][1]["batch_size"] == 64 and requests[0][1]["params"] == 1_000_000
    panel.set_model_hint(64, params=1_000_000)   # nothing changed: no new preview
    qtbot.wait(400)
    assert len(requests) == 1


def test_a_tiny_folder_warns_in_plain_words_and_previews_large(panel, qtbot, tmp_path):
    folder = _images(tmp_path / "five", 5, size=80)
    (folder / "notes.png").write_text("not pixels")
    panel.set_model_hint(16)
    panel.set_folder(str(folder))
    qtbot.waitUntil(lambda: "5 images" in panel.info.text(), timeout=60000)
    text = panel.info.text()
    assert "5 images, fewer than one batch of 16: far too few to train a generative model" in text
    assert "skipped 1 of 6 files — 1 not an image: notes.png" in text
    assert "Error" not in text and "16×16 for training" in text
    assert "notes.png — not an image" in panel.info.toolTip()
    assert panel.last_info["preview_size"] == 64
    # 5 images in a 3-column grid of 64-pixel images, not of 16-pixel ones
    assert panel.preview.image_size().width() == 3 * 65 + 1


def test_dropping_a_run_folder_opens_the_run_and_leaves_the_dataset(panel, requests, qtbot, tmp_path):
    run = _run_folder(tmp_path / "runs" / "20240101-000000-r")
    assert run_folder_of(str(run)) == str(run) == run_folder_of(str(run / "samples"))
    assert run_folder_of(str(_images(tmp_path / "pics", 2))) is None
    before = panel.values()
    enter, _ = _drop_event(run, QDragEnterEvent)
    panel.dragEnterEvent(enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(panel.run_dropped, timeout=1000) as got:
        ev, _ = _drop_event(run)
        panel.dropEvent(ev)
    assert got.args == [str(run)]
    assert panel.values() == before and panel.combo.currentData() == "digits" and not requests
    assert "run folder" in panel.notice.text() and panel.notice.isVisible()
    with qtbot.waitSignal(panel.run_dropped, timeout=1000) as got:   # its samples/ folder too
        ev, mime = _drop_event(run / "samples")   # the mime data must outlive the event
        panel.dropEvent(ev)
    assert got.args == [str(run)] and panel.folder == ""


def test_choosing_a_run_folder_in_the_dialog_opens_the_run(panel, requests, qtbot, tmp_path, monkeypatch):
    run = _run_folder(tmp_path / "run")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(run))
    with qtbot.waitSignal(panel.run_dropped, timeout=1000) as got:
        panel.browse.click()
    assert got.args == [str(run)] and panel.folder == "" and not requests


def test_dropping_an_image_folder_uses_it(panel, requests, tmp_path):
    folder = _images(tmp_path / "pics", 2)
    ev, mime = _drop_event(folder)
    panel.dropEvent(ev)
    assert panel.folder == str(folder) and panel.combo.currentData() == "folder" and len(requests) == 1


def test_read_only_locks_the_data_and_says_why(panel, requests, tmp_path):
    folder = _images(tmp_path / "pics", 2)
    panel.set_read_only(True)
    assert not panel.combo.isEnabled() and not panel.browse.isEnabled() and not panel.form.isEnabled()
    assert panel.read_only_note.isVisible() and "read-only while the run trains" in panel.read_only_note.text().lower()
    enter, _ = _drop_event(folder, QDragEnterEvent)
    panel.dragEnterEvent(enter)
    assert not enter.isAccepted()              # an image folder is not taken while read-only
    assert not panel.set_folder(str(folder))   # nor from the window's drop or a menu
    assert panel.folder == "" and panel.combo.currentData() == "digits" and not requests
    run = _run_folder(tmp_path / "run")
    enter, _ = _drop_event(run, QDragEnterEvent)
    panel.dragEnterEvent(enter)
    assert enter.isAccepted()                  # a run folder still opens its run
    panel.set_read_only(True, "the run 'faces' is training: stop it to change its data")
    assert panel.read_only_note.text() == "the run 'faces' is training: stop it to change its data"
    panel.set_read_only(False)
    assert panel.combo.isEnabled() and panel.browse.isEnabled() and panel.form.isEnabled()
    assert not panel.read_only_note.isVisible() and not panel.notice.isVisible()
    assert not panel.form.editors["count"].isEnabled()   # still only for procedural datasets
    assert panel.set_folder(str(folder)) and panel.folder == str(folder)


def test_set_config_still_shows_a_runs_data_while_read_only(panel, requests, tmp_path):
    folder = _images(tmp_path / "pics", 2)
    panel.set_read_only(True)
    panel.set_config(DataConfig(dataset="folder", path=str(folder), resolution=32))
    assert panel.values()["path"] == str(folder) and panel.path_label.path == str(folder)
    assert not panel.combo.isEnabled()
