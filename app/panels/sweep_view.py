"""FD against network evaluations for the window's checkpoint: the engine's sweep op
(engine/ops/sweep.py) run in the shared worker, with progress, time left and Cancel (a Canvas of
the WorkerSession), its result drawn as one curve per solver on a log NFE axis, the reference
point (DDIM-50) as a dashed line and the summary under it (per solver, the fewest NFE that reaches
it). The solvers offered are the loaded model's (its Capabilities), never a list of our own. The
newest sweep of the checkpoint's run (runs/<run>/sweeps/*/sweep.json) is shown when the view opens.
Opened from the quality plot's "FD vs NFE…" button in a dialog of its own."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.qt_util import FlowLayout
from engine.core.capabilities import Capabilities

DEFAULT_STEPS = "1,2,4,8,16,32"
# one colour per solver, in the order the result lists them (the engine's PNG uses the same)
COLOURS = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233),
           (120, 120, 120), (150, 60, 30), (60, 60, 160), (100, 140, 20)]


def parse_steps(text: str) -> list[int]:
    """'1, 2,4' -> [1, 2, 4]; a ValueError in one line for anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(f"steps {text!r}: give comma-separated whole numbers of at least 1, e.g. {DEFAULT_STEPS}")
    return [int(p) for p in parts]


def newest_sweep(checkpoint: str) -> Path | None:
    """The newest sweep.json of the checkpoint's run (runs/<run>/checkpoints/x.safetensors)."""
    if not checkpoint:
        return None
    ck = Path(checkpoint)
    run = ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent
    found = sorted((run / "sweeps").glob("*/sweep.json"))
    return found[-1] if found else None


class SweepView(Canvas):
    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.record: dict | None = None     # the sweep shown: the op's result, or a sweep.json read back
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.checks: dict[str, QCheckBox] = {}
        self.title = QLabel("<b>FD against network evaluations</b> — every solver of the model at several "
                            "step counts; lower and further left is better")
        self.title.setWordWrap(True)
        self.solver_row = QWidget()
        self.solver_flow = FlowLayout(self.solver_row)
        self.steps = QLineEdit(DEFAULT_STEPS)
        self.steps.setToolTip("Step counts to sample each solver at (a count that visits no new noise level "
                              "than a smaller one is sampled once)")
        self.samples = QSpinBox(minimum=10, maximum=100_000, value=500, singleStep=100)
        self.samples.setToolTip("Images generated per point (and real images in the reference); "
                                "more: steadier FD, longer sweep")
        self.deterministic = QCheckBox("deterministic solvers only")
        self.deterministic.setToolTip("Skip the stochastic solvers (ancestral DDPM, DDIM with eta > 0)")
        self.run_btn = QPushButton("Run sweep")
        self.run_btn.clicked.connect(self.start)
        self.png_btn = QPushButton("Export PNG…")
        self.csv_btn = QPushButton("Export CSV…")
        self.png_btn.clicked.connect(lambda: self._ask_export("PNG image (*.png)", ".png", self.export_png))
        self.csv_btn.clicked.connect(lambda: self._ask_export("CSV table (*.csv)", ".csv", self.export_csv))
        for b in (self.png_btn, self.csv_btn):
            b.setEnabled(False)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLogMode(x=True, y=False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "network evaluations (NFE)")
        self.plot.setLabel("left", "FD")
        self.plot.setMinimumHeight(220)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.ref_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen((110, 110, 110), style=Qt.DashLine))
        self.ref_line.hide()
        self.plot.addItem(self.ref_line)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("solvers", self.solver_row)
        form.addRow("steps", self.steps)
        form.addRow("samples per point", self.samples)
        form.addRow("", self.deterministic)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addStretch(1)
        buttons.addWidget(self.png_btn)
        buttons.addWidget(self.csv_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress_row)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.summary)
        lay.addWidget(self.status)
        self.run_btn.setEnabled(False)
        if not session.checkpoint:
            self.status.setText("no checkpoint: open one in the toolbar or the runs browser")
        if session.capabilities is not None and session.is_loaded():
            self._on_loaded(session.capabilities)
        self.on_checkpoint_changed(session.checkpoint)

    # ---- the model -------------------------------------------------------------------------------
    def apply_capabilities(self, caps: Capabilities) -> None:
        """One check box per solver the model offers; a model with none says so in one line."""
        for box in self.checks.values():
            self.solver_flow.removeWidget(box)
            box.deleteLater()
        self.checks = {}
        solvers = list(caps.sampling.solvers) if caps.sampling else []
        for name in solvers:
            box = QCheckBox(name)
            box.setChecked(True)
            self.checks[name] = box
            self.solver_flow.addWidget(box)
        self.run_btn.setEnabled(bool(solvers))
        self.status.setText("" if solvers else
                            f"a {caps.family} model has no solvers: FD vs NFE needs a family that samples "
                            f"iteratively (diffusion, flow matching)")

    def on_checkpoint_changed(self, path: str) -> None:
        """The newest sweep of the checkpoint's run, or an empty plot: another run's curves never stay."""
        found = newest_sweep(path)
        if found is None:
            self.clear_plot()
            return
        try:
            self.show_record(json.loads(found.read_text()), folder=found.parent)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.show_error(f"{found}: cannot be read ({e})")

    # ---- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            steps = parse_steps(self.steps.text())
        except ValueError as e:
            self.show_error(str(e))
            return
        solvers = [name for name, box in self.checks.items() if box.isChecked()]
        if not solvers:
            self.show_error("tick at least one solver")
            return
        self.status.setText("")
        self.run_btn.setEnabled(False)
        self.request("sweep", solvers=solvers, steps=steps, samples=self.samples.value(),
                     deterministic=self.deterministic.isChecked())

    def on_done(self, rid: int, kind: str) -> None:
        super().on_done(rid, kind)
        self.run_btn.setEnabled(bool(self.checks))

    def on_result(self, ev: dict) -> None:
        self.progress.setFormat("done")
        self.show_record(ev, folder=Path(ev["folder"]) if ev.get("folder") else None)
        if ev.get("note"):
            self.status.setText(ev["note"])

    # ---- the plot --------------------------------------------------------------------------------
    def show_record(self, record: dict, folder: Path | None = None) -> None:
        """Draw a sweep: its points (solver, nfe, fd), its reference and summary."""
        self.clear_plot()
        self.record = {**record, "folder": str(folder) if folder else record.get("folder", "")}
        points = record["points"]
        solvers = list(dict.fromkeys(p["solver"] for p in points))
        for i, name in enumerate(solvers):
            mine = sorted((p for p in points if p["solver"] == name), key=lambda p: p["nfe"])
            colour = COLOURS[i % len(COLOURS)]
            self.curves[name] = self.plot.plot([p["nfe"] for p in mine], [p["fd"] for p in mine], name=name,
                                               pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=7,
                                               symbolBrush=pg.mkBrush(*colour), symbolPen=None)
        title = record.get("metric_title") or "FD"
        self.plot.setLabel("left", title)
        ref = record.get("reference")
        if ref:
            self.ref_line.setValue(ref["fd"])
            self.ref_line.show()
        else:
            self.ref_line.hide()
        lines = list(record.get("summary") or [])
        head = (f"{ref['solver']}-{ref['steps']} {title}: {ref['fd']:.4g} ({ref['nfe']} NFE, dashed)" if ref else "")
        where = f"saved in {self.record['folder']}" if self.record["folder"] else ""
        self.summary.setText("<br>".join(x for x in (head, *lines, where) if x))
        for b in (self.png_btn, self.csv_btn):
            b.setEnabled(True)

    def clear_plot(self) -> None:
        self.record = None
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves = {}
        self.legend.clear()
        self.ref_line.hide()
        self.summary.setText("")
        for b in (self.png_btn, self.csv_btn):
            b.setEnabled(False)

    # ---- export ----------------------------------------------------------------------------------
    def _ask_export(self, filt: str, suffix: str, write) -> None:
        start = str(Path(self.record.get("folder") or Path.home()) / f"sweep{suffix}") if self.record else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export the sweep", start, filt)
        if path:
            write(path if path.endswith(suffix) else path + suffix)

    def export_png(self, path: str) -> None:
        """The plot as shown."""
        if not self.plot.grab().save(str(path), "PNG"):
            self.show_error(f"{path}: the image could not be written")

    def export_csv(self, path: str) -> None:
        """The sweep's table: the engine's sweep.csv, or (a record without one) its points."""
        if self.record is None:
            return
        src = Path(self.record.get("folder") or "") / "sweep.csv"
        try:
            if self.record.get("folder") and src.is_file():
                shutil.copyfile(src, path)
            else:
                import csv
                with open(path, "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["solver", "steps", "nfe", self.record.get("metric") or "fd"])
                    for p in self.record["points"]:
                        w.writerow([p["solver"], p["steps"], p["nfe"], p["fd"]])
        except OSError as e:
            self.show_error(f"{path}: {e.strerror or e}")


class SweepDialog(QDialog):
    """The sweep view in a window of its own (not modal: the Train tab stays usable)."""

    def __init__(self, session, parent=None, settings=None):
        super().__init__(parent)
        self.setWindowTitle("FD vs NFE")
        self.view = SweepView(session, self, settings)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.view)
        self.resize(760, 620)
