"""Images dropped on the window go where they are useful, or the window says why: a sample PNG
GenLab wrote restores its settings in Sample; a plain PNG (no GenLab parameters), a JPG or an
inpainting result opens in Inpainting; a file that is no image, or an image that cannot be read,
gets one line saying so. And the Inpainting canvas has an Open image… button."""
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.canvases import TAB_KEYS
from app.main_window import MainWindow
from app.worker_session import WorkerSession
from engine.core.pnginfo import write_png
from tests.app.test_canvas_views import FakeClient


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    w.show()
    w.show_tab("train")
    yield w
    w.close()


def drop(w, path) -> bool:
    """Drag `path` over the window and drop it, as a file manager would; whether the drag was taken."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(w, enter)
    if not enter.isAccepted():
        return False
    QApplication.sendEvent(w, QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return True


def photo(h=24, w=36) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 7, yy * 10, np.full_like(xx, 120)], -1).astype(np.uint8)


def test_a_png_without_genlab_parameters_opens_in_inpainting(window, tmp_path):
    img = photo()
    Image.fromarray(img).save(tmp_path / "holiday.png")
    assert drop(window, tmp_path / "holiday.png")
    assert window.current_tab() == "inpaint"
    assert np.array_equal(window.canvases["inpaint"].editor.image(), img)
    assert "holiday.png in Inpainting" in window.status_label.text()
    assert "no GenLab sampling parameters" in window.status_label.text()


def test_a_jpg_opens_in_inpainting_and_a_broken_one_says_why(window, tmp_path):
    img = photo()
    Image.fromarray(img).save(tmp_path / "cat.jpg", quality=95)
    assert drop(window, tmp_path / "cat.jpg")
    editor = window.canvases["inpaint"].editor
    assert window.current_tab() == "inpaint" and editor.image().shape == img.shape
    assert np.abs(editor.image().astype(int) - img).mean() < 4          # JPEG: close, not exact
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    window.show_tab("train")
    assert drop(window, tmp_path / "broken.jpg")
    assert "not an image: broken.jpg" in window.status_label.text()
    assert editor.image().shape == img.shape                              # the open image stays


def test_a_genlab_sample_png_still_restores_in_sample_and_an_inpainting_result_opens_to_refine(window, tmp_path):
    write_png(tmp_path / "s.png", photo(8, 8), {"kind": "sample", "family": "ddpm", "seed": 7, "n": 1})
    assert drop(window, tmp_path / "s.png")
    assert window.current_tab() == "sample" and window.canvases["sample"].seed.value() == 7
    write_png(tmp_path / "r.png", photo(8, 8), {"kind": "inpaint", "method": "telea"})
    assert drop(window, tmp_path / "r.png")
    assert window.current_tab() == "inpaint"
    assert np.array_equal(window.canvases["inpaint"].editor.image(), photo(8, 8))


def test_a_file_that_is_no_image_is_refused_in_one_line(window, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert drop(window, tmp_path / "notes.txt")
    assert window.current_tab() == "train"
    assert window.status_label.text().startswith("cannot open notes.txt: drop a checkpoint")


def test_open_image_button_opens_the_chosen_file(window, tmp_path, qtbot, monkeypatch):
    img = photo()
    Image.fromarray(img).save(tmp_path / "p.webp", lossless=True)
    canvas = window.canvases["inpaint"]
    asked = {}

    def choose(parent, title, folder, filter_):
        asked.update(title=title, filter=filter_)
        return str(tmp_path / "p.webp"), filter_

    monkeypatch.setattr("app.widgets.mask_editor.QFileDialog.getOpenFileName", choose)
    window.show_tab("inpaint")
    assert TAB_KEYS.index("inpaint") == window.tabs.currentIndex() and canvas.open_btn.isVisible()
    qtbot.mouseClick(canvas.open_btn, Qt.LeftButton)
    assert asked["title"] == "Open image" and "*.jpg" in asked["filter"] and "*.png" in asked["filter"]
    assert np.array_equal(canvas.editor.image(), img)
