"""Family comparison: checkpoints of any families trained on the same dataset in one table and one
plot (quality against sampling speed), measured by `genlab-engine compare` (engine/ops/compare.py) in
an engine process of its own: FD (FID with the Inception weights, else FD-domain), precision,
recall, bits/dim where the family has a likelihood, images/s and network evaluations per image,
training time and size. Nothing is measured until Measure is pressed (the samples count is set
first). A progress bar that moves inside each long batch, an ETA that counts down between progress
events, Cancel (kills the process), Open… (a comparison saved earlier: a queued comparison's JSON, an
exported CSV), and Export CSV… / Export PNG… (the table and the plot as one picture). A comparison
the training queue runs (comparisons/<group>.json) is shown by itself once it is written (watch)."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                               QPushButton, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from app.engine_client import ResultJob
from app.panels.plots_panel import COLORS
from app.qt_util import human_duration
from engine.core import metrics
from engine.runs.compare_table import ComparisonFileError, best_index, pareto_front, read_comparison, write_csv

_MORE_COLORS = [(0, 150, 160), (170, 110, 60), (110, 110, 200), (150, 150, 20)]


class CompareJob(ResultJob):
    """`genlab-engine compare --checkpoints ...`: progress events (with the overall fraction), then
    one result event with the rows (done). Cancel kills the process."""

    progressed = Signal(dict)   # the progress event: stage, done, total, checkpoint, checkpoints, fraction

    def compare(self, checkpoints: list[str], n: int, steps: int | None = None, device: str | None = None) -> None:
        args = ["compare", "--checkpoints", *[str(c) for c in checkpoints], "--n", str(n)]
        if steps:
            args += ["--steps", str(steps)]
        if device:
            args += ["--device", device]
        self.run_command(*args)

    def on_progress(self, ev: dict) -> None:
        self.progressed.emit(ev)


# ---- cells -------------------------------------------------------------------------------------
def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_params(v) -> str:
    if not _num(v):
        return "–"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{unit}"
    return str(int(v))


def fmt(v, spec: str) -> str:
    return format(v, spec) if _num(v) else "–"


def fmt_rate(v) -> str:
    """Images/s: whole numbers from 100 up, three significant digits below."""
    return "–" if not _num(v) else f"{v:.0f}" if v >= 100 else f"{v:.3g}"


_ARROWS = {metrics.LOWER: " ↓", metrics.HIGHER: " ↑"}
FD = "fd"   # the quality axis: FID, or FD-domain, as the rows' fd_kind says


def _metric_columns(fd_kind: str) -> list[tuple[str, str, callable]]:
    """The metric registry's table columns: fd (titled by fd_kind), precision, recall, bits/dim."""
    return [((fd_kind if v.column_name == FD else v.title) + _ARROWS.get(v.direction, ""), v.column_name,
             lambda x, f=v.fmt: fmt(x, f)) for _, v in metrics.values() if v.table == metrics.TABLE_COLUMN]


# (title, the row key it shows (best marked when it has a direction), how to format it)
def table_columns(fd_kind: str) -> list[tuple[str, str, callable]]:
    return [("family", "family", str), ("run", "run", str), ("step", "step", lambda v: str(v)),
            *_metric_columns(fd_kind),
            ("img/s ↑", "images_per_s", fmt_rate), ("NFE", "nfe", lambda v: fmt(v, "d")),
            ("training time", "train_seconds", lambda v: human_duration(v) if _num(v) else "–"),
            ("params", "params", fmt_params)]


def detail_text(r: dict) -> str:
    """The registry's detail values of a row, for its tooltip: 'KID 0.01 ± 0.002 · IS 2.5'
    (a value without a number is left out; its spread follows it)."""
    spreads = {v.spread_of: v for _, v in metrics.values() if v.table == metrics.TABLE_DETAIL and v.spread_of}
    parts = []
    for _, v in metrics.values():
        if v.table != metrics.TABLE_DETAIL or v.spread_of or not _num(r.get(v.column_name)):
            continue
        sd = spreads.get(v.key)
        parts.append(f"{v.title} {fmt(r.get(v.column_name), v.fmt)}"
                     + (f" ± {fmt(r.get(sd.column_name), sd.fmt)}" if sd is not None else ""))
    return " · ".join(parts)


def row_tooltip(r: dict) -> str:
    detail = detail_text(r)
    lines = [str(r.get("checkpoint", "")), *([detail] if detail else []),
             f"sampling: {r.get('n')} images in {fmt(r.get('sample_seconds'), '.2f')} s (batches of "
             f"{r.get('sample_batch')}, {r.get('device')})" + (
                 f", {r['sample_steps']} sampler steps" if r.get("sample_steps") else ""),
             f"training: {r.get('train_steps')} steps × batch {r.get('batch_size')} = {r.get('images_seen')} images"
             + (f" (time from {r['train_time_source']})" if r.get("train_time_source") else "")]
    if r.get("bpd_split"):
        lines.append(f"bits/dim on {r.get('bpd_images')} {r['bpd_split']} images")
    return "\n".join(lines)


PICK = "Pick checkpoints of any families trained on the same dataset (Runs: select runs, then Compare families…)."
WATCH_MS = 2000   # how often a queued comparison's result file is looked for


class FamilyCompare(QWidget):
    """set_checkpoints(paths), then Measure (start()); show_result(result event) fills the table
    and the plot (the job's `done` calls it); load_file(path) shows one saved earlier; watch(path)
    shows a queued comparison's result once it is written."""

    plan_requested = Signal()   # "Compare families on this data…": train presets in the queue, then compare

    def __init__(self, parent=None):
        super().__init__(parent)
        self.checkpoints: list[str] = []
        self.rows: list[dict] = []
        self.plotted: list[tuple[int, float, float]] = []   # (row, images/s, FD) of each point drawn
        self._t0 = 0.0
        self._fraction, self._t_fraction = 0.0, 0.0   # the last progress event's fraction, and when it came
        self.source = ""                              # where the rows shown came from ("" : measured here)
        self.watching: Path | None = None             # a queued comparison's result file, until it is written
        self._watch_label = ""
        # dialogs, replaceable (tests): ask_save(title, suggested path, filter) -> str | None
        self.ask_save = lambda title, path, flt: QFileDialog.getSaveFileName(self, title, path, flt)[0] or None
        # ask_open(title, folder, filter) -> str | None
        self.ask_open = lambda title, folder, flt: QFileDialog.getOpenFileName(self, title, folder, flt)[0] or None
        self.open_folder = str(Path.home())

        self.job = CompareJob(self)
        self.job.progressed.connect(self._on_progress)
        self.job.done.connect(self.show_result)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)

        self.header = QLabel(PICK)
        self.header.setWordWrap(True)
        self.n = QSpinBox()
        self.n.setRange(10, 100_000)
        self.n.setValue(500)
        self.n.setSingleStep(100)
        self.n.setSuffix(" samples")
        self.n.setToolTip("Images generated per checkpoint (and real images in the shared reference); the "
                          "same images are timed for images/s. More: steadier numbers, longer wait.")
        self.run_btn = QPushButton("Measure")
        self.run_btn.setToolTip("Sample, time and score every checkpoint against the same real images")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.eta = QLabel("")
        self.eta.setMinimumWidth(90)
        self.plan_btn = QPushButton("Compare families on this data…")
        self.plan_btn.setToolTip("Train presets of several families on the Data panel's dataset for a time budget "
                                 "each (in the training queue), then compare them here")
        self.open_btn = QPushButton("Open…")
        self.open_btn.setToolTip("Show a comparison saved earlier: a queued comparison's JSON "
                                 "(<runs>/comparisons/) or a CSV written by Export CSV…")
        self.csv_btn = QPushButton("Export CSV…")
        self.png_btn = QPushButton("Export PNG…")
        for b in (self.csv_btn, self.png_btn):
            b.setEnabled(False)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.hide()

        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.plot = pg.PlotWidget(background="w")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLogMode(x=True)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setLabel("bottom", "images/s (log scale) → faster")
        self.plot.setLabel("left", "FD ↓ closer to the data")
        self.plot.setMinimumHeight(160)
        self.results = QSplitter(Qt.Vertical)   # what Export PNG… grabs
        self.results.setChildrenCollapsible(False)
        self.results.addWidget(self.table)
        self.results.addWidget(self.plot)
        self.results.setSizes([140, 260])

        top = QHBoxLayout()
        top.addWidget(self.n)
        top.addWidget(self.run_btn)
        top.addWidget(self.cancel_btn)
        top.addWidget(self.progress, 1)
        top.addWidget(self.eta)
        bottom = QHBoxLayout()
        bottom.addWidget(self.plan_btn)
        bottom.addWidget(self.open_btn)
        bottom.addStretch(1)
        bottom.addWidget(self.csv_btn)
        bottom.addWidget(self.png_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.header)
        lay.addLayout(top)
        lay.addWidget(self.note)
        lay.addWidget(self.results, 1)
        lay.addLayout(bottom)

        self.run_btn.clicked.connect(lambda: self.start())
        self.cancel_btn.clicked.connect(self.cancel)
        self.csv_btn.clicked.connect(lambda: self.export_csv())
        self.png_btn.clicked.connect(lambda: self.export_png())
        self.open_btn.clicked.connect(lambda: self.load_file())
        self.plan_btn.clicked.connect(self.plan_requested)
        # the ETA counts down between progress events (a long batch sends none for a while)
        self.ticker = QTimer(self)
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self._tick)
        self.watch_timer = QTimer(self)
        self.watch_timer.setInterval(WATCH_MS)
        self.watch_timer.timeout.connect(self._check_watched)
        self._sync()

    # ---- running -----------------------------------------------------------------------------
    def set_checkpoints(self, paths) -> None:
        self.checkpoints = [str(p) for p in paths]
        names = ", ".join(_short_name(p) for p in self.checkpoints)
        self.header.setText(f"{len(self.checkpoints)} checkpoints: {names}" if self.checkpoints else PICK)
        self.header.setToolTip("\n".join(self.checkpoints))
        self._sync()

    def start(self, paths=None) -> bool:
        """Measure the checkpoints (or `paths`); False when fewer than two or a job runs already."""
        if paths is not None:
            self.set_checkpoints(paths)
        if len(self.checkpoints) < 2 or self.job.is_running():
            if len(self.checkpoints) < 2:
                self._say("Pick two or more checkpoints to compare.", error=True)
            return False
        self._say("")
        self._t0 = time.monotonic()
        self._fraction, self._t_fraction = 0.0, self._t0
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.eta.setText("")
        self.job.compare(self.checkpoints, int(self.n.value()))
        self.ticker.start()
        self._sync()
        return True

    def prepare(self, paths) -> None:
        """The checkpoints to measure, shown and waiting for Measure: the samples count is set first."""
        self.set_checkpoints(paths)
        if len(self.checkpoints) >= 2 and not self.job.is_running():
            self._say("Set the samples per checkpoint, then press Measure (nothing runs until then).")

    def cancel(self) -> None:
        self.job.cancel()

    def shutdown(self) -> None:
        self.job.kill(wait_ms=3000)

    def _on_progress(self, ev: dict) -> None:
        f = float(ev.get("fraction", 0.0))
        self.progress.setValue(int(round(1000 * f)))
        k, total = ev.get("checkpoint", 1), ev.get("checkpoints", len(self.checkpoints))
        name = _short_name(self.checkpoints[k - 1]) if 0 < k <= len(self.checkpoints) else ""
        self.progress.setFormat(f"{k}/{total} {name}: {ev.get('stage', '')} {ev.get('done', 0)}/{ev.get('total', 0)}")
        self._fraction, self._t_fraction = f, time.monotonic()
        self._tick()

    def _tick(self) -> None:
        """The ETA from the last progress event, counted down since: the time the fraction done
        took, scaled to the rest, less the time gone by since that event."""
        now = time.monotonic()
        f = self._fraction
        if f < 0.02:
            self.eta.setText(f"ETA … ({human_duration(now - self._t0)} in)")
            return
        left = (self._t_fraction - self._t0) * (1 - f) / f - (now - self._t_fraction)
        self.eta.setText(f"ETA {human_duration(left)}" if left >= 1 else "ETA any moment now")

    def _on_failed(self, message: str) -> None:
        self.ticker.stop()
        self.progress.setFormat("failed")
        self.eta.setText("")
        self._say(message, error=True)
        self._sync()

    def _on_cancelled(self) -> None:
        self.ticker.stop()
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self.eta.setText("")
        self._sync()

    def _sync(self) -> None:
        running = self.job.is_running()
        self.run_btn.setEnabled(not running and len(self.checkpoints) >= 2)
        self.cancel_btn.setEnabled(running)
        self.n.setEnabled(not running)
        self.open_btn.setEnabled(not running)
        for b in (self.csv_btn, self.png_btn):
            b.setEnabled(bool(self.rows) and not running)

    def _say(self, text: str, error: bool = False) -> None:
        self.note.setStyleSheet("color:#c0392b" if error else "")
        self.note.setText(("✖ " if error and text else "") + text)
        self.note.setVisible(bool(text))

    # ---- results -----------------------------------------------------------------------------
    def show_result(self, ev: dict, source: str = "") -> None:
        """The result event of `genlab-engine compare`: its rows fill the table and the plot.
        source: where it was read from (a file), said above the table; "" for one measured here."""
        self.ticker.stop()
        self.rows = list(ev.get("rows") or [])
        self.source = source
        secs = ev.get("seconds")
        self.progress.setValue(1000)
        self.progress.setFormat(f"done in {human_duration(secs)}" if _num(secs) else "done")
        self.eta.setText("")
        if source:
            cks = [str(r.get("checkpoint")) for r in self.rows if r.get("checkpoint")]
            self.checkpoints = cks   # Measure measures them again
            self.header.setText(f"{len(self.rows)} checkpoints from {source}")
            self.header.setToolTip("\n".join(cks))
        self._fill_table()
        self._draw_plot()
        kinds = {r.get("fd_kind") for r in self.rows if r.get("fd_kind")}
        note = ("FD-domain: GenLab's own features of this dataset (no Inception weights found): it ranks these "
                "checkpoints, but is not comparable with published FIDs. " if "FD-domain" in kinds else "")
        n = ev.get("n")
        self._say(note + (f"All scored against the same {n} real images." if n else
                          "All scored against the same real images."))
        self._sync()

    # ---- a comparison saved earlier --------------------------------------------------------------
    def load_file(self, path: str | Path | None = None, source: str = "") -> bool:
        """Show a comparison written earlier (a queued comparison's JSON, an exported CSV); a file
        that is not one says so in one line and leaves the table as it was."""
        if path is None:
            path = self.ask_open("Open a family comparison", self.open_folder,
                                 "Comparisons (*.json *.csv);;All files (*)")
            if not path:
                return False
        if self.job.is_running():
            return False
        try:
            ev = read_comparison(path)
        except ComparisonFileError as e:
            self._say(str(e), error=True)
            return False
        self.show_result(ev, source=source or str(path))
        return True

    def watch(self, path: str | Path, label: str = "") -> None:
        """A queued comparison writes its result to `path` once its runs have trained: say that it
        is awaited, and show it as soon as it is there (label: what to call it, "comparison 3fa2")."""
        self.watching, self._watch_label = Path(path), label or Path(path).stem
        self._say(f"Waiting for the queued {self._watch_label}: its runs train in the queue (Runs ▸ Queue); "
                  f"its table shows here once {self.watching.name} is written.")
        self.watch_timer.start()
        self._check_watched()

    def _check_watched(self) -> None:
        if self.watching is None or not self.watching.is_file() or self.job.is_running():
            return
        path, label = self.watching, self._watch_label
        self.watching = None
        self.watch_timer.stop()
        self.load_file(path, source=f"the queued {label} ({path})")

    def _fd_kind(self) -> str:
        kinds = {r.get("fd_kind") for r in self.rows if r.get("fd_kind")}
        return kinds.pop() if len(kinds) == 1 else "FD"

    def _fill_table(self) -> None:
        cols = table_columns(self._fd_kind())
        self.table.clear()
        self.table.setColumnCount(len(cols))
        self.table.setRowCount(len(self.rows))
        self.table.setHorizontalHeaderLabels([c[0] for c in cols])
        bold = QFont()
        bold.setBold(True)
        for c, (_, key, show) in enumerate(cols):
            best = best_index(self.rows, key)
            for i, r in enumerate(self.rows):
                it = QTableWidgetItem("–" if r.get(key) is None else show(r.get(key)))
                it.setToolTip(row_tooltip(r))
                if c >= 2:
                    it.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if i == best:
                    it.setFont(bold)
                    it.setBackground(QBrush(QColor(213, 245, 227)))
                if c == 0:
                    it.setForeground(QBrush(QColor(*self._color(i))))
                self.table.setItem(i, c, it)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(1, QHeaderView.Stretch)

    def _color(self, i: int) -> tuple:
        palette = COLORS + _MORE_COLORS
        return palette[i % len(palette)]

    def _draw_plot(self) -> None:
        """x: images/s on a log axis, y: FD; one labelled point per checkpoint, the checkpoints no
        other beats on both joined by a dashed line (the speed-quality front)."""
        self.plot.clear()
        self.plotted = []
        fd_kind = self._fd_kind()
        self.plot.setLabel("left", f"{fd_kind} ↓ closer to the data")
        for i, r in enumerate(self.rows):
            x, y = r.get("images_per_s"), r.get("fd")
            if _num(x) and _num(y) and x > 0:
                self.plotted.append((i, float(x), float(y)))
        if not self.plotted:
            self.plot.setTitle("no checkpoint has both a speed and an FD to plot")
            return
        front = pareto_front(self.rows)
        line = sorted((x, y) for i, x, y in self.plotted if front[i])
        if len(line) > 1:
            self.plot.plot([x for x, _ in line], [y for _, y in line],
                           pen=pg.mkPen((120, 120, 120), width=1, style=Qt.DashLine))
        xs = [math.log10(x) for _, x, _ in self.plotted]   # the view is in log10 units along x
        mid = (min(xs) + max(xs)) / 2
        for (i, x, y), lx in zip(self.plotted, xs):
            color = self._color(i)
            self.plot.plot([x], [y], pen=None, symbol="o", symbolSize=11, symbolBrush=color,
                           symbolPen=pg.mkPen("k" if front[i] else color))
            r = self.rows[i]
            # labels point inward, so the ones at the right edge stay inside the plot
            label = pg.TextItem(f"{r.get('family')} · {r.get('run')}", color=color,
                                anchor=(0, 1) if lx <= mid or len(xs) == 1 else (1, 1))
            label.setPos(lx, y)
            self.plot.addItem(label)
        self.plot.getAxis("bottom").setTicks(log_ticks(min(x for _, x, _ in self.plotted),
                                                       max(x for _, x, _ in self.plotted)))
        (x0, x1), (y0, y1) = plot_ranges(xs, [y for _, _, y in self.plotted])
        self.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        # short: a plot title wider than the pane widens the whole plot past its right edge, and
        # the fastest points are cut off with it; the full sentence is the tooltip
        self.plot.setTitle("best: bottom right ↘ · dashed: speed–quality front", size="8pt")
        self.plot.setToolTip("Best corner: bottom right (fast and close to the data). The dashed line joins "
                             "the speed–quality front: the checkpoints no other is both faster and closer than.")

    # ---- export ------------------------------------------------------------------------------
    def export_csv(self, dest: str | Path | None = None) -> Path | None:
        if not self.rows:
            return None
        if dest is None:
            dest = self.ask_save("Export comparison as CSV", str(Path.home() / "family-comparison.csv"),
                                 "CSV files (*.csv)")
            if not dest:
                return None
        try:
            out = write_csv(self.rows, dest)
        except OSError as e:
            self._say(f"Could not write the CSV: {e}", error=True)
            return None
        self._say(f"Wrote {out}")
        return out

    def export_png(self, dest: str | Path | None = None) -> Path | None:
        """The table and the plot as one PNG (a grab of both, as shown)."""
        if not self.rows:
            return None
        if dest is None:
            dest = self.ask_save("Export comparison as PNG", str(Path.home() / "family-comparison.png"),
                                 "PNG images (*.png)")
            if not dest:
                return None
        dest = Path(dest)
        if not self.results.grab().save(str(dest), "PNG"):
            self._say(f"Could not write {dest}", error=True)
            return None
        self._say(f"Wrote {dest}")
        return dest


def plot_ranges(log_xs: list[float], ys: list[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The view of the speed-quality plot: every point inside with a margin, whatever the spread
    (a GAN thousands of times faster than an autoregressive model): x in log10 units, padded by
    a tenth of the span (at least 0.25 decades: a point's symbol and the label pointing inward fit);
    y padded below, and more above, where the labels sit over their points."""
    x0, x1 = min(log_xs), max(log_xs)
    xpad = max(0.25, 0.1 * (x1 - x0))
    y0, y1 = min(ys), max(ys)
    span = max(y1 - y0, 0.1 * max(abs(y0), abs(y1)), 1e-3)
    return (x0 - xpad, x1 + xpad), (y0 - 0.12 * span, y1 + 0.25 * span)


def log_ticks(lo: float, hi: float) -> list[list[tuple[float, str]]]:
    """Ticks of a log10 axis from lo to hi (data units > 0): 1, 10, 100, ... as the major level,
    2 and 5 times those as the minor one, labelled plainly (20, 500, 2k), not as 2·10¹."""
    major, minor = [], []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2):
        for m in (1, 2, 5):
            v = m * 10.0 ** k
            (major if m == 1 else minor).append((math.log10(v), _plain(v)))
    return [major, minor]


def _plain(v: float) -> str:
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def _short_name(path: str) -> str:
    """run-name/step_000500 for a checkpoint inside a run folder, else its file name."""
    p = Path(path)
    if p.parent.name == "checkpoints":
        return f"{p.parent.parent.name}/{p.stem}"
    return p.name
