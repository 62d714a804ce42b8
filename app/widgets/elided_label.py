"""A one-line label whose size never depends on the text it shows: for readouts that change under
the mouse (a cursor position, a zoom) and status or phase lines, where a label that grows with its
text would make the layout around it move (the mask editor once rescaled its image on every
hover) or widen its page (a long "restoring …/step_000049.safetensors" once added a scrollbar)."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    """One line of plain text, cut short with "…" where it does not fit. Its size hint is the
    width of `template` (a typical text) and one line high, whatever text() is; it may shrink to
    nothing sideways. text() is the whole text; the tooltip shows it while it is cut short
    (unless a tooltip of its own was set). `short` lists shorter wordings of `text`, tried in
    order before the last one is cut short. `fill`: it asks for no width at all and takes what its
    layout's stretch gives it (a status line across a panel)."""

    def __init__(self, text: str = "", parent=None, *, template: str = "", short: tuple[str, ...] = (),
                 elide: Qt.TextElideMode = Qt.ElideRight, fill: bool = False):
        super().__init__(parent)
        self.setTextFormat(Qt.PlainText)
        self.setWordWrap(False)
        self._full, self._short, self._elide, self._own_tip = "", tuple(short), elide, False
        self._hint_w = self.fontMetrics().horizontalAdvance(template or text) + 4
        self.setSizePolicy(QSizePolicy.Ignored if fill else QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 2)
        self.setText(text)

    def sizeHint(self) -> QSize:
        return QSize(self._hint_w, self.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.height())

    def text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:
        self._full = str(text)
        self._fit()

    def setToolTip(self, tip: str) -> None:
        self._own_tip = bool(tip)
        super().setToolTip(tip)

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self._fit()

    def _fit(self) -> None:
        fm, room = self.fontMetrics(), max(self.width() - 2, 0)
        wordings = (self._full, *self._short) if self._full else ("",)
        shown = next((t for t in wordings if fm.horizontalAdvance(t) <= room), None)
        if shown is None:
            shown = fm.elidedText(wordings[-1], self._elide, room)
        super().setText(shown)   # QLabel.setText asks for a new layout, but our hints never change
        if not self._own_tip:
            super().setToolTip(self._full if shown != self._full else "")
