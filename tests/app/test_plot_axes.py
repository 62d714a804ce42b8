"""The Train tab's plots read at small sizes: the labels of a log-scale loss axis never overlap (they
did: 0.05 … 0.09 written over each other near a decade's top), no axis label runs into the tick
values, and a short window scrolls the tab instead of squashing the plots flat."""
import math

import pytest
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from app.panels.plots_panel import PLOT_MIN_HEIGHT, LossPlot, MetricPlot
from app.worker_session import WorkerSession
from test_canvas_views import FakeClient


def _labelled_px(plot: LossPlot) -> list[float]:
    """The pixel heights of the value axis's labelled ticks, as drawn now."""
    axis = plot.plot.getAxis("left")
    lo, hi = plot.plot.getViewBox().viewRange()[1]
    size = axis.geometry().height()
    levels = axis.tickValues(lo, hi, size)
    texted = [v for _, values in levels[:axis.style["maxTextLevel"] + 1] for v in values]
    return sorted((v - lo) / (hi - lo) * size for v in texted)


@pytest.mark.parametrize("size, losses", [
    ((360, 130), [math.exp(-s / 80) + 0.03 for s in range(1, 300, 5)]),    # ~1.5 decades on 60 px
    ((410, 240), [math.exp(-s / 80) + 0.03 for s in range(1, 300, 5)]),
    ((360, 130), [0.7 + 0.66 * (s % 7) / 7 for s in range(40)]),           # a GAN's 0.7-1.36
])
def test_log_axis_labels_never_overlap_and_some_are_written(qtbot, size, losses):
    plot = LossPlot(keys=("loss/",), title="loss", log=True)
    qtbot.addWidget(plot)
    plot.resize(*size)
    plot.add_rows([{"step": i, "loss/mse": v} for i, v in enumerate(losses)])
    plot._redraw()
    plot.show()
    qtbot.waitExposed(plot)
    plot.plot.getViewBox().autoRange()
    px = _labelled_px(plot)
    line = QFontMetrics(QFont()).height()
    assert len(px) >= 2                                    # the axis says where the curve is
    assert min(b - a for a, b in zip(px, px[1:])) >= line  # each label a text line from the next


def test_plots_have_no_value_axis_label_to_collide_and_keep_a_readable_height(qtbot):
    plot, quality = LossPlot(keys=("gan/d_real", "gan/d_fake"), title="D(real) / D(fake) / ADA p", log=False), MetricPlot()
    for p in (plot, quality):
        qtbot.addWidget(p)
        assert not p.plot.getAxis("left").label.isVisible() or not p.plot.getAxis("left").labelText
        assert p.plot.minimumHeight() >= PLOT_MIN_HEIGHT


def test_at_1024x640_the_train_tab_scrolls_rather_than_squashing_the_quality_plot(qtbot, tmp_path):
    w = MainWindow(runs_root=tmp_path / "runs", session=WorkerSession(FakeClient()))
    qtbot.addWidget(w)
    w.resize(1024, 640)
    w.show()
    qtbot.waitExposed(w)
    w._on_rows([{"step": 1, "loss/d": 1.3, "loss/g": 0.7, "gan/d_real": 0.1, "gan/d_fake": -0.1,
                 **{f"kl/z{i}": 0.01 * i for i in range(16)}}])    # three groups, two long wrapped titles
    qtbot.waitUntil(lambda: sum(p.isVisible() for p in w.plots.values()) >= 3)
    QApplication.processEvents()
    for p in [*(p for p in w.plots.values() if p.isVisible()), w.quality_plot]:
        assert p.plot.height() >= PLOT_MIN_HEIGHT, p.title
        assert p.wrapped.geometry().bottom() < p.plot.geometry().top(), p.title   # the title never covers it
        assert p.plot.geometry().bottom() <= p.height()                            # nor is the plot cut
    w.close()
