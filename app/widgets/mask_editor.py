"""The inpainting mask editor: an image with a paintable mask over it (white = regenerate, black =
keep), a small toolbar above, a caption below. The painting itself is MaskDocument (mask_paint.py,
plain numpy); this module draws it, turns mouse and keys into strokes, and loads and saves files.

Drawing stays cheap at any zoom: the image and the overlay are cached QImages drawn through one
scale transform clipped to the exposed region, and a stroke segment rewrites only its box of the
overlay (the overlay's pixels are a numpy view of the QImage's memory)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QActionGroup, QColor, QGuiApplication, QImage, QKeySequence, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QColorDialog, QFileDialog, QHBoxLayout, QLabel, QSizePolicy,
                               QSlider, QSpinBox, QToolBar, QToolButton, QVBoxLayout, QWidget)

from app.qt_util import signals_blocked
from app.widgets.image_io import array_to_qimage, qimage_to_array, read_image
from app.widgets.mask_paint import Box, MaskDocument, resize_nearest, to_float_mask, to_uint8_mask

KEY = "mask_editor/"  # QSettings("GenLab", "GenLab") group of everything remembered here
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp)"
MAX_BRUSH = 1024


def _size_text(h: int, w: int) -> str:
    return f"{w}×{h}"


# ---- the painting view ------------------------------------------------------------------------
class MaskView(QWidget):
    """Draws image + overlay + frame + brush outline, zooms and pans, and paints into `doc`.

    Image coordinates put pixel (i, j)'s centre on (i, j) (as MaskDocument does), so a widget
    point maps to ((x - ox) / s - 0.5, (y - oy) / s - 0.5) with s the scale and o the offset."""

    stroke_done = Signal()   # a stroke ended (the editor decides whether the mask changed)
    hovered = Signal(object)  # (x, y) in image coordinates, or None when the mouse left

    def __init__(self, doc: MaskDocument, parent=None):
        super().__init__(parent)
        self.doc = doc
        self._image: QImage | None = None
        self._overlay: QImage | None = None
        self._overlay_px: np.ndarray | None = None  # uint32 view of the overlay's pixels
        self._lut = np.zeros(256, np.uint32)
        self.color = QColor(255, 59, 48)
        self.opacity = 0.5
        self.frame: QRectF | None = None
        self._scale, self._offset, self._fitted = 1.0, QPointF(0, 0), True
        self._cursor: QPointF | None = None   # widget position of the brush outline
        self._painting, self._last = False, (0.0, 0.0)
        self._pan_from: tuple[QPointF, QPointF] | None = None  # (mouse, offset) at the pan start
        self._space = False
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setCursor(Qt.CrossCursor)
        self._build_lut()

    def sizeHint(self):
        # modest: a canvas page in its scroll area is made as tall as it prefers (its word-wrapped
        # labels ask for that), and 384 made the Inpainting tab scroll at a window height of 640;
        # the view grows into whatever room there is anyway
        return QSize(240, 240)

    # ---- content -------------------------------------------------------------------------------
    def set_image(self, arr: np.ndarray | None) -> None:
        self._image = None if arr is None else array_to_qimage(arr)
        self.update()

    def _build_lut(self) -> None:
        """Overlay pixel for each mask byte: the colour premultiplied by alpha = mask."""
        a = np.arange(256, dtype=np.uint32)
        r, g, b = (np.uint32(c) for c in self.color.getRgb()[:3])
        pm = lambda c: (c * a + 127) // 255  # noqa: E731
        self._lut = (a << 24) | (pm(r) << 16) | (pm(g) << 8) | pm(b)

    def set_color(self, color: QColor) -> None:
        self.color = QColor(color)
        self._build_lut()
        self.mask_dirty(None)

    def set_opacity(self, opacity: float) -> None:
        self.opacity = opacity  # applied when drawing: no overlay rebuild
        self.update()

    def mask_dirty(self, box: Box | None) -> None:
        """Bring the cached overlay up to date inside `box` (everything when None) and repaint
        just that part of the widget."""
        h, w = self.doc.shape
        if self._overlay is None or (self._overlay.height(), self._overlay.width()) != (h, w):
            self._overlay = QImage(max(w, 1), max(h, 1), QImage.Format_ARGB32_Premultiplied)
            self._overlay.fill(0)
            bits = np.frombuffer(self._overlay.bits(), np.uint32)
            self._overlay_px = bits.reshape(max(h, 1), self._overlay.bytesPerLine() // 4)
            box = None
        if box is None:
            box = (0, h, 0, w)
        y0, y1, x0, x1 = box
        if y1 > y0 and x1 > x0:
            self._overlay_px[y0:y1, x0:x1] = self._lut[to_uint8_mask(self.doc.mask[y0:y1, x0:x1])]
        self.update(self.box_to_widget(box) if box != (0, h, 0, w) else self.rect())

    # ---- geometry ------------------------------------------------------------------------------
    def scale(self) -> float:
        return self._scale

    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def widget_to_image(self, pos: QPointF) -> tuple[float, float]:
        s = self._scale
        return (pos.x() - self._offset.x()) / s - 0.5, (pos.y() - self._offset.y()) / s - 0.5

    def image_to_widget(self, x: float, y: float) -> QPointF:
        s = self._scale
        return QPointF(self._offset.x() + (x + 0.5) * s, self._offset.y() + (y + 0.5) * s)

    def box_to_widget(self, box: Box, margin: int = 2) -> QRect:
        y0, y1, x0, x1 = box
        s, o = self._scale, self._offset
        return QRect(math.floor(o.x() + x0 * s) - margin, math.floor(o.y() + y0 * s) - margin,
                     math.ceil((x1 - x0) * s) + 2 * margin + 1, math.ceil((y1 - y0) * s) + 2 * margin + 1)

    def fit(self) -> None:
        """Whole image in view; whole-number zoom when enlarging keeps pixels square."""
        h, w = self.doc.shape
        self._fitted = True
        if not h or not w:
            return
        s = min(self.width() / w, self.height() / h)
        self._scale = max(1, int(s)) if s >= 1 else max(s, 1e-3)
        self._offset = QPointF((self.width() - w * self._scale) / 2, (self.height() - h * self._scale) / 2)
        self.update()

    def zoom_at(self, pos: QPointF, factor: float) -> None:
        """Scale by `factor` keeping the image point under `pos` where it is."""
        h, w = self.doc.shape
        if not h or not w:
            return
        fit = min(self.width() / w, self.height() / h)
        s = min(max(self._scale * factor, min(fit, 1.0) / 4), max(64.0, fit * 8))
        o = self._offset
        self._offset = QPointF(pos.x() - (pos.x() - o.x()) * s / self._scale,
                               pos.y() - (pos.y() - o.y()) * s / self._scale)
        self._scale, self._fitted = s, False
        self.update()

    def resizeEvent(self, e):
        super().resizeEvent(e)
        if self._fitted:
            self.fit()

    # ---- drawing -------------------------------------------------------------------------------
    def paintEvent(self, e):
        p = QPainter(self)
        p.fillRect(e.rect(), self.palette().window())
        h, w = self.doc.shape
        if not h or not w:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap,
                       "Drop an image here, or paste one (Ctrl+V).\nThen paint where the model should regenerate.")
            return
        s, o = self._scale, self._offset
        # the image pixels the exposed rectangle shows; one transform for all parts keeps a
        # partial repaint pixel-identical to a full one
        r = QRectF(e.rect())
        ix0 = max(int((r.left() - o.x()) / s) - 1, 0)
        iy0 = max(int((r.top() - o.y()) / s) - 1, 0)
        ix1 = min(int(math.ceil((r.right() - o.x()) / s)) + 1, w)
        iy1 = min(int(math.ceil((r.bottom() - o.y()) / s)) + 1, h)
        if ix1 > ix0 and iy1 > iy0:
            src = QRectF(ix0, iy0, ix1 - ix0, iy1 - iy0)
            p.save()
            p.setClipRect(e.rect())
            p.translate(o)
            p.scale(s, s)
            p.setRenderHint(QPainter.SmoothPixmapTransform, s < 1)  # nearest when enlarging
            if self._image is not None:
                p.drawImage(src, self._image, src)
            else:
                p.fillRect(src, Qt.black)
            if self._overlay is not None:
                p.setOpacity(self.opacity)
                p.drawImage(src, self._overlay, src)
            p.restore()
        if self.frame is not None:
            f = self.frame
            rect = QRectF(o.x() + f.x() * s, o.y() + f.y() * s, f.width() * s, f.height() * s)
            p.setPen(QPen(Qt.black, 1))
            p.drawRect(rect)
            dash = QPen(Qt.white, 1, Qt.DashLine)
            p.setPen(dash)
            p.drawRect(rect)
        self._draw_cursor(p)

    def _cursor_rect(self) -> QRect:
        if self._cursor is None:
            return QRect()
        r = int(self.doc.size / 2 * self._scale) + 6
        return QRect(int(self._cursor.x()) - r, int(self._cursor.y()) - r, 2 * r + 1, 2 * r + 1)

    def _draw_cursor(self, p: QPainter) -> None:
        """The brush outline at its real on-screen size (black under white: visible anywhere)."""
        if self._cursor is None or self._pan_from is not None or self._space:
            return
        p.setRenderHint(QPainter.Antialiasing, True)
        # + half a pixel: a 1 px line on pixel centres stays crisp instead of two grey halves
        c, rad = self._cursor + QPointF(0.5, 0.5), self.doc.size / 2 * self._scale
        for color, width in ((QColor(0, 0, 0, 160), 3), (QColor(255, 255, 255), 1)):
            pen = QPen(color, width)
            if self.doc.eraser and width == 1:
                pen.setStyle(Qt.DashLine)
            p.setPen(pen)
            if rad >= 3:
                p.drawEllipse(c, rad, rad)
            p.drawLine(c - QPointF(3, 0), c + QPointF(3, 0))  # the centre, for tiny brushes too
            p.drawLine(c - QPointF(0, 3), c + QPointF(0, 3))

    def _move_cursor(self, pos: QPointF | None) -> None:
        old = self._cursor_rect()
        self._cursor = pos
        self.update(old.united(self._cursor_rect()))

    # ---- mouse ---------------------------------------------------------------------------------
    def mousePressEvent(self, e):
        pos = e.position()
        if e.button() == Qt.MiddleButton or (e.button() == Qt.LeftButton and self._space):
            self._pan_from = (pos, QPointF(self._offset))
            self.setCursor(Qt.ClosedHandCursor)
            return
        if e.button() != Qt.LeftButton or self.doc.shape[0] == 0:
            return super().mousePressEvent(e)
        pt = self.widget_to_image(pos)
        last = self.doc.last_point
        self.doc.begin_stroke()
        self._painting = True
        if e.modifiers() & Qt.ShiftModifier and last is not None:
            self.mask_dirty(self.doc.segment(last, pt))  # a straight line from the last point
        else:
            self.mask_dirty(self.doc.segment(pt))
        self._last = pt

    def mouseMoveEvent(self, e):
        pos = e.position()
        self._move_cursor(pos)
        self.hovered.emit(self.widget_to_image(pos) if self.doc.shape[0] else None)
        if self._pan_from is not None:
            start, off = self._pan_from
            self._offset = off + (pos - start)
            self._fitted = False
            self.update()
        elif self._painting:
            pt = self.widget_to_image(pos)
            self.mask_dirty(self.doc.segment(self._last, pt))
            self._last = pt

    def mouseReleaseEvent(self, e):
        if self._pan_from is not None and e.button() in (Qt.MiddleButton, Qt.LeftButton):
            self._pan_from = None
            self.setCursor(Qt.OpenHandCursor if self._space else Qt.CrossCursor)
        elif self._painting and e.button() == Qt.LeftButton:
            self.finish_stroke()

    def finish_stroke(self) -> None:
        if self._painting:
            self._painting = False
            self.stroke_done.emit()

    def leaveEvent(self, e):
        self._move_cursor(None)
        self.hovered.emit(None)
        super().leaveEvent(e)

    def wheelEvent(self, e):
        d = e.angleDelta()
        if e.modifiers() & Qt.ControlModifier:
            self.zoom_at(e.position(), 1.25 ** (d.y() / 120))
        else:  # a plain wheel (or a touchpad) pans
            px = e.pixelDelta()
            step = QPointF(px.x(), px.y()) if not px.isNull() else QPointF(d.x(), d.y()) / 2
            if e.modifiers() & Qt.ShiftModifier and step.x() == 0:
                step = QPointF(step.y(), 0)
            self._offset += step
            self._fitted = False
            self.update()
        e.accept()

    # ---- keys: space held pans; the rest goes to the editor ------------------------------------
    def keyPressEvent(self, e):
        if e.key() == Qt.Key_Space and not e.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.OpenHandCursor)
            self.update(self._cursor_rect())
        else:
            super().keyPressEvent(e)  # ignored: the editor (our parent) handles it

    def keyReleaseEvent(self, e):
        if e.key() == Qt.Key_Space and not e.isAutoRepeat():
            self._space = False
            self.setCursor(Qt.CrossCursor)
            self.update(self._cursor_rect())
        else:
            super().keyReleaseEvent(e)

    def event(self, e):
        # claim our keys before window-wide shortcuts (a main window's Ctrl+Z) can take them
        if e.type() == QEvent.ShortcutOverride and self.parent() is not None \
                and getattr(self.parent(), "key_action", lambda _e: None)(e) is not None:
            e.accept()
            return True
        return super().event(e)


# ---- the editor -------------------------------------------------------------------------------
class MaskEditor(QWidget):
    """Toolbar + MaskView + caption. Remembers brush size, hardness, overlay colour and opacity
    and the last folder in `settings` (QSettings("GenLab", "GenLab") when none is given)."""

    mask_changed = Signal()    # once per stroke or operation that changed the mask
    image_changed = Signal()
    message = Signal(str)      # one line for the user (a resized mask, a bad file)

    def __init__(self, parent=None, settings: QSettings | None = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings("GenLab", "GenLab")
        self._restoring = False
        self.setAcceptDrops(True)
        self._doc = MaskDocument()
        self._image: np.ndarray | None = None
        self.view = MaskView(self._doc, self)
        self._build_toolbar()
        self.caption = QLabel("white = regenerate · black = keep")
        self.caption.setToolTip("Saved masks use the same convention: white pixels are regenerated, "
                                "black pixels are kept; grey blends the two.")
        self.info = QLabel("")
        self.info.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(2, 0, 2, 0)
        bottom.addWidget(self.caption)
        bottom.addStretch(1)
        bottom.addWidget(self.info)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.ops_toolbar)
        lay.addWidget(self.view, 1)
        lay.addLayout(bottom)
        self.view.stroke_done.connect(self._stroke_done)
        self.view.hovered.connect(self._show_info)
        self._restore_settings()
        self._sync_actions()

    def _build_toolbar(self) -> None:
        tb = self.toolbar = QToolBar()
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        group = QActionGroup(self)
        self.brush_action = tb.addAction("Brush", lambda: self.set_eraser(False))
        self.eraser_action = tb.addAction("Eraser", lambda: self.set_eraser(True))
        for a, tip in ((self.brush_action, "Paint the region to regenerate (B)"),
                       (self.eraser_action, "Erase back to keep (E)")):
            a.setCheckable(True)
            a.setToolTip(tip)
            group.addAction(a)
        self.brush_action.setChecked(True)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, MAX_BRUSH)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush diameter in image pixels ([ and ] resize)")
        self.size_spin.valueChanged.connect(self.set_brush_size)
        tb.addWidget(self.size_spin)
        self.hardness_slider = self._slider("hardness", "Edge hardness: below 100 % paints soft grey edges",
                                            self._hardness_moved)
        self.opacity_slider = self._slider("overlay", "Overlay opacity (display only)", self._opacity_moved)
        self.color_button = QToolButton()
        self.color_button.setToolTip("Overlay colour")
        self.color_button.clicked.connect(self._pick_color)
        tb.addWidget(self.color_button)
        # the operations on a second row: one row would overflow a canvas-sized editor
        tb = self.ops_toolbar = QToolBar()
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for text, slot, tip in (("Invert", self.invert, "Swap regenerate and keep"),
                                ("Clear", self.clear, "Keep everything (all black)"),
                                ("Fill", self.fill, "Regenerate everything (all white)")):
            tb.addAction(text, slot).setToolTip(tip)
        tb.addSeparator()
        self.undo_action = tb.addAction("Undo", self.undo)
        self.undo_action.setToolTip("Undo (Ctrl+Z)")
        self.redo_action = tb.addAction("Redo", self.redo)
        self.redo_action.setToolTip("Redo (Ctrl+Shift+Z, Ctrl+Y)")
        tb.addAction("Fit", self.fit_to_window).setToolTip("Fit the image to the view (Ctrl+0); "
                                                           "Ctrl+wheel zooms, space+drag or middle drag pans")
        tb.addSeparator()
        tb.addAction("Load mask…", self._load_mask_dialog).setToolTip("Load a mask image (white = regenerate)")
        tb.addAction("Save mask…", self._save_mask_dialog).setToolTip("Save the mask as PNG (white = regenerate)")

    def _slider(self, label: str, tip: str, slot) -> QSlider:
        s = QSlider(Qt.Horizontal)
        s.setRange(0, 100)
        s.setFixedWidth(70)
        s.setToolTip(tip)
        s.valueChanged.connect(slot)
        lab = QLabel(label)
        lab.setToolTip(tip)
        self.toolbar.addWidget(lab)
        self.toolbar.addWidget(s)
        return s

    # ---- settings ------------------------------------------------------------------------------
    def _setting(self, name: str, default, kind):
        try:
            v = self.settings.value(KEY + name, default, type=kind)
            return default if v is None else v
        except (TypeError, ValueError):  # a hand-edited or foreign value: fall back
            return default

    def _restore_settings(self) -> None:
        self._restoring = True  # reading is not a change: write nothing back
        self.set_brush_size(self._setting("brush_size", 8, int))
        self.set_hardness(self._setting("hardness", 1.0, float))
        self.set_opacity(self._setting("opacity", 0.5, float))
        color = QColor(str(self._setting("overlay_color", "#ff3b30", str)))
        self.set_overlay_color(color if color.isValid() else QColor("#ff3b30"))
        self._restoring = False

    def _save(self, name: str, value) -> None:
        if not self._restoring:
            self.settings.setValue(KEY + name, value)

    def last_folder(self) -> str:
        return str(self._setting("last_folder", str(Path.home()), str))

    def _remember_folder(self, path) -> None:
        self._save("last_folder", str(Path(path).resolve().parent))

    # ---- brush ---------------------------------------------------------------------------------
    def set_brush_size(self, px) -> None:
        px = int(min(max(round(px), 1), MAX_BRUSH))
        self._doc.size = float(px)
        with signals_blocked(self.size_spin):
            self.size_spin.setValue(px)
        self._save("brush_size", px)
        self.view.update()  # the outline

    def brush_size(self) -> int:
        return int(self._doc.size)

    def set_hardness(self, h: float) -> None:
        self._doc.hardness = float(min(max(h, 0.0), 1.0))
        with signals_blocked(self.hardness_slider):
            self.hardness_slider.setValue(round(self._doc.hardness * 100))
        self._save("hardness", self._doc.hardness)

    def hardness(self) -> float:
        return self._doc.hardness

    def _hardness_moved(self, v: int) -> None:
        self.set_hardness(v / 100)

    def set_eraser(self, on: bool) -> None:
        self._doc.eraser = bool(on)
        (self.eraser_action if on else self.brush_action).setChecked(True)
        self.view.update()

    def is_eraser(self) -> bool:
        return self._doc.eraser

    def set_opacity(self, opacity: float) -> None:
        opacity = float(min(max(opacity, 0.0), 1.0))
        self.view.set_opacity(opacity)
        with signals_blocked(self.opacity_slider):
            self.opacity_slider.setValue(round(opacity * 100))
        self._save("opacity", opacity)

    def opacity(self) -> float:
        return self.view.opacity

    def _opacity_moved(self, v: int) -> None:
        self.set_opacity(v / 100)

    def set_overlay_color(self, color) -> None:
        color = QColor(color)
        self.view.set_color(color)
        pm = QPixmap(16, 16)
        pm.fill(color)
        self.color_button.setIcon(pm)
        self._save("overlay_color", color.name())

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
        self.undo_action.setEnabled(self._doc.can_undo())
        self.redo_action.setEnabled(self._doc.can_redo())

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

    def _show_info(self, pt) -> None:
        h, w = self._doc.shape
        text = f"{_size_text(h, w)} · {self.view.scale() * 100:.0f} %" if h else ""
        if pt is not None and h:
            x, y = round(pt[0]), round(pt[1])
            if 0 <= x < w and 0 <= y < h:
                text = f"({x}, {y}) mask {self._doc.mask[y, x]:.2f} · " + text
        self.info.setText(text)

    # ---- files ---------------------------------------------------------------------------------
    def load_image_file(self, path) -> bool:
        img, _alpha, err = read_image(path)
        if err:
            self.message.emit(err)
            return False
        self.set_image(img)
        self._remember_folder(path)
        return True

    def load_mask_file(self, path) -> bool:
        """A grey (or colour: its luma) mask image, white = regenerate; transparent pixels count
        as keep. Another size is resized to the image's (nearest), with a message."""
        img, alpha, err = read_image(path)
        if err:
            self.message.emit(err)
            return False
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        m = grey.astype(np.float32) / 255.0
        if alpha is not None:
            m *= alpha.astype(np.float32) / 255.0
        self.set_mask(m, source=Path(path).name)
        self._remember_folder(path)
        return True

    def save_mask_file(self, path) -> bool:
        """The mask as an 8-bit grey PNG (white = regenerate), written atomically."""
        p = Path(path)
        if self._doc.shape[0] == 0:
            self.message.emit(f"cannot save {p.name}: there is no mask yet")
            return False
        ok, buf = cv2.imencode(".png", to_uint8_mask(self._doc.mask))
        tmp = p.with_name(p.name + ".part")
        try:
            if not ok:
                raise OSError("PNG encoding failed")
            buf.tofile(str(tmp))
            os.replace(tmp, p)
        except OSError as e:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            self.message.emit(f"cannot save mask to {p.name}: {e.strerror or e}")
            return False
        self._remember_folder(p)
        return True

    def _load_mask_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", self.last_folder(), IMAGE_FILTER)
        if path:
            self.load_mask_file(path)

    def _save_mask_dialog(self) -> None:
        start = str(Path(self.last_folder()) / "mask.png")
        path, _ = QFileDialog.getSaveFileName(self, "Save mask (white = regenerate)", start, "PNG (*.png)")
        if path:
            self.save_mask_file(path if Path(path).suffix else path + ".png")

    def load_files(self, paths) -> None:
        """Dropped or pasted files: a name containing "mask" loads as the mask, others as the
        image (images first, so a dropped image + mask pair lands right)."""
        for p in sorted(map(str, paths), key=lambda q: "mask" in Path(q).name.lower()):
            if "mask" in Path(p).name.lower():
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
        if md is not None and md.hasUrls():
            files = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            if files:
                self.load_files(files)
                return True
        self.message.emit("the clipboard holds no image")
        return False

    # ---- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, e):
        md = e.mimeData()
        if md.hasImage() or (md.hasUrls() and any(u.isLocalFile() for u in md.urls())):
            e.acceptProposedAction()

    def dropEvent(self, e):
        md = e.mimeData()
        files = [u.toLocalFile() for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
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
