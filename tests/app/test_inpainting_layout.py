"""The Inpainting tab holds still under the mouse: no readout or message may resize the mask editor
(it once re-laid itself out on every hover, rescaling the image between 200 % and 300 %, so a
stroke landed a brush-width from where it was aimed), the zoom readout says the zoom drawn, and a
click lands on the image pixel under it."""
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QEnterEvent
from PySide6.QtWidgets import QApplication

from app.canvases.inpainting import InpaintingCanvas
from app.qt_util import scrolled
from app.widgets.elided_label import ElidedLabel
from app.worker_session import WorkerSession
from tests.app.test_canvas_views import FakeClient


@pytest.fixture(params=[(1024, 640), (1280, 800)], ids=["1024x640", "1280x800"])
def page(qtbot, tmp_path, request):
    """The canvas as the window holds it: in a scroll area that resizes it, about a tab's size."""
    c = InpaintingCanvas(WorkerSession(FakeClient()), settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    area = scrolled(c)
    qtbot.addWidget(area)
    w, h = request.param
    area.resize(w - 280, h - 120)   # the window less the left panels, toolbar and tab bar
    area.show()
    qtbot.waitExposed(area)
    img = np.zeros((28, 28, 3), np.uint8)
    img[...] = (200, 180, 120)
    c.editor.set_image(img)
    qtbot.wait(20)
    yield c
    area.close()


def snapshot(c, qtbot):
    qtbot.wait(30)    # layout requests are posted events: let them run
    v = c.editor.view
    return v.geometry(), v.scale(), (v.offset().x(), v.offset().y()), c.editor.geometry()


def enter(view, pos: QPoint) -> None:
    glob = QPointF(view.mapToGlobal(pos))
    QApplication.sendEvent(view, QEnterEvent(QPointF(pos), glob, glob))


def test_entering_moving_over_and_leaving_the_image_changes_no_geometry_and_no_zoom(page, qtbot):
    c = page
    view = c.editor.view
    before = snapshot(c, qtbot)
    centre = view.rect().center()
    enter(view, centre)
    for p in (centre, centre + QPoint(7, 3), view.image_to_widget(0, 0).toPoint(),
              view.image_to_widget(27, 27).toPoint()):
        qtbot.mouseMove(view, p)
        assert "mask 0.00" in c.editor.info.text()     # the readout shows the pixel under the mouse
        assert snapshot(c, qtbot) == before
    QApplication.sendEvent(view, QEvent(QEvent.Leave))
    assert "mask" not in c.editor.info.text() and snapshot(c, qtbot) == before


def test_no_status_message_or_model_hint_resizes_the_editor(page, qtbot):
    c = page
    before = snapshot(c, qtbot)
    long = "cannot load /a/very/long/path/to/some/checkpoint/step_000049.safetensors: " + "a reason that wraps " * 20
    for text in ("short", long, ""):
        c.status.setText(text)
        assert snapshot(c, qtbot) == before, text
        c.model_hint.setText(text)
        assert snapshot(c, qtbot) == before, text
    c.show_error(long)
    assert snapshot(c, qtbot) == before


def test_the_zoom_readout_is_the_zoom_drawn_after_any_resize_or_zoom(page, qtbot):
    c = page
    view = c.editor.view
    shown = lambda: c.editor.info.text().rsplit("·", 1)[1].strip()   # noqa: E731
    assert shown() == f"{view.scale() * 100:.0f} %"      # shown without hovering first
    area = c.parentWidget().parentWidget()
    area.resize(area.width() - 150, area.height() - 100)   # the view refits: the readout follows
    qtbot.wait(30)
    assert shown() == f"{view.scale() * 100:.0f} %"
    view.zoom_at(QPointF(view.rect().center()), 1.25)
    assert shown() == f"{view.scale() * 100:.0f} %"


def test_a_click_lands_on_the_image_pixel_under_it(page, qtbot):
    c = page
    view = c.editor.view
    c.editor.set_brush_size(1)
    for x, y in ((4, 5), (20, 9), (13, 24)):
        aim = view.image_to_widget(x, y).toPoint()    # where the person aims, before the mouse arrives
        enter(view, aim)
        qtbot.mouseMove(view, aim)
        qtbot.mousePress(view, Qt.LeftButton, pos=aim)
        qtbot.mouseRelease(view, Qt.LeftButton, pos=aim)
        QApplication.sendEvent(view, QEvent(QEvent.Leave))
        painted = np.argwhere(c.editor.mask() > 0)
        assert (y, x) in {tuple(p) for p in painted}, (x, y, painted)
        c.editor.clear()


def test_an_elided_label_keeps_its_size_whatever_its_text(qtbot):
    label = ElidedLabel("", template="(99, 99) mask 0.00")
    qtbot.addWidget(label)
    label.show()
    hints = label.sizeHint(), label.minimumSizeHint()
    label.setText("a much longer text than the template it was sized by, " * 4)
    assert (label.sizeHint(), label.minimumSizeHint()) == hints and label.minimumSizeHint().width() == 0
    label.resize(120, label.height())
    assert label.text().startswith("a much longer") and "…" in QLabelText(label)
    assert label.toolTip() == label.text()          # the whole text, while it is cut short
    label.setText("short")
    assert QLabelText(label) == "short" and label.toolTip() == ""
    caption = ElidedLabel("white = regenerate · black = keep", short=("white = regenerate",))
    qtbot.addWidget(caption)
    caption.show()
    caption.resize(caption.fontMetrics().horizontalAdvance("white = regenerate") + 10, caption.height())
    assert QLabelText(caption) == "white = regenerate"    # a shorter wording before cutting


def QLabelText(label) -> str:
    """What the label draws (text() is the whole text)."""
    from PySide6.QtWidgets import QLabel
    return QLabel.text(label)
