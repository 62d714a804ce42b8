"""Style-mixing canvas, after the StyleGAN papers' figure and the stylegan3 visualizer: row sources
down the left, column sources across the top; each cell is its row's image with the checked style
layers taken from its column. Sources are seeds or dropped images (projected into w+ first).
The rendering options are the model's own sample options (psi, noise, …). Every change re-renders
through the engine worker; a newer request supersedes an older one, so dragging a slider stays fluid."""
from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.common import copy_result, dropped_images, parse_sources
from app.widgets.image_view import ImageView
from engine.capabilities import Capabilities


GROUP_TIPS = {"coarse": "pose, shape (low resolutions)", "middle": "features (middle resolutions)",
              "fine": "colour, texture (high resolutions)", "all": "every style layer", "none": "no layer"}


class StyleMixCanvas(Canvas):
    rendered = Signal(str)

    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.groups: dict[str, list[int]] = {}
        self.pending_id = 0
        self.project_ids: set[int] = set()
        self._sent_at = 0.0

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
        super().on_failed(rid, message)

    def clear_pending(self) -> None:
        self.pending_id = 0
        self.project_ids.clear()

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
        self._sent_at = time.perf_counter()
        self.pending_id = self.request("mix", rows=rows, cols=cols, layers=self.layers(),
                                       options=self.option_values())
        return self.pending_id

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
        elif rid == self.pending_id and ev.get("op") == "mix":
            self.view.set_path(ev["path"])
            self.export_btn.setEnabled(True)
            round_trip = (time.perf_counter() - self._sent_at) * 1000
            self.latency.setText(f"{ev.get('rows')}×{ev.get('cols')} grid: {ev.get('elapsed_s', 0) * 1000:.0f} ms "
                                 f"in the engine, {round_trip:.0f} ms round trip")
            self.rendered.emit(ev["path"])

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

