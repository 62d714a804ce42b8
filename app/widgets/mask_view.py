"""The mask editor's canvas: draws the image with the mask over it, zooms and pans, and turns
the mouse into brush strokes on a MaskDocument (mask_paint.py). The editor around it
(mask_editor.py) owns the document and the toolbars.

Drawing stays cheap at any zoom: the image and the overlay are cached QImages drawn through one
scale transform clipped to the exposed region, and a stroke segment rewrites only its box of the
overlay (the overlay's pixels are a numpy view of the QImage's memory)."""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.image_io import array_to_qimage
from app.widgets.mask_paint import Box, MaskDocument, to_uint8_mask


class MaskView(QWidget):
    """Draws image + overlay + frame + brush outline, zooms and pans, and paints into `doc`.

    Image coordinates put pixel (i, j)'s centre on (i, j) (as MaskDocument does), so a widget
    point maps to ((x - ox) / s - 0.5, (y - oy) / s - 0.5) with s the scale and o the offset."""

    stroke_done = Signal()   # a stroke ended (the editor decides whether the mask changed)
    hovered = Signal(object)  # (x, y) in image coordinates, or None when the mouse left
    view_changed = Signal()   # the zoom or the pan changed (after the fact: scale() is what is drawn)

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

    def hover_point(self) -> tuple[float, float] | None:
        """The image point under the mouse, or None when the mouse is elsewhere."""
        return None if self._cursor is None else self.widget_to_image(self._cursor)

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
        self._moved()

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
        self._moved()

    def _moved(self) -> None:
        self.update()
        self.view_changed.emit()

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
                       "Drop an image here, paste one (Ctrl+V) or open one (Open image…).\n"
                       "Then paint where the model should regenerate.")
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
            self._moved()
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
            self._moved()
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
