"""Live loss plot: raw and smoothed curves, log-scale toggle. Data arriving only appends to numpy
buffers; a timer redraws at 4 Hz when something changed (pyqtgraph's scrolling-plot pattern). The
plots' timers are staggered: a pyqtgraph repaint costs ~14 ms, and several plots repainting in one
pass of the event loop stalled it for ~90 ms while training (benchmarks/ui_stall.py)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from engine.core import metrics
from engine.core.logkeys import QUALITY, short

REDRAW_MS = 250     # new rows arrive at the run watcher's 4 Hz poll: redrawing faster shows nothing new
STAGGER_MS = 70     # each plot's redraws fall in their own event-loop pass
_plots_made = 0


def redraw_timer(owner, redraw) -> QTimer:
    """A plot's redraw timer, started offset from the plots made before it."""
    global _plots_made
    timer = QTimer(owner, interval=REDRAW_MS, timeout=redraw)
    offset = (_plots_made * STAGGER_MS) % REDRAW_MS
    _plots_made += 1
    QTimer.singleShot(offset, timer, timer.start)
    return timer


def shrinkable(label: QLabel) -> QLabel:
    """A readout cut to the width it is given (its full text is put in the tooltip by its owner):
    a long one (16 KL curves) must not widen the page it sits in."""
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    label.setMinimumWidth(1)   # an explicit minimum (0 would mean none) overrides the text's minimumSizeHint
    return label


def title_label(title: str) -> QLabel:
    """A plot's title, wrapped onto more lines where a long one would widen the page."""
    label = QLabel(f"<b>{title}</b>")
    label.setWordWrap(len(title) > 24)
    return label


PLOT_MIN_HEIGHT = 100   # px of a plot with its axes: below this its ticks and curves cannot be read
                        # (a short window scrolls the Train tab instead of squashing the plots)


class ValueAxis(pg.AxisItem):
    """A plot's value axis whose labels never overlap on a log scale. pyqtgraph labels every
    digit of a decade (0.05, 0.06, … 0.09 in a few pixels near its top); here the decades are
    labelled, then the richest of 2…9, 2-3-5, 2-5 and 3 whose labels lie a text line apart at the
    axis's height (with less than a decade on screen, whichever digits fit); the other digits stay
    as unlabelled ticks."""

    LABELLED = ((2, 3, 4, 5, 6, 7, 8, 9), (2, 3, 5), (2, 5), (3,), ())

    def __init__(self, orientation: str = "left", **kwargs):
        super().__init__(orientation, **kwargs)
        self.setStyle(maxTextLevel=1)   # levels 0 and 1 have text (pyqtgraph's default is 2)

    def _line(self) -> float:
        return QFontMetrics(self.style["tickFont"] or QFont()).height() * 1.1

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        decades = [(spacing, t) for spacing, t in stdTicks if spacing >= 1.0]
        if len(decades) >= 3 or not size or maxVal <= minVal:
            return decades    # many decades: their own ticks say enough
        first, last = int(np.floor(minVal)), int(np.ceil(maxVal))
        per_decade = size / (maxVal - minVal)   # px

        def visible(mults) -> list[float]:
            return [v for d in range(first, last) for v in (d + np.log10([1, *mults])) if minVal < v < maxVal]

        line = self._line() / per_decade   # a text line, in decades
        for mults in self.LABELLED:
            labelled = visible(mults)
            if len(labelled) < 2 or np.min(np.diff(labelled)) >= line:
                break
        if len(labelled) < 2:   # less than a decade shown: any digits that fit, 5 and 2 first
            for v in visible((5, 2, 3, 7, 4, 6, 8, 9)):
                if all(abs(v - u) >= line for u in labelled):
                    labelled.append(v)
            labelled.sort()
        rest = [v for v in visible(range(2, 10)) if not np.isclose(labelled, v).any()]
        return [(None, labelled), (None, []), (None, rest)]   # the third level: ticks without text


class PlotBox(QWidget):
    """A plot with a title above it that may wrap: its minimum height counts the lines the title
    takes at the width it has, so a splitter never squeezes the title over the plot (the plot keeps
    PLOT_MIN_HEIGHT; a wrapped label's own minimum is one line)."""

    wrapped: QLabel | None = None   # the label that wraps, set by the subclass

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        label = self.wrapped
        if label is None or not label.wordWrap() or label.isHidden():
            return hint
        width = label.width() if label.width() > 1 else self.width()   # its share of a row with a readout
        extra = label.heightForWidth(max(1, width)) - label.minimumSizeHint().height()
        return QSize(hint.width(), hint.height() + max(0, extra))

    def resizeEvent(self, e):
        super().resizeEvent(e)
        if e.size().width() != e.oldSize().width():
            self.updateGeometry()   # another width, another number of title lines


SMOOTHING = 0.7  # EMA factor of the smoothed curve (per logged point, like TensorBoard's slider)


class Series:
    def __init__(self, cap: int = 1024):
        self.x = np.empty(cap)
        self.y = np.empty(cap)
        self.s = np.empty(cap)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            for name in ("x", "y", "s"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.empty_like(arr)]))
        prev = self.s[self.n - 1] if self.n else y
        self.x[self.n], self.y[self.n] = x, y
        self.s[self.n] = SMOOTHING * prev + (1 - SMOOTHING) * y if np.isfinite(prev) else y
        self.n += 1

    def clear(self) -> None:
        self.n = 0


COLORS = [(20, 70, 160), (200, 60, 40), (30, 140, 60), (150, 70, 170), (200, 140, 20), (60, 60, 60)]


class LossPlot(PlotBox):
    """Curves over steps for the logged values it wants (a plot group of the family registry: exact
    names, or namespaces ending in '/'): the raw value, faint, and a smoothed one, per value."""

    def __init__(self, keys: tuple[str, ...] = ("loss/",), title: str = "loss", log: bool = True,
                 step_label: bool = True, parent=None):
        """`step_label`: write "step" under the step axis (plots stacked under one that says it
        need not, and keep those pixels for their curves)."""
        super().__init__(parent)
        self.keys, self.title, self.default_log = tuple(keys), title, log
        self.series: dict[str, Series] = {}
        self.curves: dict[str, tuple] = {}
        # no label on the value axis: the title above says what the plot shows, and a long one
        # ("D(real) / D(fake) / ADA p") was cut and ran into the tick values
        self.plot = pg.PlotWidget(background="w", axisItems={"left": ValueAxis()})
        self.plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        if step_label:
            self.plot.setLabel("bottom", "step")
        self.plot.getAxis("left").enableAutoSIPrefix(False)  # plain values: 0.3, not "300 (x0.001)"
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setDownsampling(mode="peak")
        self.plot.setClipToView(True)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.log = QCheckBox("log scale")
        self.log.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        self.log.setChecked(log)  # losses span decades; the log view shows progress late in a run
        self.readout = QLabel("")
        # a long readout (16 KL curves) must not widen the window: it is cut, the tooltip has it all
        shrinkable(self.readout)
        self.wrapped = title_label(title)
        top = QHBoxLayout()
        top.addWidget(self.wrapped)
        top.addWidget(self.readout, 1)
        top.addWidget(self.log)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        self._dirty = False
        self.timer = redraw_timer(self, self._redraw)

    def wants(self, key: str) -> bool:
        return any(key == k or (k.endswith("/") and key.startswith(k)) for k in self.keys)

    def _curves_for(self, key: str):
        if key not in self.curves:
            color = COLORS[len(self.curves) % len(COLORS)]
            single = len(self.keys) == 1 and not self.keys[0].endswith("/")
            raw = self.plot.plot([], [], pen=pg.mkPen((*color, 90), width=1), name="raw" if single else None)
            smooth = self.plot.plot([], [], pen=pg.mkPen(color, width=2.5), name="smoothed" if single else short(key))
            self.curves[key] = (raw, smooth)
            self.series[key] = Series()
        return self.series[key]

    def add_rows(self, rows: list[dict]) -> None:
        for r in rows:
            if "step" not in r:
                continue
            for k, v in r.items():
                if v is None or not isinstance(v, (int, float)) or not self.wants(k):
                    continue
                if v <= 0 and self.log.isChecked():
                    self.log.setChecked(False)  # WGAN and hinge losses go negative: no log axis for them
                self._curves_for(k).append(float(r["step"]), float(v))
                self._dirty = True

    def clear(self) -> None:
        """Empty, as made: no curve, legend entry or readout of the run shown before, and its log
        axis as the plot group wants it (a WGAN run turned it off)."""
        for raw, smooth in self.curves.values():
            self.plot.removeItem(raw)
            self.plot.removeItem(smooth)
        self.legend.clear()
        self.series, self.curves = {}, {}
        self.readout.setText("")
        self.readout.setToolTip("")
        self.log.setChecked(self.default_log)
        self._dirty = False

    def legend_names(self) -> list[str]:
        return [label.text for _, label in self.legend.items]

    def point_count(self, key: str | None = None) -> int:
        if key is not None:
            return self.series[key].n if key in self.series else 0
        return max((s.n for s in self.series.values()), default=0)

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        parts = []
        for k, s in self.series.items():
            raw, smooth = self.curves[k]
            raw.setData(s.x[:s.n], s.y[:s.n])
            smooth.setData(s.x[:s.n], s.s[:s.n])
            if s.n:
                parts.append(f"{short(k)} {s.y[s.n - 1]:.4f}" if len(self.series) > 1 else
                             f"step {int(s.x[s.n - 1])}: {s.y[s.n - 1]:.4f} (smoothed {s.s[s.n - 1]:.4f})")
        self.readout.setText(" · ".join(parts[:6]) + (" · …" if len(parts) > 6 else ""))
        self.readout.setToolTip(" · ".join(parts))


class BarPlot(PlotBox):
    """The newest value of each logged value it wants, as bars (a plot group with bars=True: a
    VAE's KL per latent dimension, where a bar at 0 is a dimension the model does not use)."""

    def __init__(self, keys: tuple[str, ...], title: str, parent=None):
        super().__init__(parent)
        self.keys, self.title = tuple(keys), title
        self.latest: dict[str, float] = {}
        self.step: int | None = None
        self.rows = 0
        self.plot = pg.PlotWidget(background="w", axisItems={"left": ValueAxis()})
        self.plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=pg.mkBrush(20, 70, 160))
        self.plot.addItem(self.bars)
        self.readout = QLabel("")
        shrinkable(self.readout)
        self.wrapped = title_label(title)
        top = QHBoxLayout()
        top.addWidget(self.wrapped)
        top.addWidget(self.readout, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        self._dirty = False
        self.timer = redraw_timer(self, self._redraw)

    wants = LossPlot.wants

    def add_rows(self, rows: list[dict]) -> None:
        changed = False
        for r in rows:
            vals = {k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and self.wants(k)}
            if vals and "step" in r:
                self.latest.update(vals)
                self.step = int(r["step"])
                self.rows += 1
                changed = True
        self._dirty = self._dirty or changed

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        names = sorted(self.latest, key=natural_key)
        heights = [self.latest[k] for k in names]
        self.bars.setOpts(x=list(range(len(names))), height=heights, width=0.7)
        every = max(1, len(names) // 16)   # at most ~16 tick labels
        self.plot.getAxis("bottom").setTicks([[(i, short(k)) for i, k in enumerate(names) if i % every == 0]])
        unused = sum(1 for h in heights if h < 0.01)
        self.readout.setText(f"step {self.step}: {len(names)} bars" + (f", {unused} near 0 (unused)" if unused else ""))

    def clear(self) -> None:
        self.latest, self.step, self.rows = {}, None, 0
        self.bars.setOpts(x=[], height=[])
        self.plot.getAxis("bottom").setTicks(None)
        self.readout.setText("")
        self._dirty = False

    def point_count(self, key: str | None = None) -> int:
        return self.rows if key is None or key in self.latest else 0

    def bar_values(self) -> dict[str, float]:
        return dict(self.latest)


def natural_key(name: str) -> tuple:
    """kl/z2 before kl/z10."""
    import re
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def quality_curve_keys() -> tuple[str, ...]:
    """The logged names the quality plot draws, first found first: the metric registry's curve
    values (quality/fid, or quality/fd_domain without the Inception weights)."""
    return tuple(QUALITY + v.name(d) for m, v in metrics.values() if v.plot == metrics.PLOT_CURVE
                 for d in m.variants())


def quality_readouts(row: dict) -> list[str]:
    """The other scores of an evaluation row, for the status line under the quality plot: each
    readout value of the registry (either extractor's) by its key, 'precision 0.61'."""
    out = []
    for m, v in metrics.values():
        if v.plot == metrics.PLOT_READOUT:
            val = next((row[QUALITY + v.name(d)] for d in m.variants() if QUALITY + v.name(d) in row), None)
            if val is not None:
                out.append(f"{v.key} {val:.3g}")
    return out


def planned_labels(measures: list[str], domain: bool) -> list[str]:
    """What an evaluation pass scoring these measures shows on the quality plot, by the names it
    will log: 'FD-domain, KID-domain, precision-domain, recall-domain' on GenLab's domain features
    (no Inception weights), 'FID, KID, precision, recall' with them. Likelihood measures (bits/dim)
    have a plot of their own."""
    out = []
    for key in measures:
        m = metrics.MEASURES.get(key) if key in metrics.MEASURES else None
        if m is not None and m.needs == metrics.SAMPLING:
            out += [v.label(domain and m.features) for v in m.values if v.plot]
    return out


class MetricPlot(PlotBox):
    """Sample-quality metric over steps (FID, or FD-domain without the Inception weights), with
    points that show their value on hover, and a progress line while a metric pass runs. With
    sweep=True it offers "FD vs NFE…" (sweep_requested): the window opens the solver sweep of its
    checkpoint (app/panels/sweep_view.py)."""

    sweep_requested = Signal()

    def __init__(self, keys=None, parent=None, sweep: bool = False):
        super().__init__(parent)
        self.keys = keys
        self.key: str | None = None
        self.series = Series(64)
        # its step axis is the loss plot's (link_x) and its status line names the step: no "step"
        # label, so a short plot keeps its height for the points
        self.plot = pg.PlotWidget(background="w", axisItems={"left": ValueAxis()})
        self.plot.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.line = self.plot.plot([], [], pen=pg.mkPen((200, 90, 20), width=2))
        self.points = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(200, 90, 20), hoverable=True,
                                         tip="step {x:.0f}: {y:.3f}".format)
        self.plot.addItem(self.points)
        self.title = self.wrapped = QLabel(self.OFF)
        self.title.setWordWrap(True)
        self.every = 0          # the run's metrics.every (0: no passes while training)
        self._x_partner = None  # the plot whose step axis this one shares once it has points
        self.metric_names: list[str] = []   # what its passes will show ("FD-domain", ...)
        self.last_step = 0      # of the rows read: the next pass comes after it
        self.status = QLabel("")
        self.sweep_btn = QPushButton("FD vs NFE…")
        self.sweep_btn.setToolTip("Sample the checkpoint with every solver at several step counts and plot FD "
                                  "against network evaluations (runs in the engine worker)")
        self.sweep_btn.clicked.connect(self.sweep_requested)
        self.sweep_btn.setVisible(sweep)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.sweep_btn, 0, Qt.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.status)

    def link_x(self, other: pg.PlotWidget) -> None:
        """Share `other`'s step axis, from the first point on: an empty plot linked to the loss
        plot would repaint with every loss redraw, in the same event-loop pass (ui_stall.py)."""
        self._x_partner = other
        self._update_link()

    def _update_link(self) -> None:
        want = self._x_partner.getViewBox() if self._x_partner is not None and self.series.n else None
        if self.plot.getViewBox().linkedView(0) is not want:
            self.plot.setXLink(want)

    OFF = "<b>sample quality</b>: off (set Metrics → every N steps, or Evaluate a checkpoint)"

    def set_schedule(self, every: int, measures: list[str], domain: bool = True, step: int | None = None) -> None:
        """The run's evaluation plan (its metrics.every and metrics.metrics; `domain`: scored on
        GenLab's domain features, as without the Inception weights), so the plot says what its
        passes will show and when the next comes, before its first point."""
        self.every, self.metric_names = int(every), planned_labels(measures, domain)
        if step is not None:
            self.last_step = int(step)
        self._title_schedule()

    def _title_schedule(self) -> None:
        if self.key is not None:
            return   # its points say it
        if not self.every:
            self.title.setText(self.OFF)
        else:
            names = f" ({', '.join(self.metric_names)})" if self.metric_names else ""
            self.title.setText(f"<b>sample quality</b>{names}: every {self.every} steps, "
                               f"next at step {self.next_pass(self.last_step)}")

    def next_pass(self, step: int) -> int:
        return (int(step) // self.every + 1) * self.every if self.every else 0

    def add_rows(self, rows: list[dict]) -> None:
        changed = False
        keys = self.keys or quality_curve_keys()
        for r in rows:
            if isinstance(r.get("step"), (int, float)):
                self.last_step = max(self.last_step, int(r["step"]))
            key = next((k for k in keys if k in r), None)
            if key is None:
                continue
            if self.key != key:
                self.key = key
                self.series.clear()
                label = metrics.label(short(key))
                hit = metrics.logged(short(key))
                name = label if hit is None or not hit.domain else \
                    f"{label} (GenLab's own features, not Inception {hit.value.title})"
                way = hit.value.better_words if hit is not None else ""
                self.title.setText(f"<b>{name}</b>" + (f" — {way}" if way else ""))
            self.series.append(float(r["step"]), float(r[key]))
            changed = True
            extra = quality_readouts(r)
            self.status.setText(f"step {r['step']}: {short(key)} {r[key]:.3f}"
                                + (" · " + ", ".join(extra) if extra else "")
                                + (f" · {r['eval_s']:.0f}s" if "eval_s" in r else ""))
        s = self.series
        if self.key is None and self.every:
            self._title_schedule()   # the next pass after the newest step
        if changed:  # setData repaints the plot (~10 ms): not for every loss line that passes by
            self.line.setData(s.x[:s.n], s.y[:s.n])
            self.points.setData(s.x[:s.n], s.y[:s.n])
            self._update_link()

    def show_progress(self, ev: dict) -> None:
        self.status.setText(f"evaluating at step {ev['step']}: {ev['stage']} {ev['done']}/{ev['total']}")

    def clear(self) -> None:
        """Empty, with no plan: the window sets the plan of the run shown next (set_schedule)."""
        self.series.clear()
        self._update_link()
        self.key = None
        self.every, self.metric_names, self.last_step = 0, [], 0
        self.title.setText(self.OFF)
        self.status.setText("")   # the readout of the run shown before
        self.line.setData([], [])
        self.points.setData([], [])

    def point_count(self) -> int:
        return self.series.n
