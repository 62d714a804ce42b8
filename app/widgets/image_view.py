"""Shows an image scaled to fit, with sharp (nearest) scaling so small samples stay crisp."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget


class ImageView(QWidget):
    def __init__(self, placeholder: str = "", parent=None):
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self.path: str = ""
        self.placeholder = placeholder
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_path(self, path: str) -> bool:
        img = QImage(path)
        if img.isNull():
            return False
        self.path = path
        self._pixmap = QPixmap.fromImage(img)
        self.update()
        return True

    def clear(self) -> None:
        self._pixmap, self.path = None, ""
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def image_size(self) -> QSize:
        return self._pixmap.size() if self._pixmap else QSize()

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def image_rect(self) -> QRect:
        """Where the image is painted, in widget coordinates: fitted and centred, with a whole-number
        zoom when it is enlarged (empty without an image)."""
        if self._pixmap is None or self._pixmap.isNull():
            return QRect()
        pw, ph = self._pixmap.width(), self._pixmap.height()
        scale = min(self.width() / pw, self.height() / ph)
        if scale >= 1:
            scale = max(1, int(scale))  # whole-number zoom keeps pixels square
        w, h = int(pw * scale), int(ph * scale)
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def paintEvent(self, _):
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if self._pixmap is None:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self.placeholder)
            return
        r = self.image_rect()
        p.setRenderHint(QPainter.SmoothPixmapTransform, r.width() < self._pixmap.width())
        p.drawPixmap(r, self._pixmap)
