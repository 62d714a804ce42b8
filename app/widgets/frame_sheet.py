"""The frames of a walk as a sheet that wraps into rows: as many columns as give each frame the most
room in the space the sheet has (16 frames in one row of a 530 px strip were 33 px each; in two
rows of 8 they are twice that). A click picks a frame."""
from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QSize, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap

from app.widgets.image_view import ImageView

GAP = 2   # px between frames on the sheet, at the frames' own size


def best_columns(n: int, frame: QSize, room: QSize) -> int:
    """The column count that shows `n` frames of size `frame` largest within `room`."""
    if n <= 0 or frame.isEmpty() or room.isEmpty():
        return max(1, n)
    def scale(cols: int) -> float:
        rows = math.ceil(n / cols)
        return min(room.width() / (cols * (frame.width() + GAP)), room.height() / (rows * (frame.height() + GAP)))
    return max(range(1, n + 1), key=lambda c: (scale(c), -c))


class FrameSheet(ImageView):
    picked = Signal(int)   # the frame clicked

    def __init__(self, placeholder: str = "", parent=None):
        super().__init__(placeholder, parent)
        self.frames: list[QPixmap] = []
        self.columns = 0

    def set_frames(self, frames: list[QPixmap], path: str = "") -> None:
        """Show these frames (`path`: the strip file they came from, kept as the view's path)."""
        self.frames, self.path = list(frames), path
        self.columns = 0
        self._compose()

    def clear(self) -> None:
        self.frames, self.columns = [], 0
        super().clear()

    def _compose(self) -> None:
        if not self.frames:
            return
        size = self.frames[0].size()
        cols = best_columns(len(self.frames), size, self.size())
        if cols == self.columns and self._pixmap is not None:
            return
        self.columns = cols
        rows = math.ceil(len(self.frames) / cols)
        sheet = QPixmap(cols * (size.width() + GAP) + GAP, rows * (size.height() + GAP) + GAP)
        sheet.fill(QColor(0, 0, 0, 0))
        p = QPainter(sheet)
        for i, frame in enumerate(self.frames):
            r, c = divmod(i, cols)
            p.drawPixmap(GAP + c * (size.width() + GAP), GAP + r * (size.height() + GAP), frame)
        p.end()
        self._pixmap = sheet
        self.update()

    def frame_at(self, pos: QPoint) -> int:
        """The frame under `pos` (widget coordinates), or -1."""
        rect = self.image_rect()
        if not self.frames or not rect.contains(pos) or not self.columns:
            return -1
        rows = math.ceil(len(self.frames) / self.columns)
        c = (pos.x() - rect.x()) * self.columns // max(1, rect.width())
        r = (pos.y() - rect.y()) * rows // max(1, rect.height())
        i = r * self.columns + c
        return i if 0 <= i < len(self.frames) else -1

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self._compose()

    def mousePressEvent(self, e):
        i = self.frame_at(e.position().toPoint())
        if i >= 0:
            self.picked.emit(i)
        super().mousePressEvent(e)
