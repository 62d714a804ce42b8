"""Latent-interpolation canvas, for any model with a latent record: a list of endpoints (seeds, or
dropped images that the model encodes — projection, inversion, …), lerp or slerp, N frames, the
model's own rendering options; a strip and an animated preview; GIF and MP4 export (written by the
engine)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.common import IMAGE_SUFFIXES, dropped_images
from app.widgets.image_view import ImageView
from engine.capabilities import Capabilities


class InterpolationCanvas(Canvas):
    rendered = Signal(str)
    exported = Signal(str)

    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.pending_id = 0
        self.export_id = 0
        self.frames: list[QPixmap] = []
        self.frame_index = 0

        self.endpoints = QListWidget()
        self.endpoints.setToolTip("Endpoints in order. Drop images here (they are encoded into the latent space).")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=1)
        self.add_seed_btn = QPushButton("Add seed")
        self.add_image_btn = QPushButton("Add image…")
        self.remove_btn = QPushButton("Remove")
        self.mode = QComboBox()
        self.mode.addItems(["slerp", "lerp"])
        self.mode.setToolTip("slerp follows the sphere Gaussian latents live on; lerp is a straight line "
                             "(StyleGAN's w space is usually walked with lerp)")
        self.frames_spin = QSpinBox(minimum=2, maximum=240, value=16)
        self.frames_spin.setToolTip("Frames in the walk")
        self.cls = QComboBox()
        self.cls.addItem("unconditional", None)
        self.fps = QDoubleSpinBox(minimum=1.0, maximum=60.0, value=12.0)
        self.render_btn = QPushButton("Render")
        self.gif_btn = QPushButton("Export GIF…")
        self.mp4_btn = QPushButton("Export MP4…")
        self.status.setText("Open or train a checkpoint, then add two or more endpoints.")
        self.strip = ImageView("The frames appear here as a strip.")
        self.strip.setMinimumHeight(80)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumSize(256, 256)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._next_frame)

        add_row = QHBoxLayout()
        add_row.addWidget(self.seed)
        add_row.addWidget(self.add_seed_btn)
        form = QFormLayout()
        form.addRow("Mode", self.mode)
        form.addRow("Frames", self.frames_spin)
        form.addRow("Class", self.cls)
        form.addRow("Preview fps", self.fps)
        exp = QHBoxLayout()
        exp.addWidget(self.gif_btn)
        exp.addWidget(self.mp4_btn)
        side = QVBoxLayout()
        side.addWidget(QLabel("<b>Endpoints</b>"))
        side.addWidget(self.endpoints, 1)
        side.addLayout(add_row)
        row2 = QHBoxLayout()
        row2.addWidget(self.add_image_btn)
        row2.addWidget(self.remove_btn)
        side.addLayout(row2)
        side.addLayout(form)
        side.addLayout(self.options_box)
        side.addWidget(self.render_btn)
        side.addLayout(exp)
        side.addWidget(self.progress_row)
        side.addWidget(self.status)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(340)
        right = QVBoxLayout()
        right.addWidget(self.preview, 3)
        right.addWidget(self.strip, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(side_w)
        lay.addLayout(right, 1)

        self.add_seed_btn.clicked.connect(lambda: self.add_endpoint(self.seed.value()))
        self.add_image_btn.clicked.connect(self._pick_image)
        self.remove_btn.clicked.connect(self._remove)
        self.render_btn.clicked.connect(self.render)
        self.gif_btn.clicked.connect(lambda: self._export_dialog(".gif"))
        self.mp4_btn.clicked.connect(lambda: self._export_dialog(".mp4"))
        self.fps.valueChanged.connect(self._restart_animation)
        for seed in (1, 2):
            self.add_endpoint(seed)
        self._set_enabled(False)

    # ---- model ---------------------------------------------------------------------------------
    def clear_pending(self) -> None:
        self.pending_id = self.export_id = 0

    def apply_capabilities(self, caps: Capabilities) -> None:
        lat = caps.latent
        if lat is None:
            self._set_enabled(False)
            self.status.setText(f"A {caps.family} model offers no latent space to interpolate in.")
            return
        self._set_enabled(True)
        self.build_options(caps, decode_only=True)
        self.mode.setCurrentText(lat.default_mode)
        cond = caps.conditional
        self.cls.clear()
        self.cls.addItem("unconditional" if (cond is None or cond.unconditional) else "default", None)
        for i, name in enumerate(caps.class_labels):
            self.cls.addItem(f"{i}: {name}", i)
        self.cls.setEnabled(bool(caps.class_labels))
        self.status.setText(f"Walks through {lat.title or lat.space}; images enter by {lat.encode_method or 'no encoder'}.")
        if lat.one_pass and self.isVisible():
            self.render()  # one generator pass per frame: a walk renders in milliseconds, show one now

    def showEvent(self, e):
        super().showEvent(e)
        lat = self.capabilities.latent if self.capabilities is not None else None
        if lat is not None and lat.one_pass and not self.frames and not self.pending_id:
            self.render()  # the model was loaded while another tab was shown: a walk takes milliseconds

    def _set_enabled(self, on: bool) -> None:
        for w in (self.render_btn, self.gif_btn, self.mp4_btn):
            w.setEnabled(on)
        if self.options is not None:
            self.options.setEnabled(on)

    # ---- endpoints -----------------------------------------------------------------------------
    def add_endpoint(self, spec) -> None:
        text = f"seed {spec}" if isinstance(spec, int) else f"image {Path(spec).name}"
        item = QListWidgetItem(text)
        item.setData(Qt.UserRole, spec)
        item.setToolTip(str(spec))
        self.endpoints.addItem(item)

    def endpoint_specs(self) -> list:
        return [self.endpoints.item(i).data(Qt.UserRole) for i in range(self.endpoints.count())]

    def _remove(self) -> None:
        for item in self.endpoints.selectedItems():
            self.endpoints.takeItem(self.endpoints.row(item))

    def _pick_image(self) -> None:
        pats = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Add an image endpoint", "", f"Images ({pats})")
        if path:
            self.add_endpoint(path)

    # ---- rendering -------------------------------------------------------------------------------
    def _request(self, out: str | None = None) -> int:
        specs = self.endpoint_specs()
        if not self.checkpoint:
            self.status.setText("Open a checkpoint first.")
            return 0
        if len(specs) < 2:
            self.status.setText("Add at least two endpoints.")
            return 0
        fields = dict(endpoints=specs, frames=self.frames_spin.value(), mode=self.mode.currentText(),
                      fps=self.fps.value(), cls=self.cls.currentData(),
                      options=self.option_values())
        if out:
            fields["out"] = out
        self.progress.setFormat("starting…")
        return self.request("interpolate", **fields)

    def render(self) -> int:
        self.pending_id = self._request()
        return self.pending_id

    def export(self, path: str) -> int:
        """Write a GIF or MP4 (by suffix) through the engine."""
        self.export_id = self._request(out=path)
        return self.export_id

    def _export_dialog(self, suffix: str) -> None:
        kind = "GIF (*.gif)" if suffix == ".gif" else "MP4 video (*.mp4)"
        path, _ = QFileDialog.getSaveFileName(self, "Export the walk", f"walk{suffix}", kind)
        if path:
            self.export(path if path.lower().endswith(suffix) else path + suffix)

    def on_result(self, ev: dict) -> None:
        rid = ev.get("id")
        if rid not in (self.pending_id, self.export_id) or ev.get("op") != "interpolate":
            return
        self._show_strip(ev["path"], int(ev["frames"]), int(ev["frame_size"]))
        self.progress.setFormat(f"{ev['frames']} frames in {ev.get('elapsed_s', 0):.1f}s")
        if rid == self.export_id and ev.get("out"):
            self.status.setText(f"saved {ev['out']}")
            self.exported.emit(ev["out"])
        self.rendered.emit(ev["path"])

    def _show_strip(self, path: str, n: int, size: int) -> None:
        self.strip.set_path(path)
        sheet = QPixmap(path)
        # the strip is one row of frames with a 1-pixel border around each
        self.frames = [sheet.copy(QRect(1 + i * (size + 1), 1, size, size)) for i in range(n)]
        self.frame_index = 0
        self._restart_animation()

    def _restart_animation(self) -> None:
        if self.frames:
            self.timer.start(int(1000 / self.fps.value()))
            self._next_frame()

    def _next_frame(self) -> None:
        if not self.frames:
            return
        pm = self.frames[self.frame_index % len(self.frames)]
        side = max(64, min(self.preview.width(), self.preview.height()))
        self.preview.setPixmap(pm.scaled(side, side, Qt.KeepAspectRatio, Qt.FastTransformation))
        self.frame_index += 1

    def dragEnterEvent(self, e):
        if dropped_images(e.mimeData()):
            e.acceptProposedAction()

    def dropEvent(self, e):
        for path in dropped_images(e.mimeData()):
            self.add_endpoint(path)

