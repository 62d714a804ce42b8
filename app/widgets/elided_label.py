"""A one-line label that never widens its page: its width is what its layout's stretch gives it
(its text asks for none), and a longer text is elided (a path keeps its start and its file name)
with the whole text in the tooltip. text() is the whole text."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", mode: Qt.TextElideMode = Qt.ElideMiddle, parent=None):
        super().__init__(parent)
        self._full, self._mode = "", mode
        self.setTextFormat(Qt.PlainText)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setMinimumWidth(1)   # an explicit minimum overrides the text's minimumSizeHint
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, self._mode, max(1, self.width()))
        super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")
