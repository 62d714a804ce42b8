"""Style-mixing canvas, after the StyleGAN papers' figure and the stylegan3 visualizer: row sources
down the left, column sources across the top; each cell is its row's image with the checked style
layers taken from its column. Sources are seeds or dropped images (projected into w+ first).
The rendering options are the model's own sample options (psi, noise, …). Every change re-renders
live through the engine worker (Canvas.request_live: one render in flight, the newest change sent
when it answers, every frame shown), so dragging a slider shows the grid moving at the render rate.
Hovering a cell names its sources and the layers it takes from the column."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QRect, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QToolTip, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.common import copy_result, dropped_images, parse_sources
from app.widgets.image_view import ImageView
from engine.core.capabilities import Capabilities


GROUP_TIPS = {"coarse": "pose, shape (low resolutions)", "middle": "features (middle resolutions)",
              "fine": "colour, texture (high resolutions)", "all": "every style layer", "none": "no layer"}


def source_name(src) -> str:
    return f"seed {src}" if isinstance(src, int) else Path(str(src)).name


def layer_ranges(layers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0–2, 5'."""
    runs: list[list[int]] = []
    for i in sorted(layers):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)


class MixGrid:
    """What the grid on screen shows: the row and column sources and the layers of the request it
    answers. Grid cell (i, j) is row i, column j of (rows + 1) × (cols + 1) equal cells: the top row
    shows the column sources, the left column the row sources, the corner is blank."""

    def __init__(self, rows: list, cols: list, layers: list[int]):
        self.rows, self.cols, self.layers = rows, cols, layers

    def cell_at(self, image_rect: QRect, pos: QPoint) -> tuple[int, int] | None:
        if not image_rect.contains(pos):
            return None
        i = (pos.y() - image_rect.top()) * (len(self.rows) + 1) // image_rect.height()
        j = (pos.x() - image_rect.left()) * (len(self.cols) + 1) // image_rect.width()
        return min(i, len(self.rows)), min(j, len(self.cols))

    def cell_rect(self, image_rect: QRect, i: int, j: int) -> QRect:
        h, w = image_rect.height() / (len(self.rows) + 1), image_rect.width() / (len(self.cols) + 1)
        return QRect(image_rect.left() + int(j * w), image_rect.top() + int(i * h), int(w), int(h))

    def describe(self, i: int, j: int) -> str:
        if i == 0 and j == 0:
            return ""
        if i == 0:
            return f"column {source_name(self.cols[j - 1])}"
        if j == 0:
            return f"row {source_name(self.rows[i - 1])}"
        taken = f"layers {layer_ranges(self.layers)} from the column" if self.layers else "no layer from the column"
        return f"row {source_name(self.rows[i - 1])} × column {source_name(self.cols[j - 1])}, {taken}"


class StyleMixCanvas(Canvas):
    rendered = Signal(str)

    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.groups: dict[str, list[int]] = {}
        self.pending_id = 0                          # the newest mix sent (0: none since the last reset)
        self.render_ids: dict[int, MixGrid] = {}     # mix requests whose frames are shown -> their grid
        self.grid: MixGrid | None = None             # what the view shows now
        self.project_ids: set[int] = set()

        self.rows = QLineEdit("1-4")
        self.cols = QLineEdit("5-8")
        for ed, tip in ((self.rows, "Row sources (left): seeds, ranges like 1-4, or dropped images"),
                        (self.cols, "Column sources (top): they give the checked layers' styles")):
            ed.setToolTip(tip)
            ed.editingFinished.connect(self.render)
        self.layers_box = QGroupBox("Layers taken from the column")
        self.layers_grid = QGridLayout(self.layers_box)
        self.layer_checks: list[QCheckBox] = []
        self.preset_row = QHBoxLayout()
        self.preset_btns: dict[str, QPushButton] = {}
        self._group_buttons([])
        self.drop_to = QComboBox()
        self.drop_to.addItems(["columns", "rows"])
        self.drop_to.setToolTip("Where dropped images go (they are projected into the model's w+ space first)")
        self.export_btn = QPushButton("Export PNG…")
        self.export_btn.setEnabled(False)
        self.export_btn.clicked.connect(self._export)
        self.status.setText("Open or train a model with per-layer styles (a style-based generator) to mix styles.")
        self.latency = QLabel("")
        self.view = ImageView("The style-mixing grid appears here. Drop images to use them as sources.")
        self.view.installEventFilter(self)   # hover tooltips name each cell's sources

        form = QFormLayout()
        form.addRow("Rows", self.rows)
        form.addRow("Columns", self.cols)
        form.addRow("Drop images into", self.drop_to)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addLayout(self.options_box)
        side.addWidget(self.layers_box)
        side.addLayout(self.preset_row)
        side.addWidget(self.export_btn)
        side.addWidget(self.progress_row)
        side.addWidget(self.status)
        side.addWidget(self.latency)
        side.addWidget(self.live_label)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(360)
        lay = QHBoxLayout(self)
        lay.addWidget(side_w)
        lay.addWidget(self.view, 1)

        self._set_enabled(False)

    # ---- model ---------------------------------------------------------------------------------
    def on_failed(self, rid: int, message: str) -> None:
        self.project_ids.discard(rid)
        self.render_ids.pop(rid, None)
        super().on_failed(rid, message)

    def on_cancelled(self, rid: int) -> None:
        self.project_ids.discard(rid)
        self.render_ids.pop(rid, None)

    def clear_pending(self) -> None:
        self.pending_id = 0
        self.render_ids.clear()
        self.project_ids.clear()

    def on_checkpoint_changed(self, path: str) -> None:
        # a frame still rendering is of the previous model: it is not shown (newer requests are)
        self.render_ids.clear()

    def apply_capabilities(self, caps: Capabilities) -> None:
        for c in self.layer_checks:
            c.deleteLater()
        self.layer_checks = []
        if caps.style_mix is None:
            self._set_enabled(False)
            self.status.setText(f"A {caps.family} model has no per-layer styles to mix: style mixing needs a "
                                f"style-based generator.")
            return
        self.build_options(caps, decode_only=True, on_change=self.render)
        res = caps.style_mix.layers
        for i, r in enumerate(res):
            c = QCheckBox(f"{i}: {r}²")
            c.setToolTip(f"style input {i}, driving the {r}×{r} layers")
            c.toggled.connect(self.render)
            self.layers_grid.addWidget(c, i // 4, i % 4)
            self.layer_checks.append(c)
        # coarse to fine, by their first layer (the dict's own order does not survive a Qt signal)
        self.groups = dict(sorted(caps.style_mix.groups.items(), key=lambda kv: min(kv[1], default=len(res))))
        self._group_buttons(list(self.groups))
        self._set_enabled(True)
        self.status.setText(f"{len(res)} style layers; " + ", ".join(f"{k} = {v}" for k, v in self.groups.items()))
        self.select_group(next(iter(self.groups), "all"))  # the first group (coarse: pose and shape)

    def _group_buttons(self, names: list[str]) -> None:
        """One button per style group the model reports, plus all and none."""
        for b in self.preset_btns.values():
            b.deleteLater()
        self.preset_btns = {}
        for name in [*names, "all", "none"]:
            b = QPushButton(name)
            b.setToolTip(GROUP_TIPS.get(name, f"style layers {self.groups.get(name, [])}"))
            b.clicked.connect(lambda _=False, n=name: self.select_group(n))
            self.preset_row.addWidget(b)
            self.preset_btns[name] = b

    def _set_enabled(self, on: bool) -> None:
        for w in (self.rows, self.cols, self.layers_box, *self.preset_btns.values()):
            w.setEnabled(on)
        if self.options is not None:
            self.options.setEnabled(on)

    def select_group(self, name: str) -> None:
        chosen = set(range(len(self.layer_checks))) if name == "all" else set(self.groups.get(name, []))
        for i, c in enumerate(self.layer_checks):
            c.blockSignals(True)
            c.setChecked(i in chosen)
            c.blockSignals(False)
        self.render()

    def layers(self) -> list[int]:
        return [i for i, c in enumerate(self.layer_checks) if c.isChecked()]

    # ---- rendering -------------------------------------------------------------------------------
    def render(self) -> int:
        if not (self.checkpoint and self.capabilities is not None and self.capabilities.style_mix is not None):
            return 0
        try:
            rows, cols = parse_sources(self.rows.text()), parse_sources(self.cols.text())
        except ValueError as e:
            self.status.setText(f"<span style='color:#c0392b'>✖ {e}</span>")
            return 0
        if not rows or not cols:
            self.status.setText("Give at least one row and one column source.")
            return 0
        return self.request_live("mix", rows=rows, cols=cols, layers=self.layers(), options=self.option_values())

    def request(self, op: str, **fields) -> int:
        """Every mix sent (also a live one that waited and is sent later by the base) is a frame to show."""
        rid = super().request(op, **fields)
        if op == "mix":
            self.pending_id = rid
            self.render_ids[rid] = MixGrid(fields["rows"], fields["cols"], list(fields["layers"]))
        return rid

    def add_image(self, path: str, to: str | None = None) -> None:
        """Use an image as a source: project it now (with progress), then add it to rows or columns."""
        target = self.rows if (to or self.drop_to.currentText()) == "rows" else self.cols
        text = target.text().strip()
        target.setText(f"{text}, {path}" if text else path)
        self.progress.setFormat("projecting %v / %m")
        rid = self.request("project", image=path)
        self.project_ids.add(rid)

    def on_result(self, ev: dict) -> None:
        rid = ev.get("id")
        if rid in self.project_ids:
            self.project_ids.discard(rid)
            self.progress.setFormat("projected")
            self.render()
        elif rid in self.render_ids and ev.get("op") == "mix":
            self.grid = self.render_ids.pop(rid)
            self.grid.layers = list(ev.get("layers", self.grid.layers))  # what the engine used
            self.view.set_path(ev["path"])
            self.export_btn.setEnabled(True)
            round_trip = (time.monotonic() - self._started.get(rid, time.monotonic())) * 1000
            self.latency.setText(f"{ev.get('rows')}×{ev.get('cols')} grid: {ev.get('elapsed_s', 0) * 1000:.0f} ms "
                                 f"in the engine, {round_trip:.0f} ms round trip")
            self.rendered.emit(ev["path"])

    # ---- hover ---------------------------------------------------------------------------------
    def cell_text_at(self, pos: QPoint) -> tuple[str, QRect]:
        """The sources of the grid cell under `pos` (view coordinates) and that cell's rectangle;
        ('', empty) off the grid."""
        if self.grid is None or not self.view.has_image():
            return "", QRect()
        shown = self.view.image_rect()
        cell = self.grid.cell_at(shown, pos)
        if cell is None:
            return "", QRect()
        return self.grid.describe(*cell), self.grid.cell_rect(shown, *cell)

    def eventFilter(self, obj, e):
        if obj is self.view and e.type() == QEvent.ToolTip:
            text, rect = self.cell_text_at(e.pos())
            if text:
                QToolTip.showText(e.globalPos(), text, self.view, rect)  # hidden when the mouse leaves the cell
            else:
                QToolTip.hideText()
            return True
        return super().eventFilter(obj, e)

    # ---- files ---------------------------------------------------------------------------------
    def save_to(self, path: str) -> None:
        copy_result(self.view.path, path)
        self.status.setText(f"saved {path}")

    def _export(self) -> None:
        if self.view.path:
            path, _ = QFileDialog.getSaveFileName(self, "Export the style-mixing grid", "style_mix.png", "PNG (*.png)")
            if path:
                self.save_to(path)

    def dragEnterEvent(self, e):
        if dropped_images(e.mimeData()) and self.capabilities is not None and self.capabilities.style_mix:
            e.acceptProposedAction()

    def dropEvent(self, e):
        for path in dropped_images(e.mimeData()):
            self.add_image(path)

