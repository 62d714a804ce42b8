"""The inpainting mask editor: an image with a paintable mask over it (white = regenerate, black =
keep), two toolbar rows above, a caption below. It wires together the parts that each do one job:

  mask_paint.py            MaskDocument: the mask, the brush and undo/redo, in plain numpy
  mask_view.py             MaskView: draws image + mask, zooms and pans, turns the mouse into strokes
  mask_toolbars.py         BrushBar and MaskOpsBar: the controls
  mask_files.py            reading and writing mask files, sorting dropped files
  mask_editor_settings.py  what is remembered between sessions

and holds the public API (set_image, set_mask, stroke, undo, files, keys) the inpainting canvas uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSettings, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (QColorDialog, QFileDialog, QHBoxLayout, QSizePolicy, QSlider, QSpinBox, QVBoxLayout,
                               QWidget)

from app.widgets.elided_label import ElidedLabel
from app.widgets.image_io import qimage_to_array, read_image
from app.widgets.mask_editor_settings import MaskEditorSettings
from app.widgets.mask_files import IMAGE_FILTER, images_then_masks, is_mask_name, local_files, read_mask_file, \
    write_mask_png
from app.widgets.mask_paint import Box, MaskDocument, resize_nearest, to_float_mask
from app.widgets.mask_toolbars import MAX_BRUSH, BrushBar, MaskOpsBar
from app.widgets.mask_view import MaskView


def _size_text(h: int, w: int) -> str:
    return f"{w}×{h}"


class MaskEditor(QWidget):
    """Toolbars + MaskView + caption. Remembers brush size, hardness, overlay colour and opacity
    and the last folder in `settings` (QSettings("GenLab", "GenLab") when none is given)."""

    mask_changed = Signal()    # once per stroke or operation that changed the mask
    image_changed = Signal()
    message = Signal(str)      # one line for the user (a resized mask, a bad file)

    def __init__(self, parent=None, settings: QSettings | None = None):
        super().__init__(parent)
        self.settings = MaskEditorSettings(settings)
        self.setAcceptDrops(True)
        self._doc = MaskDocument()
        self._image: np.ndarray | None = None
        self.view = MaskView(self._doc, self)
        self.brush_bar = BrushBar()
        self.ops_bar = MaskOpsBar(self)
        self._connect_brush_bar()
        # the caption row never changes size with its text: the readout changes under the mouse,
        # and a label that grew with it moved the splitter and rescaled the image mid-stroke
        self.caption = ElidedLabel("white = regenerate · black = keep", short=("white = regenerate",))
        self.caption.setToolTip("Saved masks use the same convention: white pixels are regenerated, "
                                "black pixels are kept; grey blends the two.")
        self.info = ElidedLabel("", template="(99, 99) mask 0.00 · 99×99 · 800 %", elide=Qt.ElideLeft)
        self.info.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.info.hide()   # until there is an image
        bottom = QHBoxLayout()
        bottom.setContentsMargins(2, 0, 2, 0)
        # where the row is short, the caption (also in its tooltip) gives way to the readout
        self.caption.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        bottom.addWidget(self.caption, 1)
        bottom.addWidget(self.info)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.brush_bar)
        lay.addWidget(self.ops_bar)
        lay.addWidget(self.view, 1)
        lay.addLayout(bottom)
        self.view.stroke_done.connect(self._stroke_done)
        self.view.hovered.connect(self._show_info)
        self.view.view_changed.connect(self._show_info)   # the zoom shown is the zoom drawn
        self._restore_settings()
        self._sync_actions()

    def _connect_brush_bar(self) -> None:
        bar = self.brush_bar
        bar.brush_action.triggered.connect(lambda: self.set_eraser(False))
        bar.eraser_action.triggered.connect(lambda: self.set_eraser(True))
        bar.size_spin.valueChanged.connect(self.set_brush_size)
        bar.hardness_slider.valueChanged.connect(lambda v: self.set_hardness(v / 100))
        bar.opacity_slider.valueChanged.connect(lambda v: self.set_opacity(v / 100))
        bar.color_button.clicked.connect(self._pick_color)

    # the brush bar's controls, read back by callers and tests
    @property
    def size_spin(self) -> QSpinBox:
        return self.brush_bar.size_spin

    @property
    def hardness_slider(self) -> QSlider:
        return self.brush_bar.hardness_slider

    # ---- settings ------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        with s.restoring():
            self.set_brush_size(s.value("brush_size", 8, int))
            self.set_hardness(s.value("hardness", 1.0, float))
            self.set_opacity(s.value("opacity", 0.5, float))
            color = QColor(str(s.value("overlay_color", "#ff3b30", str)))
            self.set_overlay_color(color if color.isValid() else QColor("#ff3b30"))

    def last_folder(self) -> str:
        return self.settings.last_folder()

    # ---- brush ---------------------------------------------------------------------------------
    def set_brush_size(self, px) -> None:
        px = int(min(max(round(px), 1), MAX_BRUSH))
        self._doc.size = float(px)
        self.brush_bar.show_size(px)
        self.settings.save("brush_size", px)
        self.view.update()  # the outline

    def brush_size(self) -> int:
        return int(self._doc.size)

    def set_hardness(self, h: float) -> None:
        self._doc.hardness = float(min(max(h, 0.0), 1.0))
        self.brush_bar.show_hardness(self._doc.hardness)
        self.settings.save("hardness", self._doc.hardness)

    def hardness(self) -> float:
        return self._doc.hardness

    def set_eraser(self, on: bool) -> None:
        self._doc.eraser = bool(on)
        self.brush_bar.show_eraser(on)
        self.view.update()

    def is_eraser(self) -> bool:
        return self._doc.eraser

    def set_opacity(self, opacity: float) -> None:
        opacity = float(min(max(opacity, 0.0), 1.0))
        self.view.set_opacity(opacity)
        self.brush_bar.show_opacity(opacity)
        self.settings.save("opacity", opacity)

    def opacity(self) -> float:
        return self.view.opacity

    def set_overlay_color(self, color) -> None:
        color = QColor(color)
        self.view.set_color(color)
        self.brush_bar.show_color(color)
        self.settings.save("overlay_color", color.name())

    def overlay_color(self) -> QColor:
        return QColor(self.view.color)

    def _pick_color(self) -> None:
        c = QColorDialog.getColor(self.view.color, self, "Overlay colour")
        if c.isValid():
            self.set_overlay_color(c)

    # ---- image and mask ------------------------------------------------------------------------
    def set_image(self, img: np.ndarray) -> None:
        """An H x W x 3 (or H x W) uint8 image; the mask stays if the size is the same, else it
        resets to zeros (and mask_changed says so when it had content)."""
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[2] in (1, 4):
            arr = arr[..., 0] if arr.shape[2] == 1 else arr[..., :3]
        if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or 0 in arr.shape:
            raise ValueError(f"an image is H x W x 3 or H x W uint8, got {arr.dtype} {arr.shape}")
        self._image = np.ascontiguousarray(arr).copy()
        self.view.set_image(self._image)
        if arr.shape[:2] != self._doc.shape:
            self._resize_mask(*arr.shape[:2])
        self.image_changed.emit()

    def _resize_mask(self, h: int, w: int) -> None:
        had = self._doc.shape[0] > 0 and bool(self._doc.mask.any())
        old = self._doc.shape
        self._finish_stroke()
        self._doc.reset(h, w)
        self.view.mask_dirty(None)
        self.view.fit()
        self._sync_actions()
        if had:
            self.message.emit(f"mask cleared: the image size changed from {_size_text(*old)} to {_size_text(h, w)}")
            self.mask_changed.emit()

    def image(self) -> np.ndarray | None:
        return None if self._image is None else self._image.copy()

    def mask(self) -> np.ndarray:
        return self._doc.mask.copy()

    def set_mask(self, arr, *, source: str = "") -> None:
        """float [0, 1] or uint8 0..255, H x W (undoable). Another size is resized (nearest) to
        the image's, with a message; with no image yet, the mask sets the size."""
        m = to_float_mask(arr)
        if self._doc.shape[0] == 0:
            self._resize_mask(*m.shape)
        elif m.shape != self._doc.shape:
            h, w = self._doc.shape
            what = f"{source}: mask" if source else "mask"
            self.message.emit(f"{what} resized from {_size_text(*m.shape)} to {_size_text(h, w)} "
                              "(nearest) to match the image")
            m = resize_nearest(m, h, w)
        self._finish_stroke()
        self._changed(self._doc.apply(m))

    def _changed(self, box: Box | None) -> None:
        """After an operation: redraw what it touched and tell the caller, if anything changed."""
        self._sync_actions()
        if box is not None:
            self.view.mask_dirty(box)
            self._show_info()    # the mask value under the mouse
            self.mask_changed.emit()

    def _stroke_done(self) -> None:
        self._changed(self._doc.end_stroke())

    def _finish_stroke(self) -> None:
        """An operation during a drag first closes the stroke (its own undo step)."""
        self.view.finish_stroke()

    def stroke(self, points) -> None:
        """Paint one stroke through `points` ((x, y) in image pixels, pixel centres on integers)
        with the current brush, as the mouse would: one undo step, one mask_changed."""
        self._finish_stroke()
        self._changed(self._doc.stroke(points))

    def undo(self) -> None:
        self._finish_stroke()
        self._changed(self._doc.undo())

    def redo(self) -> None:
        self._finish_stroke()
        self._changed(self._doc.redo())

    def invert(self) -> None:
        self._finish_stroke()
        self._changed(self._doc.invert())

    def clear(self) -> None:
        self._finish_stroke()
        self._changed(self._doc.clear())

    def fill(self) -> None:
        self._finish_stroke()
        self._changed(self._doc.fill())

    def can_undo(self) -> bool:
        return self._doc.can_undo()

    def can_redo(self) -> bool:
        return self._doc.can_redo()

    def _sync_actions(self) -> None:
        self.ops_bar.show_history(self._doc.can_undo(), self._doc.can_redo())

    # ---- frame and view ------------------------------------------------------------------------
    def set_frame(self, rect) -> None:
        """A dashed rectangle (x, y, w, h in image pixels; a tuple, QRect or QRectF) around the
        region the model will work on, or None for none."""
        if rect is None:
            self.view.frame = None
        elif isinstance(rect, (QRect, QRectF)):
            self.view.frame = QRectF(rect)
        else:
            self.view.frame = QRectF(*map(float, rect))
        self.view.update()

    def frame(self) -> tuple[float, float, float, float] | None:
        f = self.view.frame
        return None if f is None else (f.x(), f.y(), f.width(), f.height())

    def fit_to_window(self) -> None:
        self.view.fit()

    def _show_info(self, *_) -> None:
        """The readout: the pixel under the mouse and its mask value, the image size, and the zoom
        (read back from the view each time: what it draws at now)."""
        h, w = self._doc.shape
        text = f"{_size_text(h, w)} · {self.view.scale() * 100:.0f} %" if h else ""
        pt = self.view.hover_point()
        if pt is not None and h:
            x, y = round(pt[0]), round(pt[1])
            if 0 <= x < w and 0 <= y < h:
                text = f"({x}, {y}) mask {self._doc.mask[y, x]:.2f} · " + text
        self.info.setText(text)
        self.info.setVisible(bool(text))   # no image: the caption has the row (its height stays)

    # ---- files ---------------------------------------------------------------------------------
    def load_image_file(self, path) -> bool:
        img, _alpha, err = read_image(path)
        if err:
            self.message.emit(err)
            return False
        self.set_image(img)
        self.settings.remember_folder(path)
        return True

    def load_mask_file(self, path) -> bool:
        """A grey (or colour: its luma) mask image, white = regenerate; transparent pixels count
        as keep. Another size is resized to the image's (nearest), with a message."""
        m, err = read_mask_file(path)
        if err:
            self.message.emit(err)
            return False
        self.set_mask(m, source=Path(path).name)
        self.settings.remember_folder(path)
        return True

    def save_mask_file(self, path) -> bool:
        """The mask as an 8-bit grey PNG (white = regenerate), written atomically."""
        p = Path(path)
        if self._doc.shape[0] == 0:
            self.message.emit(f"cannot save {p.name}: there is no mask yet")
            return False
        try:
            write_mask_png(p, self._doc.mask)
        except OSError as e:
            self.message.emit(f"cannot save mask to {p.name}: {e.strerror or e}")
            return False
        self.settings.remember_folder(p)
        return True

    def open_image_dialog(self) -> None:
        """Open… an image (a file named *mask* opens as the mask, as when dropped)."""
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.last_folder(), IMAGE_FILTER)
        if path:
            self.load_files([path])

    def load_mask_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", self.last_folder(), IMAGE_FILTER)
        if path:
            self.load_mask_file(path)

    def save_mask_dialog(self) -> None:
        start = str(Path(self.last_folder()) / "mask.png")
        path, _ = QFileDialog.getSaveFileName(self, "Save mask (white = regenerate)", start, "PNG (*.png)")
        if path:
            self.save_mask_file(path if Path(path).suffix else path + ".png")

    def load_files(self, paths) -> None:
        """Dropped or pasted files: a name containing "mask" loads as the mask, others as the
        image (images first, so a dropped image + mask pair lands right)."""
        for p in images_then_masks(paths):
            if is_mask_name(p):
                self.load_mask_file(p)
            else:
                self.load_image_file(p)

    def paste(self) -> bool:
        md = QGuiApplication.clipboard().mimeData()
        if md is not None and md.hasImage():
            img = QGuiApplication.clipboard().image()
            if not img.isNull():
                self.set_image(qimage_to_array(img))
                return True
        files = local_files(md)
        if files:
            self.load_files(files)
            return True
        self.message.emit("the clipboard holds no image")
        return False

    # ---- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, e):
        md = e.mimeData()
        if md.hasImage() or local_files(md):
            e.acceptProposedAction()

    def dropEvent(self, e):
        md = e.mimeData()
        files = local_files(md)
        if files:
            self.load_files(files)
        elif md.hasImage():
            self.set_image(qimage_to_array(QImage(md.imageData())))
        else:
            return
        e.acceptProposedAction()

    # ---- keys ----------------------------------------------------------------------------------
    def key_action(self, e):
        """The action a key press stands for, or None (also used to claim ShortcutOverride)."""
        k = e.key()
        mods = e.modifiers() & (Qt.ControlModifier | Qt.ShiftModifier | Qt.AltModifier | Qt.MetaModifier)
        ctrl, shift = Qt.ControlModifier, Qt.ShiftModifier
        if k == Qt.Key_BracketLeft or e.text() == "[":
            return lambda: self.set_brush_size(min(self.brush_size() - 1, round(self.brush_size() / 1.2)))
        if k == Qt.Key_BracketRight or e.text() == "]":
            return lambda: self.set_brush_size(max(self.brush_size() + 1, round(self.brush_size() * 1.2)))
        if (k == Qt.Key_Z and mods == ctrl | shift) or (k == Qt.Key_Y and mods == ctrl) \
                or e.matches(QKeySequence.Redo):
            return self.redo
        if (k == Qt.Key_Z and mods == ctrl) or e.matches(QKeySequence.Undo):
            return self.undo
        if e.matches(QKeySequence.Paste):
            return self.paste
        if k == Qt.Key_0 and mods == ctrl:
            return self.fit_to_window
        if mods == Qt.NoModifier and k in (Qt.Key_B, Qt.Key_E):
            return lambda: self.set_eraser(k == Qt.Key_E)
        return None

    def keyPressEvent(self, e):
        act = self.key_action(e)
        if act is None:
            return super().keyPressEvent(e)
        act()
        e.accept()
