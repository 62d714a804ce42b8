"""Mask editor latency: brush stroke segment to repainted widget, on a 512x512 image shown at 2x
(1024x1024 on screen), offscreen. Each sample is one mouse-move event sent to the painting view
(the segment painted into the mask, the overlay's dirty box rebuilt, the widget region invalidated)
plus the event loop pass that repaints it. Several brushes, 8 image px (16 screen px) between moves,
like a quick drag. Also reports one full repaint of the view. Goal: < 16 ms per segment (60 Hz).

    python benchmarks/mask_editor_latency.py [--moves 300]
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

from common import write_result

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QObject, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.widgets.mask_editor import MaskEditor  # noqa: E402

BRUSHES = [  # (diameter in image px, hardness)
    (8, 1.0), (32, 1.0), (32, 0.5), (128, 0.5),
]


class PaintCounter(QObject):
    def __init__(self):
        super().__init__()
        self.n = 0

    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Paint:
            self.n += 1
        return False


def mouse(kind, pos: QPointF, buttons=Qt.LeftButton, button=Qt.LeftButton) -> QMouseEvent:
    return QMouseEvent(kind, pos, pos, button, buttons, Qt.NoModifier)


def stats(v) -> dict:
    return {"median_ms": round(float(np.median(v)), 3), "p95_ms": round(float(np.percentile(v, 95)), 3),
            "max_ms": round(float(np.max(v)), 3)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--moves", type=int, default=300, help="mouse moves per brush")
    a = p.parse_args()
    app = QApplication.instance() or QApplication([])
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.IniFormat)
    ed = MaskEditor(settings=settings)
    rng = np.random.default_rng(0)
    ed.set_image((rng.random((512, 512, 3)) * 255).astype(np.uint8))
    ed.show()
    ed.resize(1060, 1160)
    app.processEvents()
    view = ed.view
    ed.fit_to_window()
    app.processEvents()
    assert view.scale() == 2, (view.scale(), view.size())
    counter = PaintCounter()
    view.installEventFilter(counter)

    results, all_ms = {}, []
    for size, hardness in BRUSHES:
        ed.clear()
        ed.set_brush_size(size)
        ed.set_hardness(hardness)
        app.processEvents()
        # a wavy left-to-right-and-back path over the image, 8 image px per move
        pts = []
        x, dx = 20.0, 8.0
        for i in range(a.moves + 10):
            x += dx
            if not 20 <= x <= 490:
                dx, x = -dx, x - 2 * dx
            pts.append(view.image_to_widget(x, 256 + 180 * math.sin(i / 17)))
        QApplication.sendEvent(view, mouse(QEvent.MouseButtonPress, pts[0]))
        app.processEvents()
        ms, missed = [], 0
        for i, pt in enumerate(pts[1:]):
            before = counter.n
            t0 = time.perf_counter()
            QApplication.sendEvent(view, mouse(QEvent.MouseMove, pt, button=Qt.NoButton))
            app.processEvents()  # the paint of the invalidated region happens here
            dt = (time.perf_counter() - t0) * 1000
            missed += counter.n == before
            if i >= 10:  # warm-up
                ms.append(dt)
        QApplication.sendEvent(view, mouse(QEvent.MouseButtonRelease, pts[-1], buttons=Qt.NoButton))
        app.processEvents()
        assert ed.mask().any() and missed == 0, f"{missed} moves were not repainted"
        assert view.scale() == 2
        results[f"size {size} px, hardness {hardness}"] = stats(ms)
        all_ms += ms

    full = []
    for _ in range(30):
        t0 = time.perf_counter()
        view.repaint()
        full.append((time.perf_counter() - t0) * 1000)

    summary = stats(all_ms)
    out = {"image": "512x512 RGB shown at 2x (1024x1024 view), offscreen Qt platform",
           "moves_per_brush": a.moves, "step": "8 image px between moves",
           "segment_to_repaint": results, "all_brushes": summary, "full_repaint": stats(full[5:]),
           "goal_ms": 16, "meets_goal": bool(summary["p95_ms"] < 16)}
    print(f"segment->repaint over all brushes: median {summary['median_ms']:.2f} ms, "
          f"p95 {summary['p95_ms']:.2f} ms (goal < 16 ms)")
    write_result("mask_editor_latency", out)


if __name__ == "__main__":
    main()
