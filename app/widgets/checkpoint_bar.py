"""The window's one current checkpoint, in the toolbar (like AUTOMATIC1111's checkpoint picker):
which checkpoint every canvas works on, whether the worker holds it, a recent list to switch,
and Open…. It is a view of the WorkerSession: a canvas that opens its own checkpoint changes the
session's, and the bar follows; picking here changes it for every canvas. A checkpoint that cannot
be loaded leaves the bar on the one loaded before, with one line saying why the other failed."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from app.qt_util import signals_blocked
from app.worker_session import WorkerSession, failure_reason, same_path
from engine.core.capabilities import Capabilities


NO_CHECKPOINT = "no checkpoint: train one, or open or drop a .safetensors file"


def checkpoint_label(path: str) -> str:
    """'run-name / step_000400' — what a person recognises a checkpoint by."""
    p = Path(path)
    return f"{p.parent.parent.name if p.parent.name == 'checkpoints' else p.parent.name} / {p.stem}"


class CheckpointBar(QWidget):
    picked = Signal(str)          # a checkpoint chosen here (recent list or Open…)
    open_requested = Signal()     # Open… pressed: the window asks for a file

    def __init__(self, session: WorkerSession, recent: Callable[[], list[str]] = lambda: [], parent=None):
        super().__init__(parent)
        self.session = session
        self.recent = recent                      # the recent checkpoints, newest first
        self.combo = QComboBox()
        self.combo.setMinimumContentsLength(18)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMaximumWidth(460)
        self.combo.setToolTip("The checkpoint every canvas works on (switch to a recent one here)")
        self.open_btn = QPushButton("Open…")
        self.open_btn.setToolTip("Open a checkpoint (.safetensors) for every canvas (File ▸ Open checkpoint, "
                                 "Ctrl+Shift+O)")
        self.state = QLabel(NO_CHECKPOINT)
        self.state.setObjectName("checkpoint_state")
        self.state.setMinimumWidth(60)      # a long state line is cut, not a reason for a wider window
        self.state.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(QLabel("Checkpoint"))
        lay.addWidget(self.combo)
        lay.addWidget(self.open_btn)
        lay.addWidget(self.state, 1)    # the rest of the bar; cut, never widening the window
        self.combo.activated.connect(self._on_activated)
        self.open_btn.clicked.connect(self.open_requested)
        session.checkpoint_changed.connect(self._on_checkpoint)
        session.loading.connect(lambda _p: self.state.setText("loading…"))
        session.loaded.connect(self._on_loaded)
        session.load_failed.connect(lambda m: self._say_failed(m))
        session.load_refused.connect(self._say_refused)
        session.reset.connect(lambda m: self._say_failed(m))
        self.refresh()

    def refresh(self) -> None:
        """The current checkpoint first, then the recent ones (the list is rebuilt when shown)."""
        current = self.session.checkpoint
        items = ([current] if current else []) + [p for p in self.recent() if not same_path(p, current)]
        with signals_blocked(self.combo):
            self.combo.clear()
            for p in items:
                self.combo.addItem(checkpoint_label(p), p)
                self.combo.setItemData(self.combo.count() - 1, p, 3)  # 3 = Qt.ToolTipRole: the full path
            if not items:
                self.combo.addItem("(none)", "")
            self.combo.setCurrentIndex(0)

    def _on_activated(self, index: int) -> None:
        path = self.combo.itemData(index)
        if path and not same_path(path, self.session.checkpoint):
            self.picked.emit(path)

    def _on_checkpoint(self, path: str) -> None:
        self.refresh()
        if path and self.session.is_loaded():   # back on the one the worker holds (a drop, a recent pick)
            self._on_loaded(self.session.capabilities)
        else:
            self.state.setText("not loaded yet: it loads when a canvas needs it" if path else NO_CHECKPOINT)
            self.state.setToolTip(path)

    def _on_loaded(self, caps: Capabilities) -> None:
        step = f", step {self.session.step}" if self.session.step is not None else ""
        self.state.setText(f"loaded: {caps.family}, {caps.resolution}×{caps.resolution}{step}")
        self.state.setToolTip(self.session.loaded_checkpoint)

    def _say_failed(self, message: str) -> None:
        self.state.setText(f"<span style='color:#c0392b'>✖ not loaded: {html.escape(one_line(message))}</span>")
        self.state.setToolTip(message)

    def _say_refused(self, path: str, message: str) -> None:
        """`path` could not be loaded; the loaded checkpoint (shown in the combo again) stays. What
        was kept comes before the reason, so a narrow window cuts the reason's end, not the news."""
        caps, step = self.session.capabilities, self.session.step
        kept = f" (kept {caps.family}{f', step {step}' if step is not None else ''})" if caps else ""
        line = f"✖ {checkpoint_label(path)} not opened{kept}: {failure_reason(message, path)}"
        self.state.setText(f"<span style='color:#c0392b'>{html.escape(line)}</span>")
        self.state.setToolTip(f"{path} could not be loaded: {message}\n"
                              f"Still loaded: {self.session.loaded_checkpoint}")


def one_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "error"
