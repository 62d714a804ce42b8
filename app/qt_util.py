"""Small Qt helpers."""
from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QSplitter


@contextmanager
def signals_blocked(obj):
    prev = obj.blockSignals(True)
    try:
        yield obj
    finally:
        obj.blockSignals(prev)


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def scratch_settings():
    """Settings that last only as long as this process (a temporary INI file): for windows and
    canvases built without the user's settings (tests, screenshots), so nothing leaks into them."""
    import tempfile
    from PySide6.QtCore import QSettings
    handle, path = tempfile.mkstemp(prefix="genlab-settings-", suffix=".ini")
    import os
    os.close(handle)
    return QSettings(path, QSettings.IniFormat)


def scrolled(widget):
    """`widget` in a scroll area that resizes it: below its minimum size it scrolls instead of
    forcing the window wider (the window must fit a 1024×640 screen)."""
    from PySide6.QtWidgets import QFrame, QScrollArea
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    return area


class FlowLayout(QLayout):
    """Widgets left to right in their preferred sizes, wrapping onto another row where the width
    runs short (after Qt's flow layout example): a row of buttons that needs no more width than
    its widest button, and takes one row wherever it fits."""

    def __init__(self, parent=None, spacing: int = 6):
        super().__init__(parent)
        self._items: list = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, i: int):
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i: int):
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def expandingDirections(self):
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:   # everything on one row
        shown = [it.sizeHint() for it in self._items if not it.isEmpty()]
        m = self.contentsMargins()
        return QSize(sum(s.width() for s in shown) + self._spacing * max(0, len(shown) - 1) + m.left() + m.right(),
                     max((s.height() for s in shown), default=0) + m.top() + m.bottom())

    def minimumSize(self) -> QSize:   # the widest item alone on a row
        size = QSize(0, 0)
        for it in self._items:
            if not it.isEmpty():
                size = size.expandedTo(it.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _place(self, rect: QRect, move: bool) -> int:
        """Lay the items out in `rect` (or only measure): the height the rows take."""
        m = self.contentsMargins()
        r = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, row_h = r.x(), r.y(), 0
        for it in self._items:
            if it.isEmpty():   # a hidden widget
                continue
            hint = it.sizeHint()
            w = max(it.minimumSize().width(), min(hint.width(), r.width()))
            if x > r.x() and x + w > r.x() + r.width():
                x, y, row_h = r.x(), y + row_h + self._spacing, 0
            if move:
                it.setGeometry(QRect(QPoint(x, y), QSize(w, hint.height())))
            x += w + self._spacing
            row_h = max(row_h, hint.height())
        return y + row_h - rect.y() + m.bottom()


class AutoSplit(QObject):
    """Sizes a splitter's first pane by a rule, `first_size(length)` in pixels of the splitter's
    length (its handle excluded), each time the splitter is resized, until the person drags the
    handle: from then on their choice stays."""

    def __init__(self, splitter: QSplitter, first_size):
        super().__init__(splitter)
        self.splitter, self.first_size = splitter, first_size
        self.active = True
        splitter.splitterMoved.connect(self._moved)   # emitted for drags only, not for setSizes
        splitter.installEventFilter(self)

    def _moved(self, *_) -> None:
        self.active = False

    def eventFilter(self, obj, e) -> bool:
        if e.type() == QEvent.Resize:
            self.refresh()
        return False

    def refresh(self) -> None:
        """Size the panes by the rule again (when what it depends on changed), unless dragged."""
        if self.active:
            self.apply()

    def apply(self) -> None:
        s = self.splitter
        length = (s.width() if s.orientation() == Qt.Horizontal else s.height()) - s.handleWidth()
        first = max(0, min(length, int(self.first_size(length))))
        s.setSizes([first, length - first])
