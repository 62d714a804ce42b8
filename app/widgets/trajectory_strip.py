"""The denoising trajectory of one seed as a strip: per step, x_t above x̂0 (the state after the
step, and the model's guess of the clean image there), noisiest on the left; a slider (or a click
on a column) picks a step, and `step_changed` tells the canvas which images to preview."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

GAP = 2   # px between the columns
LABELS = 56   # px at the left for the row names
ROWS = ("x_t", "x0 pred")   # plain text: a combining hat (x̂) renders detached in common UI fonts


class _Columns(QWidget):
    """Paints the x_t / x̂0 pairs, each column as large as the room allows, the picked one framed."""
    clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.xs: list[QPixmap] = []
        self.x0s: list[QPixmap] = []
        self.current = -1
        self.placeholder = ""
        self.setMinimumHeight(60)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(400, 100)

    def cell(self) -> int:
        """The side of one image: columns fill the width, two rows fit the height."""
        n = max(1, len(self.xs))
        return max(4, min((self.width() - LABELS - GAP) // n - GAP, (self.height() - GAP) // 2 - GAP))

    def column_rect(self, i: int) -> QRect:
        s = self.cell()
        left = LABELS + (self.width() - LABELS - len(self.xs) * (s + GAP) - GAP) // 2
        return QRect(left + GAP + i * (s + GAP), GAP, s, 2 * s + GAP)

    def paintEvent(self, _):
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        if not self.xs:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self.placeholder)
            return
        s = self.cell()
        left = self.column_rect(0).left()
        for row, name in enumerate(ROWS):   # each row's name, right-aligned against the first column
            p.drawText(QRect(0, GAP + row * (s + GAP), left - 6, s), Qt.AlignRight | Qt.AlignVCenter, name)
        for i, (x, x0) in enumerate(zip(self.xs, self.x0s)):
            r = self.column_rect(i)
            p.drawPixmap(QRect(r.left(), r.top(), s, s), x)
            p.drawPixmap(QRect(r.left(), r.top() + s + GAP, s, s), x0)
        if 0 <= self.current < len(self.xs):
            p.setPen(QPen(QColor(230, 120, 20), 2))
            p.drawRect(self.column_rect(self.current).adjusted(-1, -1, 1, 1))

    def mousePressEvent(self, e):
        for i in range(len(self.xs)):
            if self.column_rect(i).contains(e.position().toPoint()):
                self.clicked.emit(i)
                return


class TrajectoryStrip(QWidget):
    step_changed = Signal(int)   # the step the slider is on

    def __init__(self, parent=None):
        super().__init__(parent)
        self.x_paths: list[str] = []
        self.x0_paths: list[str] = []
        self.sigmas: list = []
        self.ts: list = []
        self.columns = _Columns()
        self.columns.placeholder = ("x_t (the state after each step) above the model's prediction of the clean "
                                    "image there, for every step of one seed's sampling: press Compute.")
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Scrub through the steps: the large view shows the picked step")
        self.step_label = QLabel("")
        # room for the longest text, so the slider keeps its length while it moves
        self.step_label.setMinimumWidth(self.step_label.fontMetrics().horizontalAdvance("step 999 / 999 · σ 1.00e+03 · t 999"))
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.columns, 1)
        scrub = QHBoxLayout()
        scrub.setContentsMargins(0, 0, 0, 0)
        scrub.addWidget(self.slider, 1)
        scrub.addWidget(self.step_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row, 1)
        lay.addLayout(scrub)
        self.slider.valueChanged.connect(self._on_slider)
        self.columns.clicked.connect(self.slider.setValue)

    def count(self) -> int:
        return len(self.x_paths)

    def set_steps(self, x_paths: list[str], x0_paths: list[str], sigmas: list, ts: list) -> None:
        """Show a trajectory (paths of each step's PNGs, noisiest first) and pick its last step."""
        self.x_paths, self.x0_paths, self.sigmas, self.ts = list(x_paths), list(x0_paths), list(sigmas), list(ts)
        self.columns.xs = [QPixmap(p) for p in self.x_paths]
        self.columns.x0s = [QPixmap(p) for p in self.x0_paths]
        n = len(self.x_paths)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(n - 1)
        self.slider.blockSignals(False)
        self.slider.setEnabled(n > 1)
        self._on_slider(n - 1)

    def clear(self) -> None:
        self.set_steps([], [], [], [])
        self.step_label.setText("")

    def current(self) -> int:
        return self.slider.value() if self.x_paths else -1

    def step_text(self, i: int) -> str:
        sigma = self.sigmas[i] if i < len(self.sigmas) else None
        t = self.ts[i] if i < len(self.ts) else None
        parts = [f"step {i + 1} / {len(self.x_paths)}", "σ ∞" if sigma is None else f"σ {sigma:.3g}"]
        if t is not None:
            parts.append(f"t {t:g}")
        return " · ".join(parts)

    def _on_slider(self, i: int) -> None:
        self.columns.current = i
        self.columns.update()
        if 0 <= i < len(self.x_paths):
            self.step_label.setText(self.step_text(i))
            self.step_changed.emit(i)
