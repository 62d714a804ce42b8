"""The first window fits the screen it opens on (the offscreen test screen is 800×800, smaller than
the 1360×860 the layout was made for), and a geometry remembered on a larger screen is fitted onto
this one instead of opening partly off it."""
from PySide6.QtCore import QMargins, QRect, QSettings, QSize

from app.main_window import MainWindow
from app.screen_fit import FRAME_GUESS, available_rect, fitted_size
from app.worker_session import WorkerSession
from test_canvas_views import DDPM, DDPM_OPTIONS, FakeClient


def _window(qtbot, tmp_path, settings=None):
    w = MainWindow(runs_root=tmp_path / "runs", settings=settings, session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    return w


def test_the_first_window_is_no_larger_than_the_screen(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    avail = available_rect(w)
    assert avail.width() < 1360 and avail.height() < 860        # the test screen is the small one
    assert w.width() + FRAME_GUESS.left() + FRAME_GUESS.right() <= avail.width()
    assert w.height() + FRAME_GUESS.top() + FRAME_GUESS.bottom() <= avail.height()
    assert w.width() >= avail.width() - 40 and w.height() >= avail.height() - 60   # and uses the screen


def test_a_remembered_geometry_from_a_larger_screen_is_fitted_onto_this_one(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    big = _window(qtbot, tmp_path)
    big.setGeometry(1500, 900, 1700, 1100)          # a window on a large monitor, right of this screen
    settings.setValue("geometry", big.saveGeometry())
    w = _window(qtbot, tmp_path, settings)
    avail = available_rect(w)
    assert w.width() <= avail.width() and w.height() <= avail.height()
    assert avail.intersects(w.geometry()) and avail.contains(w.geometry().topLeft())
    w.show()
    qtbot.waitExposed(w)
    assert avail.contains(w.geometry().center())


def test_fitted_size_keeps_what_fits_and_cuts_what_does_not():
    frame = QMargins(4, 30, 4, 4)
    laptop = QRect(0, 0, 1280, 800)
    assert fitted_size(QSize(1360, 860), laptop, frame) == QSize(1272, 766)
    assert fitted_size(QSize(1360, 860), QRect(0, 0, 1920, 1050), frame) == QSize(1360, 860)
    assert fitted_size(QSize(900, 700), laptop, frame) == QSize(900, 700)


def test_the_trajectory_scrubber_is_in_view_at_1024x640(qtbot, tmp_path):
    """A loaded model's long options form scrolls in its own column: the Sampling page is no taller
    than its tab, so the trajectory's slider is in view without scrolling the page."""
    client = FakeClient()
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(client))
    qtbot.addWidget(w)
    w.resize(1024, 640)
    w.show()
    w.show_tab("sample")
    w.session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, DDPM_OPTIONS)
    canvas = w.canvases["sample"]
    canvas.lower.setCurrentIndex(canvas.traj_tab)
    qtbot.waitExposed(w)
    qtbot.wait(50)
    assert canvas.options.editors["spacing"].isVisibleTo(canvas)       # the form was drawn
    page = canvas.parentWidget().parentWidget()                        # the tab's scroll area
    assert page.verticalScrollBar().maximum() == 0
    slider = canvas.trajectory.slider
    top_left = slider.mapTo(page.viewport(), slider.rect().topLeft())
    assert slider.isVisible() and page.viewport().rect().contains(
        top_left + slider.rect().bottomRight())


def test_the_detection_page_fits_1024x640_with_three_table_rows_in_view(qtbot, tmp_path):
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    w.resize(1024, 640)
    w.show()
    w.show_tab("detection")
    qtbot.waitExposed(w)
    canvas = w.canvases["detection"]
    canvas.add_paths([f"/img/{i}.png" for i in range(5)])              # the fake worker answers below
    canvas.on_result({"op": "detect", "rows": [
        {"image": f"/img/{i}.png", "preview": "", "results": [{"check": "spectrum", "title": "Frequency spectrum",
                                                               "score": 0.5, "explanation": "…"}]}
        for i in range(5)]})
    qtbot.wait(50)
    page = canvas.parentWidget().parentWidget()                        # the tab's scroll area
    assert page.verticalScrollBar().maximum() == 0
    table = canvas.table
    assert table.viewport().height() >= 3 * table.rowHeight(0)        # three whole rows, not two and a half
    canvas.split.setSizes([0, 1000, 1000])      # the pictures dragged as tall as they go: still three rows
    qtbot.wait(20)
    assert table.viewport().height() >= 3 * table.rowHeight(0)
    assert page.verticalScrollBar().maximum() == 0
