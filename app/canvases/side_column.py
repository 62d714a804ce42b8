"""A canvas's column of controls beside its pictures, built so that nothing in it can move them:
the controls scroll on their own (a long options form or model hint never makes the page taller),
the run block (the button that starts the work, its progress and the status line) stays pinned
below them in view, and the column's width follows the page and the controls, never the text of
a message (the inpainting editor once rescaled its image whenever a status line changed)."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

STATUS_LINES = 8   # lines of a status message in view (messages here are one to five)


class SideColumn(QWidget):
    """body: the layout of the scrolling controls; foot: the pinned run block. Call follow() from
    the page's resizeEvent."""

    def __init__(self, max_width: int, share: float, parent=None):
        super().__init__(parent)
        self.max_width, self.share = max_width, share
        self.panel = QWidget()
        self.body = QVBoxLayout(self.panel)
        self.area = QScrollArea()
        self.area.setWidget(self.panel)
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QFrame.NoFrame)
        self.area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.foot = QVBoxLayout()
        m = self.body.contentsMargins()
        self.foot.setContentsMargins(m.left(), 0, m.right(), m.bottom())
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.area, 1)
        lay.addLayout(self.foot)
        self.setFixedWidth(max_width)

    # The column's height must not follow its messages either: a word-wrapped label reports a
    # height for each width, and a page in a scroll area grows to the tallest of those (a status
    # line once added a scroll bar to the page, narrowing the editor). So the column reports no
    # height-for-width and a minimum height that holds the run block with its status at the most.
    def hasHeightForWidth(self) -> bool:
        return False

    def minimumSizeHint(self) -> QSize:
        foot = 0
        for i in range(self.foot.count()):
            w = self.foot.itemAt(i).widget()
            if w is not None:
                tall = w.maximumHeight() if isinstance(w, QLabel) and w.wordWrap() else w.sizeHint().height()
                foot += tall + self.foot.spacing()
        return QSize(self.width(), self.area.minimumSizeHint().height() + foot)

    def follow(self, page_width: int) -> None:
        """At most max_width, else the page's share, but never narrower than the controls need
        (a box layout would squeeze the pictures first), its scroll bar included (a form as wide as
        the column once had its spin boxes' arrows under the bar)."""
        need = max(self.panel.minimumSizeHint().width() + self.area.verticalScrollBar().sizeHint().width(),
                   self.foot.minimumSize().width())   # the pinned run block's rows too (a progress bar and its Cancel)
        self.setFixedWidth(min(self.max_width, max(need, int(self.share * page_width))))


def wrapping(label: QLabel) -> QLabel:
    """A word-wrapped message that never widens its column (its text wraps to the width there is)."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    return label


def status_line(label: QLabel) -> QLabel:
    """A pinned status message: wraps, top lines first, at most STATUS_LINES lines tall (so that
    however long a message, the page never grows taller than the window)."""
    wrapping(label)
    label.setAlignment(Qt.AlignLeft | Qt.AlignTop)
    label.setMaximumHeight(label.fontMetrics().lineSpacing() * STATUS_LINES + 4)
    return label
