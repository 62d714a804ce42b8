"""Latent-interpolation canvas, for any model with a latent record: a list of endpoints (seeds, or
dropped images that the model encodes — projection, inversion, …), lerp or slerp, N frames, the
model's own rendering options; a strip and an animated preview with play/pause (button, or space
on the preview) and a frame scrubber; GIF and MP4 export (written by the engine). A walk renders
when the tab opens, and option changes re-render live (Canvas.request_live: one render in flight,
the newest change sent when it answers, every frame shown). An export is its own op
("interpolate-export"), so the engine queues a preview behind it instead of cancelling it."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QSizePolicy, QSlider, QSpinBox, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.common import IMAGE_SUFFIXES, class_text, dropped_images
from app.qt_util import signals_blocked
from app.widgets.frame_sheet import FrameSheet
from engine.core.capabilities import Capabilities


class InterpolationCanvas(Canvas):
    rendered = Signal(str)
    exported = Signal(str)

    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.pending_id = 0                 # the newest preview render sent (0: none since the last reset)
        self.render_ids: dict[int, str] = {}  # preview renders whose frames are shown -> their checkpoint
        self.frames_checkpoint = ""          # the checkpoint the frames on screen were rendered from
        self.export_id = 0
        self.frames: list[QPixmap] = []
        self.frame_index = 0                # the frame the preview shows
        self.playing = True

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
        self.strip = FrameSheet("The frames appear here, in rows; click one to show it.")
        self.strip.setMinimumHeight(110)   # a 16-frame walk in rows of 8: each frame a readable size
        self.strip.picked.connect(self._picked)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumSize(200, 200)
        # its pixmap is scaled to the label: a size hint taken from it would only ever grow the label,
        # pushing the frames below the window's edge
        self.preview.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self.preview.setFocusPolicy(Qt.StrongFocus)   # space plays and pauses once it has focus
        self.preview.setToolTip("Space (or a click) plays and pauses")
        self.preview.installEventFilter(self)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._next_frame)
        self.play_btn = QPushButton("Pause")
        self.play_btn.setToolTip("Play or pause the preview (space on the preview)")
        self.play_btn.setEnabled(False)
        self.play_btn.clicked.connect(self.toggle_play)
        self.scrubber = QSlider(Qt.Horizontal)
        self.scrubber.setToolTip("Drag to a frame (pauses the preview)")
        self.scrubber.setEnabled(False)
        self.scrubber.sliderPressed.connect(self.pause)
        self.scrubber.valueChanged.connect(self._scrubbed)
        self.frame_label = QLabel("")

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
        # the side column packs at the top, Render and Export in view at 1024×640: the endpoint list
        # is a few rows high (it scrolls), not the column's spare height
        self.endpoints.setMaximumHeight(5 * self.endpoints.fontMetrics().height() + 14)
        side = QVBoxLayout()
        side.addWidget(QLabel("<b>Endpoints</b>"))
        side.addWidget(self.endpoints)
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
        side.addWidget(self.live_label)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(340)
        player = QHBoxLayout()
        player.addWidget(self.play_btn)
        player.addWidget(self.scrubber, 1)
        player.addWidget(self.frame_label)
        right = QVBoxLayout()
        right.addWidget(self.preview, 3)
        right.addLayout(player)
        right.addWidget(self.strip, 2)
        lay = QHBoxLayout(self)
        lay.addWidget(side_w)
        lay.addLayout(right, 1)

        self.add_seed_btn.clicked.connect(lambda: self.add_endpoint(self.seed.value()))
        self.add_image_btn.clicked.connect(self._pick_image)
        self.remove_btn.clicked.connect(self._remove)
        self.render_btn.clicked.connect(self.render)
        self.gif_btn.clicked.connect(lambda: self._export_dialog(".gif"))
        self.mp4_btn.clicked.connect(lambda: self._export_dialog(".mp4"))
        self.fps.valueChanged.connect(self._restart_timer)
        for seed in (1, 2):
            self.add_endpoint(seed)
        self._set_enabled(False)

    # ---- model ---------------------------------------------------------------------------------
    def clear_pending(self) -> None:
        self.pending_id = self.export_id = 0
        self.render_ids.clear()

    def on_checkpoint_changed(self, path: str) -> None:
        # a walk still rendering is of the previous model: it is not shown (newer requests are)
        self.render_ids.clear()

    def on_failed(self, rid: int, message: str) -> None:
        self.render_ids.pop(rid, None)
        super().on_failed(rid, message)

    def on_cancelled(self, rid: int) -> None:
        self.render_ids.pop(rid, None)

    def apply_capabilities(self, caps: Capabilities) -> None:
        lat = caps.latent
        if lat is None:
            self._set_enabled(False)
            self.status.setText(f"A {caps.family} model offers no latent space to interpolate in.")
            return
        self._set_enabled(True)
        self.build_options(caps, decode_only=True, on_change=self.render)
        self.mode.setCurrentText(lat.default_mode)
        cond = caps.conditional
        self.cls.clear()
        self.cls.addItem("unconditional" if (cond is None or cond.unconditional) else "default", None)
        for i, name in enumerate(caps.class_labels):
            self.cls.addItem(class_text(i, name), i)
        self.cls.setEnabled(bool(caps.class_labels))
        self.status.setText(f"Walks through {lat.title or lat.space}; images enter by {lat.encode_method or 'no encoder'}.")
        if self.isVisible():
            self.render()  # the tab is open: show this model's walk (a slow model shows progress and Cancel)

    def showEvent(self, e):
        super().showEvent(e)
        lat = self.capabilities.latent if self.capabilities is not None else None
        if lat is not None and self.frames_checkpoint != self.checkpoint and not self.live_busy():
            self.render()  # the model was loaded while another tab was shown: the tab opens on its walk

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
    def _fields(self) -> dict | None:
        """The walk's request fields, or None (saying why in the status) when it cannot be asked for."""
        specs = self.endpoint_specs()
        if not self.checkpoint:
            self.status.setText("Open a checkpoint first.")
            return None
        if len(specs) < 2:
            self.status.setText("Add at least two endpoints.")
            return None
        return dict(endpoints=specs, frames=self.frames_spin.value(), mode=self.mode.currentText(),
                    fps=self.fps.value(), cls=self.cls.currentData(), options=self.option_values())

    def render(self) -> int:
        """A preview walk, live: sent now, or (0) sent when the one rendering answers."""
        fields = self._fields()
        if fields is None:
            return 0
        return self.request_live("interpolate", **fields)

    def request(self, op: str, **fields) -> int:
        """Every preview walk sent (also a live one that waited and is sent later by the base) is shown."""
        rid = super().request(op, **fields)
        self.progress.setFormat("starting…")
        if op == "interpolate":
            self.pending_id = rid
            self.render_ids[rid] = self.checkpoint
        return rid

    def export(self, path: str) -> int:
        """Write a GIF or MP4 (by suffix) through the engine; previews asked for meanwhile queue behind it."""
        fields = self._fields()
        self.export_id = self.request("interpolate-export", **fields, out=path) if fields is not None else 0
        return self.export_id

    def _export_dialog(self, suffix: str) -> None:
        kind = "GIF (*.gif)" if suffix == ".gif" else "MP4 video (*.mp4)"
        path, _ = QFileDialog.getSaveFileName(self, "Export the walk", f"walk{suffix}", kind)
        if path:
            self.export(path if path.lower().endswith(suffix) else path + suffix)

    def on_result(self, ev: dict) -> None:
        rid = ev.get("id")
        if not (rid in self.render_ids or rid == self.export_id):
            return
        self.frames_checkpoint = self.render_ids.pop(rid, self.checkpoint)
        self._show_strip(ev["path"], int(ev["frames"]), int(ev["frame_size"]))
        self.progress.setFormat(f"{ev['frames']} frames in {ev.get('elapsed_s', 0):.1f}s")
        if rid == self.export_id and ev.get("out"):
            self.status.setText(f"saved {ev['out']}")
            self.exported.emit(ev["out"])
        self.rendered.emit(ev["path"])

    def _show_strip(self, path: str, n: int, size: int) -> None:
        sheet = QPixmap(path)
        # the strip is one row of frames with a 1-pixel border around each
        self.frames = [sheet.copy(QRect(1 + i * (size + 1), 1, size, size)) for i in range(n)]
        self.strip.set_frames(self.frames, path)   # shown in rows that fit the space
        with signals_blocked(self.scrubber):
            self.scrubber.setRange(0, n - 1)
        self.scrubber.setEnabled(True)
        self.play_btn.setEnabled(True)
        # the same frame of the newer walk: a drag while paused (or playing) changes the picture in place
        self.show_frame(min(self.frame_index, n - 1))
        if self.playing and not self.timer.isActive():  # a restart per live frame would stop the animation
            self._restart_timer()

    # ---- the preview player --------------------------------------------------------------------
    def show_frame(self, i: int) -> None:
        if not self.frames:
            return
        self.frame_index = i % len(self.frames)
        pm = self.frames[self.frame_index]
        side = max(64, min(self.preview.width(), self.preview.height()))
        self.preview.setPixmap(pm.scaled(side, side, Qt.KeepAspectRatio, Qt.FastTransformation))
        with signals_blocked(self.scrubber):   # following the animation is not a person scrubbing
            self.scrubber.setValue(self.frame_index)
        self.frame_label.setText(f"frame {self.frame_index + 1} / {len(self.frames)}")

    def _next_frame(self) -> None:
        self.show_frame(self.frame_index + 1)

    def _restart_timer(self) -> None:
        if self.playing and self.frames:
            self.timer.start(int(1000 / self.fps.value()))
        else:
            self.timer.stop()

    def play(self) -> None:
        self.playing = True
        self.play_btn.setText("Pause")
        self._restart_timer()

    def pause(self) -> None:
        self.playing = False
        self.play_btn.setText("Play")
        self.timer.stop()

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def _picked(self, i: int) -> None:
        """A frame clicked on the sheet: the preview holds it."""
        self.pause()
        self.show_frame(i)

    def _scrubbed(self, i: int) -> None:
        self.pause()
        self.show_frame(i)

    def eventFilter(self, obj, e):
        if obj is self.preview and self.frames:
            if e.type() == QEvent.KeyPress and e.key() == Qt.Key_Space:
                self.toggle_play()
                return True
            if e.type() == QEvent.MouseButtonPress and e.button() == Qt.LeftButton:
                self.preview.setFocus()
                self.toggle_play()
                return True
        return super().eventFilter(obj, e)

    def dragEnterEvent(self, e):
        if dropped_images(e.mimeData()):
            e.acceptProposedAction()

    def dropEvent(self, e):
        for path in dropped_images(e.mimeData()):
            self.add_endpoint(path)

