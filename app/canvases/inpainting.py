"""Inpainting canvas: drop or paste an image, paint a mask (white = regenerate), fill it.

The mask editor (app/widgets/mask_editor.py) holds the image and the mask. The methods offered
are OpenCV's classical fills, always (they need no model, so the canvas is useful before anything
is trained), and those of the loaded checkpoint's Inpainter (RePaint and blending for diffusion,
raster completion for PixelCNN), with the family's sample options and inpainting options drawn
from their dataclasses. Work runs in the engine worker, with progress, an ETA and Cancel; a newer
request supersedes an older one. Results come back as one image per seed: pick one in the strip,
compare it with the original, accept it (it becomes the image; undoable) or save it (the PNG
carries the method and its parameters)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QPushButton, QSplitter, QVBoxLayout, QWidget)

from app.canvases.base import Canvas, enable_by_capability
from app.canvases.common import class_text
from app.canvases.side_column import SideColumn, status_line, wrapping
from app.qt_util import FlowLayout
from app.widgets.config_form import ConfigForm
from app.widgets.image_io import read_image
from app.widgets.image_view import ImageView
from app.widgets.mask_editor import MaskEditor
from engine.core.capabilities import Capabilities, InpaintMethod
from engine.core.families import FAMILIES
from engine.inpainting import CLASSICAL, CLASSICAL_METHODS, MASK_CONVENTION, channels_note
from engine.inpainting.geometry import work_region
from engine.core.registry import load_object
from engine.inpainting.options import InpaintSettings

KEY = "inpainting/"
THUMB = 96
SIDE_MAX, SIDE_SHARE = 340, 0.32   # the side panel's width: at most 340 px, or 32 % of a narrow page


def family_methods(family: str) -> tuple[InpaintMethod, ...]:
    """The inpainting methods a family offers, with their titles and help, from its FamilySpec
    (none for a family this GUI does not know: the method names are shown as they are)."""
    return FAMILIES.get(family).inpaint_methods if family in FAMILIES else ()


def enable_by_method(form: ConfigForm | None, method: str) -> None:
    """Grey out the fields whose `methods` metadata leaves this method out."""
    if form is None:
        return
    import dataclasses
    for f in dataclasses.fields(form.section_cls):
        only = f.metadata.get("methods")
        if f.name in form.editors:
            form.editors[f.name].setEnabled(not only or method in only)


class InpaintingCanvas(Canvas):
    inpainted = Signal(list)   # the result paths of the newest run

    def __init__(self, session, parent=None, settings: QSettings | None = None):
        super().__init__(session, parent, settings)
        self.setAcceptDrops(False)           # the editor takes drops (image, or a file named *mask*)
        self.pending_id = 0
        self._results: list[str] = []
        self._accepted: list[np.ndarray] = []    # images replaced by Accept, for Undo accept
        self._work = Path(tempfile.mkdtemp(prefix="genlab-inpaint-"))
        self._model_form: ConfigForm | None = None   # the family's inpainting options

        self.editor = MaskEditor(settings=self.settings)
        self.result_view = ImageView("Results appear here: paint a mask over the image, then Inpaint.")
        self.strip = QListWidget()
        self.strip.setViewMode(QListWidget.IconMode)
        self.strip.setFlow(QListWidget.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(THUMB, THUMB))
        self.strip.setFixedHeight(THUMB + 40)
        self.strip.setMovement(QListWidget.Static)

        self.method = QComboBox()
        self.method.setToolTip("Classical fills need no model; the others are the loaded checkpoint's")
        # as wide as its longest method name where there is room; on a narrow page the name is cut
        # short (the list still shows it whole) rather than the page scrolling sideways
        self.method.setMinimumWidth(self.method.fontMetrics().horizontalAdvance("Navier-Stokes") + 40)
        self.seeds = QLineEdit(self.settings.value(KEY + "seeds", "0, 1, 2, 3"))
        self.seeds.setToolTip("One result per seed, e.g. 0, 1, 2, 3 or 10-13; the same seed gives the same fill")
        self.cls = QComboBox()
        self.cls.addItem("no class", None)
        self.settings_form = ConfigForm(InpaintSettings)
        self.settings_form.layout().setContentsMargins(0, 0, 0, 0)
        self.model_box = QVBoxLayout()          # the family's inpainting options, once loaded
        self.model_hint = QLabel("<i>Classical fills work now. Open a diffusion or PixelCNN checkpoint for the "
                                 "model's own methods.</i>")
        self.mode_note = QLabel("")   # said before running: the model works in another colour mode
        self.mode_note.hide()
        self.open_btn = QPushButton("Open image…")
        self.open_btn.setToolTip("Open an image to inpaint (or drop one on the editor, or paste one with Ctrl+V); "
                                 "a file named *mask* opens as the mask")
        self.inpaint_btn = QPushButton("Inpaint")
        self.inpaint_btn.setShortcut("Ctrl+Return")
        self.inpaint_btn.setToolTip("Fill the masked part (Ctrl+Enter)")
        self.accept_btn = QPushButton("Accept")
        self.accept_btn.setToolTip("Make the selected result the image (to refine it further)")
        self.undo_accept_btn = QPushButton("Undo accept")
        self.compare_btn = QPushButton("Hold to compare")
        self.compare_btn.setToolTip("Shows the original while pressed")
        self.save_btn = QPushButton("Save…")
        self.save_btn.setToolTip("Save the selected result (PNG with the method and its parameters)")
        for b in (self.accept_btn, self.undo_accept_btn, self.compare_btn, self.save_btn):
            b.setEnabled(False)

        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Seeds", self.seeds)
        form.addRow("Class", self.cls)
        # the controls scroll beside the pictures; Inpaint, its progress and the status stay in view
        self.side = SideColumn(SIDE_MAX, SIDE_SHARE)
        self.side_panel = self.side.panel
        side = self.side.body
        side.addWidget(self.open_btn)
        side.addLayout(form)
        common = QGroupBox("Fit and edge")
        QVBoxLayout(common).addWidget(self.settings_form)
        side.addWidget(common)
        self.model_group = QGroupBox("Model")
        mg = QVBoxLayout(self.model_group)
        mg.addWidget(wrapping(self.model_hint))
        mg.addWidget(wrapping(self.mode_note))
        mg.addLayout(self.options_box)          # the family's sample options (steps, solver, …)
        mg.addLayout(self.model_box)
        side.addWidget(self.model_group)
        side.addStretch(1)
        self.side.foot.addWidget(self.inpaint_btn)
        self.side.foot.addWidget(self.progress_row)   # progress with the time left, and Cancel
        self.side.foot.addWidget(status_line(self.status))

        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)   # like the editor's: the splitter holds both
        right.addWidget(self.result_view, 1)
        act = FlowLayout()   # one row where the results column is wide enough, else two
        for b in (self.compare_btn, self.accept_btn, self.undo_accept_btn, self.save_btn):
            act.addWidget(b)
        right.addLayout(act)
        right_w = QWidget()
        right_w.setLayout(right)
        split = QSplitter()
        split.addWidget(self.editor)
        split.addWidget(right_w)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([300, 200])   # the editor 3/5 of the width (a splitter keeps the proportion)
        centre = QVBoxLayout()
        centre.addWidget(split, 1)
        centre.addWidget(QLabel("Results, one per seed: click one to view it"))
        centre.addWidget(self.strip)
        lay = QHBoxLayout(self)
        lay.addWidget(self.side)
        lay.addLayout(centre, 1)

        self._fill_methods(None)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.settings_form.set_values(self._stored_settings())
        self.settings_form.changed.connect(self._settings_changed)
        self.editor.mask_changed.connect(self.update_frame)
        self.editor.image_changed.connect(self._image_changed)
        self.editor.message.connect(self.status.setText)
        self.inpaint_btn.clicked.connect(self.inpaint)
        self.open_btn.clicked.connect(self.editor.open_image_dialog)
        self.strip.currentRowChanged.connect(self._show_result)
        self.compare_btn.pressed.connect(self._show_original)
        self.compare_btn.released.connect(lambda: self._show_result(self.strip.currentRow()))
        self.accept_btn.clicked.connect(self.accept_result)
        self.undo_accept_btn.clicked.connect(self.undo_accept)
        self.save_btn.clicked.connect(self._save)

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self.side.follow(self.width())   # on a narrow page a long method name is cut short

    def open_image(self, path: str) -> str:
        """An image file to inpaint (a drop on the window): '' once open, else why not (shown)."""
        if not self.editor.load_image_file(path):
            return self.status.text()     # the editor's message, one line naming the file
        self.status.setText(f"opened {Path(path).name}: paint the part to regenerate ({MASK_CONVENTION})")
        return ""

    # ---- methods and options -------------------------------------------------------------------
    def _fill_methods(self, caps: Capabilities | None) -> None:
        model = list(caps.inpaint.methods) if caps is not None and caps.inpaint else []
        self._offered = {m.name: m for m in (*CLASSICAL, *(family_methods(caps.family) if model else ()))}
        # a model that inpaints: its method last used here, else its first; without one, the
        # classical fill last used
        stored = self.settings.value(KEY + "model_method" if model else KEY + "method", "")
        self.method.blockSignals(True)
        self.method.clear()
        for m in model + list(CLASSICAL_METHODS):
            self.method.addItem(self.method_title(m), m)
            if m in self._offered and self._offered[m].help:
                self.method.setItemData(self.method.count() - 1, self._offered[m].help, Qt.ToolTipRole)
        i = self.method.findData(stored)
        self.method.setCurrentIndex(i if i >= 0 else 0)
        self.method.blockSignals(False)
        self._method_changed()

    def method_title(self, name: str) -> str:
        return self._offered[name].title if name in self._offered else name

    def current_method(self) -> str:
        return self.method.currentData() or CLASSICAL_METHODS[0]

    def uses_model(self) -> bool:
        return self.current_method() not in CLASSICAL_METHODS

    def _method_changed(self, *_):
        m = self.current_method()
        self.settings.setValue(KEY + ("model_method" if self.uses_model() else "method"), m)
        self.model_group.setEnabled(self.uses_model())
        self.cls.setEnabled(self.uses_model() and self.cls.count() > 1)
        self.seeds.setEnabled(self.uses_model())
        enable_by_method(self.settings_form, m)
        enable_by_method(self._model_form, m)
        if self.uses_model():
            self.settings_form.editors["fit"].setEnabled(True)
        else:  # a classical fill works on the image at its own size
            for name in ("fit", "padding"):
                self.settings_form.editors[name].setEnabled(False)
        self.update_frame()
        self._update_mode_note()

    def _update_mode_note(self) -> None:
        """Before running: what a model's fill does to an image of another colour mode (a
        greyscale model on a colour photo), as the result's note will say it again."""
        caps, img = self.capabilities, self.editor.image()
        text = ""
        if caps is not None and caps.inpaint and caps.channels and img is not None and self.uses_model():
            text = channels_note(1 if img.ndim == 2 else img.shape[2], caps.channels)
        head, _, rest = text.partition(": ")
        self.mode_note.setText(f"<b>{head[:1].upper()}{head[1:]}:</b> {rest}." if text else "")
        self.mode_note.setVisible(bool(text))

    def apply_capabilities(self, caps: Capabilities) -> None:
        self.cls.clear()
        if caps.conditional is None:
            self.cls.addItem("unconditional", None)
        elif caps.conditional.unconditional:
            self.cls.addItem("no class", None)
        for i, name in enumerate(caps.class_labels):
            self.cls.addItem(class_text(i, name), i)
        if caps.inpaint:
            self.build_options(caps)
            self._build_model_form(caps)
            self.model_hint.setText(f"<i>{caps.family}, {caps.resolution}×{caps.resolution}: the image is worked at "
                                    f"this size (see Fit).</i>")
        else:
            self._build_model_form(None)
            self.model_hint.setText(f"<i>A {caps.family} model cannot inpaint: the classical fills work; "
                                    f"open a diffusion or PixelCNN checkpoint for a model's fill.</i>")
            if self.options is not None:
                self.options.hide()
        if self.options is not None and caps.inpaint:
            self.options.show()
        self._fill_methods(caps)
        self.status.setText(f"loaded {Path(self.session.loaded_checkpoint).name} (step {self.session.step}): "
                            f"{caps.family}; methods: {', '.join(self.method_title(m) for m in self._methods())}")

    def _methods(self) -> list[str]:
        return [self.method.itemData(i) for i in range(self.method.count())]

    def _build_model_form(self, caps: Capabilities | None) -> None:
        path = caps.inpaint.options if caps is not None and caps.inpaint else ""
        cls = load_object(path) if path else None
        if self._model_form is not None and self._model_form.section_cls is cls:
            return
        if self._model_form is not None:
            self._model_form.deleteLater()
            self._model_form = None
        if cls is not None:
            self._model_form = ConfigForm(cls)
            self._model_form.layout().setContentsMargins(0, 0, 0, 0)
            self._model_form.set_values(cls())
            self.model_box.addWidget(self._model_form)
            enable_by_capability(self._model_form, caps)

    def _stored_settings(self) -> dict:
        d = InpaintSettings()
        out = {}
        for name in ("fit", "padding", "feather", "radius"):
            raw = self.settings.value(KEY + name, getattr(d, name))
            out[name] = type(getattr(d, name))(raw)
        return out

    def _settings_changed(self) -> None:
        for k, v in self.settings_form.values().items():
            self.settings.setValue(KEY + k, v)
        self.update_frame()

    # ---- the frame the model works in ----------------------------------------------------------
    def update_frame(self) -> None:
        """Show on the editor which square of the image the model will work on."""
        mask = self.editor.mask()
        fit = self.settings_form.values()["fit"]
        if self.editor.image() is None or not self.uses_model() or fit == "resize":
            self.editor.set_frame(None)
            return
        try:
            region = work_region(mask, fit, self.settings_form.values()["padding"])
        except ValueError:      # no mask yet
            self.editor.set_frame(None)
            return
        self.editor.set_frame(region)

    def _image_changed(self) -> None:
        self.update_frame()
        self._update_mode_note()
        self.undo_accept_btn.setEnabled(bool(self._accepted))

    # ---- running --------------------------------------------------------------------------------
    def parse_seeds(self) -> list[int]:
        """'0, 1, 2', '10-13' or a mix; at most 64."""
        problem = ValueError("seeds: give 1 to 64 whole numbers >= 0, e.g. 0, 1, 2, 3 or 10-13")
        out: list[int] = []
        try:
            for part in self.seeds.text().replace(" ", "").split(","):
                if "-" in part[1:]:
                    a, b = part.split("-", 1)
                    out += list(range(int(a), int(b) + 1))
                elif part:
                    out.append(int(part))
        except ValueError:
            raise problem from None
        if not out or len(out) > 64 or min(out) < 0:
            raise problem
        return out

    def inpaint(self) -> int:
        img = self.editor.image()
        if img is None:
            self.show_error("Drop, paste or open an image first (or drop a sample from the Sample tab).")
            return 0
        mask = self.editor.mask()
        if not (mask > 0).any():
            self.show_error(f"Paint the part to regenerate first ({MASK_CONVENTION}).")
            return 0
        method = self.current_method()
        fields = {"method": method, "settings": self.settings_form.values()}
        if self.uses_model():
            if not self.session.is_loaded():
                self.show_error("The model is not loaded yet: open a checkpoint, or pick a classical method.")
                return 0
            try:
                fields["seeds"] = self.parse_seeds()
            except ValueError as e:
                self.show_error(str(e))
                return 0
            fields.update(options=self.option_values(), cls=self.cls.currentData(),
                          inpaint=self._model_form.values() if self._model_form is not None else {})
            self.settings.setValue(KEY + "seeds", self.seeds.text())
        else:
            fields["checkpoint"] = ""           # no model needed: never load one for this
        image_path, mask_path = self._write_inputs(img, mask)
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"{self.method_title(method)}…")
        self.status.setText("")
        self.pending_id = self.request("inpaint", image=str(image_path), mask=str(mask_path), **fields)
        return self.pending_id

    def _write_inputs(self, img: np.ndarray, mask: np.ndarray) -> tuple[Path, Path]:
        """The editor's image and mask as PNG files for the worker (a pasted image has no file)."""
        import cv2
        self._work.mkdir(parents=True, exist_ok=True)
        image_path, mask_path = self._work / "image.png", self._work / "mask.png"
        bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(image_path), bgr)
        cv2.imwrite(str(mask_path), np.clip(np.rint(mask * 255), 0, 255).astype(np.uint8))
        return image_path, mask_path

    def cancel(self) -> None:
        if self.pending_id:
            self.session.cancel(self.pending_id)
            self.progress.setFormat("cancelling…")
            self.cancel_btn.setEnabled(False)

    def clear_pending(self) -> None:
        self.pending_id = 0
        self.cancel_btn.setEnabled(False)

    def on_progress(self, rid: int, stage: str, done: int, total: int) -> None:
        if rid == self.pending_id:
            super().on_progress(rid, stage, done, total)  # with the time left

    def on_cancelled(self, rid: int) -> None:
        if rid == self.pending_id:
            self.clear_pending()
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")

    def on_failed(self, rid: int, message: str) -> None:
        if rid == self.pending_id:
            self.clear_pending()
        super().on_failed(rid, message)

    def on_result(self, ev: dict) -> None:
        if ev.get("id") != self.pending_id:
            return
        self.clear_pending()
        self._results = list(ev.get("paths", []))
        self.strip.clear()
        seeds = ev.get("seeds") or []
        for i, p in enumerate(self._results):
            pm = QPixmap.fromImage(QImage(p)).scaled(THUMB, THUMB, Qt.KeepAspectRatio, Qt.FastTransformation)
            item = QListWidgetItem(QIcon(pm), f"seed {seeds[i]}" if i < len(seeds) else self.method_title(ev["method"]))
            item.setData(Qt.UserRole, p)
            self.strip.addItem(item)
        self.strip.setCurrentRow(0)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat(f"done in {ev.get('elapsed_s', 0):.1f}s")
        note = ev.get("note") or ""
        self.status.setText(f"{len(self._results)} result(s) with {self.method_title(ev['method'])}"
                            + (f" — {note}" if note else ""))
        for b in (self.accept_btn, self.compare_btn, self.save_btn):
            b.setEnabled(bool(self._results))
        self.inpainted.emit(self._results)

    # ---- results ----------------------------------------------------------------------------------
    def selected_path(self) -> str:
        row = self.strip.currentRow()
        return self._results[row] if 0 <= row < len(self._results) else ""

    def _show_result(self, row: int) -> None:
        if 0 <= row < len(self._results):
            self.result_view.set_path(self._results[row])

    def _show_original(self) -> None:
        path = self._work / "image.png"
        if path.exists():
            self.result_view.set_path(str(path))

    def accept_result(self) -> bool:
        """The selected result becomes the image (the mask stays, to refine further); undoable."""
        path = self.selected_path()
        img, _, problem = read_image(path) if path else (None, None, "no result selected")
        if img is None:
            self.show_error(problem)
            return False
        current = self.editor.image()
        if current is not None:
            self._accepted.append(current)
        self.editor.set_image(img)
        self.undo_accept_btn.setEnabled(True)
        self.status.setText(f"accepted {Path(path).name}: it is now the image (Undo accept brings the old one back)")
        return True

    def undo_accept(self) -> None:
        if self._accepted:
            self.editor.set_image(self._accepted.pop())
        self.undo_accept_btn.setEnabled(bool(self._accepted))

    def save_result(self, dest: str) -> bool:
        src = self.selected_path()
        if not src:
            return False
        try:
            shutil.copyfile(src, dest)    # the worker's PNG already carries the parameters
        except OSError as e:
            self.show_error(f"cannot save {dest}: {e.strerror or e}")
            return False
        self.settings.setValue(KEY + "save_folder", str(Path(dest).parent))
        self.status.setText(f"saved {dest}")
        return True

    def _save(self) -> None:
        folder = self.settings.value(KEY + "save_folder", str(Path.home()))
        path, _ = QFileDialog.getSaveFileName(self, "Save result", str(Path(folder) / Path(self.selected_path()).name),
                                              "PNG (*.png)")
        if path:
            self.save_result(path)
