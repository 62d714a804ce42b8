"""Compare runs: one logged value of two or more runs overlaid in one plot, by step or by training
time, a legend naming the runs. The curves come from each run's metrics.jsonl (engine/runs_index)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.panels.plots_panel import COLORS, SMOOTHING
from app.qt_util import signals_blocked
from engine.core.logkeys import QUALITY
from engine.runs.index import read_curves

X_AXES = {"step": "step", "training time": "training time (s)"}

_MORE_COLORS = [(0, 150, 160), (170, 110, 60), (110, 110, 200), (150, 150, 20)]


def smoothed(y: np.ndarray, factor: float = SMOOTHING) -> np.ndarray:
    """The EMA the loss plots draw (TensorBoard's smoothing slider), per logged point."""
    out = np.empty_like(y)
    acc = None
    for i, v in enumerate(y):
        acc = v if acc is None or not np.isfinite(acc) else factor * acc + (1 - factor) * v
        out[i] = acc
    return out


class RunCompare(QWidget):
    """set_runs([...run dirs]) then pick the value and the x axis; curves are named after the runs."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runs: list[Path] = []
        self.data: dict[Path, dict] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}   # run name -> its curve
        self.key = QComboBox()
        self.key.setToolTip("The logged value to compare (losses, and sample-quality scores when a run has them)")
        self.x_axis = QComboBox()
        self.x_axis.addItems(list(X_AXES))
        self.x_axis.setToolTip("Align the runs by optimizer step, or by seconds of training (continued across "
                               "resumes; the time a run was stopped does not count)")
        self.smooth = QCheckBox("smoothed")
        self.smooth.setChecked(True)
        self.log = QCheckBox("log scale")
        self.log.setChecked(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor=(40, 40, 40), brush=(255, 255, 255, 210))
        self.note = QLabel("Select two or more runs in the list (Ctrl- or Shift-click), then press Compare.")
        self.note.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(QLabel("value"))
        top.addWidget(self.key, 1)
        top.addWidget(QLabel("x axis"))
        top.addWidget(self.x_axis)
        top.addWidget(self.smooth)
        top.addWidget(self.log)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.note)
        lay.addWidget(self.plot, 1)
        for box in (self.key, self.x_axis):
            box.currentIndexChanged.connect(self.redraw)
        self.smooth.toggled.connect(self.redraw)
        self.log.toggled.connect(self.redraw)

    def set_runs(self, runs) -> None:
        self.runs = [Path(r) for r in runs]
        self.reload()

    def reload(self) -> None:
        """Read the runs' curves again (a live run grew) and redraw."""
        self.data = {r: read_curves(r, ("loss/", QUALITY)) for r in self.runs}
        count: dict[str, int] = {}
        for curves in self.data.values():
            for k in curves:
                count[k] = count.get(k, 0) + 1
        # the values most runs share first (losses before quality scores): the first one is shown
        keys = sorted(count, key=lambda k: (-count[k], not k.startswith("loss/"), k))
        current = self.key.currentText()
        with signals_blocked(self.key):
            self.key.clear()
            self.key.addItems(keys)
            if current in keys:
                self.key.setCurrentText(current)
        if len(self.runs) < 2:
            self.note.setText("Select two or more runs in the list (Ctrl- or Shift-click), then press Compare.")
        else:
            self.note.setText("")
        self.note.setVisible(bool(self.note.text()))
        self.redraw()

    def redraw(self) -> None:
        self.plot.clear()
        self.legend.clear()
        self.curves = {}
        key = self.key.currentText()
        by_time = self.x_axis.currentText() == "training time"
        self.plot.setLabel("bottom", X_AXES[self.x_axis.currentText()])
        self.plot.setLabel("left", key)
        series = []
        for r in self.runs:
            if key in self.data.get(r, {}):
                steps, times, values = self.data[r][key]
                x = times if by_time else steps
                keep = np.isfinite(x) & np.isfinite(values)
                series.append((r, x[keep], values[keep]))
        log = self.log.isChecked() and all((v > 0).all() for _, _, v in series)
        self.plot.setLogMode(y=log)
        missing = [r.name for r in self.runs if key and key not in self.data.get(r, {})]
        if missing and len(self.runs) >= 2:
            self.note.setText(f"{key} is not logged by: {', '.join(missing)}")
            self.note.show()
        palette = COLORS + _MORE_COLORS
        for i, (r, x, y) in enumerate(series):
            color = palette[i % len(palette)]
            if self.smooth.isChecked() and not key.startswith(QUALITY):
                self.plot.plot(x, y, pen=pg.mkPen((*color, 60), width=1))
                y = smoothed(y)
            self.curves[r.name] = self.plot.plot(x, y, pen=pg.mkPen(color, width=2), name=r.name,
                                                 symbol="o" if key.startswith(QUALITY) else None,
                                                 symbolSize=6, symbolBrush=color)
