"""How well a trained detector tells each generator's images from real ones, as a person reads it:
a table per test generator (trained on or held out; accuracy at 0.5, average precision, AUC), the
ROC curves, the train × test heat map of leave-one-generator-out (when the detector has one) and
the format-bias control in one line (how much a set with JPEG real images and PNG fakes inflates
the scores). Accuracy and AP are both shown because a detector often ranks an unseen generator's
images well (AP, AUC) while its 0.5 threshold is off (Wang et al. 2020). Nothing is computed here:
the numbers are the engine's (engine/detect/evaluation.py), read from the op's answer or DET.json."""
from __future__ import annotations

import re

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from app.canvases.side_column import wrapping

COLUMNS = ("Test generator", "Trained on", "Acc @ 0.5", "AP", "AUC", "Real acc", "Fake acc")
CURVE_COLORS = ("#2a7ab9", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d")


def mean_of(results: dict, key: str) -> float | None:
    values = [m[key] for m in results.values() if isinstance(m, dict) and key in m]
    return sum(values) / len(values) if values else None


def bias_line(control: dict | None, fair: dict) -> str:
    """The format-bias control as one sentence: the fair mean AUC, the biased set's, and what the
    biased detector does on the fair test set. '' without a control."""
    if not control:
        return ""
    biased, on_fair = control.get("biased_test") or {}, control.get("biased_detector_on_fair_test") or {}
    fair_auc, biased_auc, transfer = mean_of(fair, "auc"), mean_of(biased, "auc"), mean_of(on_fair, "auc")
    if fair_auc is None or biased_auc is None:
        return ""
    q = control.get("real_jpeg_quality", 75)
    text = (f"Format-bias control: with the real images JPEG {q} and the fakes PNG, the mean AUC reads "
            f"{biased_auc:.3f} (fair: {fair_auc:.3f}, {biased_auc - fair_auc:+.3f})")
    if transfer is not None:
        text += f"; that biased detector scores {transfer:.3f} on the fair test, having learned the format"
    return text + "."


def heat_color(value: float) -> QColor:
    """White at 0.5 (chance), green towards 1, red towards 0 (as the engine's heat-map PNG)."""
    t = min(abs(value - 0.5) * 2, 1.0)
    low = int(255 * (1 - t * 0.75))
    return QColor(low, 255, low) if value >= 0.5 else QColor(255, low, low)


def short_name(name: str) -> str:
    """A generator's label, family/run/step ('gan/20261207-172553-dcgan-digits/step_000040'), as
    'dcgan-digits@40': the run's name without its start time, and the step, tell generators apart
    in a narrow column; the whole label is in the tooltip."""
    parts = name.split("/")
    if len(parts) != 3:
        return name
    family, run, step = parts
    run = re.sub(r"^\d{8}-\d{6}-?", "", run) or family
    return f"{run}@{re.sub(r'^step_0*(?=.)', '', step)}"


def short_names(names) -> str:
    """'a@1, b@2 and 3 more'."""
    names = [short_name(n) for n in names]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") if names else "?"


class DetectorEvalView(QWidget):
    """show(report) with report = {"title", "statement", "results": generator -> metrics,
    "format_bias_control": {...} | None, "leave_one_out": {"matrix": {...}} | None}."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary = wrapping(QLabel("<i>Train a detector or evaluate one to see how it does per generator.</i>"))
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(False)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setToolTip("AP and AUC only rank the images; accuracy also needs the 0.5 threshold to be right, "
                              "which it often is not on a generator the detector never saw")
        self.bias = wrapping(QLabel(""))
        self.bias.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.roc = pg.PlotWidget()
        self.roc.setBackground("w")
        self.roc.setMinimumSize(220, 180)
        self.roc.setTitle("ROC", size="9pt")
        self.roc.setLabel("bottom", "false positive rate (real called generated)")
        self.roc.setLabel("left", "true positive rate")
        self.roc.setXRange(0, 1, padding=0.02)
        self.roc.setYRange(0, 1, padding=0.02)
        self.roc.getPlotItem().setAspectLocked(False)
        self.roc.addLegend(offset=(-5, -5), labelTextSize="8pt")
        self.heat_title = QLabel("")
        self.heat = QTableWidget(0, 0)
        self.heat.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.heat.setSelectionMode(QAbstractItemView.NoSelection)
        self.heat.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.heat.verticalHeader().setSectionResizeMode(QHeaderView.Stretch)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 3)
        ll.addWidget(self.bias)
        ll.addWidget(self.heat_title)
        ll.addWidget(self.heat, 2)
        self.split = QSplitter(Qt.Horizontal)
        self.split.setChildrenCollapsible(False)
        self.split.addWidget(left)
        self.split.addWidget(self.roc)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.summary)
        lay.addWidget(self.split, 1)
        self.show_heat(None)

    # ---- the report --------------------------------------------------------------------------------
    def show_report(self, report: dict) -> None:
        results = report.get("results") or {}
        title, statement = report.get("title", ""), report.get("statement", "")
        self.summary.setText(f"<b>{title}</b>" + (f"<br><small>{statement}</small>" if statement else ""))
        self.fill_table(results)
        self.plot_roc(results)
        line = bias_line(report.get("format_bias_control"), results)
        self.bias.setText(f"<small>{line}</small>" if line else
                          "<small><i>No format-bias control with this report.</i></small>")
        self.show_heat((report.get("leave_one_out") or {}).get("matrix"))

    def fill_table(self, results: dict) -> None:
        self.table.setRowCount(0)
        for name, m in results.items():
            i = self.table.rowCount()
            self.table.insertRow(i)
            item = QTableWidgetItem(short_name(name))
            item.setToolTip(name)
            self.table.setItem(i, 0, item)
            seen = m.get("seen_in_training")
            trained = QTableWidgetItem("yes" if seen else "no (held out)" if seen is not None else "?")
            if seen is False:
                font = QFont(trained.font())
                font.setBold(True)
                trained.setFont(font)
            self.table.setItem(i, 1, trained)
            for j, key in enumerate(("accuracy", "average_precision", "auc", "real_accuracy", "fake_accuracy"), 2):
                value = m.get(key)
                cell = QTableWidgetItem("—" if value is None else f"{value:.3f}")
                cell.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if key == "accuracy" and m.get("confusion"):
                    c = m["confusion"]
                    cell.setToolTip(f"real called real {c['real_called_real']}, real called generated "
                                    f"{c['real_called_fake']}\ngenerated called real {c['fake_called_real']}, "
                                    f"generated called generated {c['fake_called_fake']}")
                self.table.setItem(i, j, cell)

    def plot_roc(self, results: dict) -> None:
        plot = self.roc.getPlotItem()
        plot.clear()
        self.roc.plot([0, 1], [0, 1], pen=pg.mkPen("#999999", width=1, style=Qt.DashLine))   # chance
        for k, (name, m) in enumerate(results.items()):
            roc = m.get("roc") or {}
            if roc.get("fpr"):
                label = f"{short_name(name)} (AUC {m.get('auc', float('nan')):.2f})"
                self.roc.plot(roc["fpr"], roc["tpr"], name=label,
                              pen=pg.mkPen(CURVE_COLORS[k % len(CURVE_COLORS)], width=2))

    def roc_curves(self) -> list:
        """The generators' ROC curves (the chance diagonal left out)."""
        return [c for c in self.roc.getPlotItem().listDataItems() if c.name()]

    def show_heat(self, matrix: dict | None) -> None:
        """The leave-one-generator-out AUC matrix (rows: what a fold trained on; columns: test
        generators; the held-out cell of each row in bold), or a line saying there is none."""
        has = bool(matrix and matrix.get("values"))
        self.heat.setVisible(has)
        if not has:
            self.heat_title.setText("<small><i>No leave-one-generator-out matrix: tick it when training with two "
                                    "generators or more.</i></small>")
            return
        rows, cols, values = matrix["rows"], matrix["columns"], matrix["values"]
        self.heat_title.setText(f"<small><b>Leave one generator out</b>: {matrix.get('metric', 'auc').upper()}, "
                                f"trained on (rows) × tested on (columns); bold: the generator left out</small>")
        self.heat.setRowCount(len(rows))
        self.heat.setColumnCount(len(cols))
        self.heat.setVerticalHeaderLabels([f"all but {short_name(r[len('all but '):])}" if r.startswith("all but ")
                                           else r for r in rows])
        self.heat.setHorizontalHeaderLabels([short_name(c) for c in cols])
        for j, c in enumerate(cols):
            self.heat.horizontalHeaderItem(j).setToolTip(c)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                v = float(values[i][j])
                cell = QTableWidgetItem(f"{v:.3f}")
                cell.setTextAlignment(Qt.AlignCenter)
                cell.setBackground(QBrush(heat_color(v)))
                cell.setForeground(QBrush(QColor("black")))
                cell.setToolTip(f"trained on {r}, tested on {c}: {v:.3f}")
                if r == f"all but {c}":
                    font = QFont(cell.font())
                    font.setBold(True)
                    cell.setFont(font)
                self.heat.setItem(i, j, cell)
