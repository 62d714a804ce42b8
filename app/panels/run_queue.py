"""The training queue of the runs folder (engine/runs/queue.py), in the Runs tab: its entries as
<runs_root>/queue.json lists them (name, family, state, time budget, run folder, message), read
again every few seconds while shown, so the queue survives a restart of the app and shows what a
headless `genlab-engine queue` does. Up / Down / Remove / Clear ended edit the file; Pause queue /
Resume queue hold it before its next entry; Run queue starts `genlab-engine queue run` (QueueJob),
unless a runner already works on this folder (its pid is shown instead); Stop queue pauses the
queue and stops the run it trains through the run's control file, like the Train tab's Stop: the
run writes its final checkpoint and the runner, finding the queue paused, ends.

A run the queue starts appears in the runs list by itself (it is a run folder like any); a double
click on an entry with a run folder opens that run (open_run); an entry of a comparison group whose
result is written offers Show comparison (show_comparison)."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from app.engine_client import EngineJob
from app.qt_util import human_duration
from engine.runs.queue import ENDED_STATES, CompareGroup, QueueEntry, QueueError, TrainingQueue, comparison_path
from engine.runs.rundir import send_control

POLL_MS = 2000
COLUMNS = ("#", "name", "family", "state", "budget", "group", "run folder", "message")
C_NAME, C_STATE, C_RUN = 1, 3, 6
_STATE_COLORS = {"running": "#1e8449", "failed": "#c0392b", "interrupted": "#b26b00", "stopped": "#7f6000"}


class QueueJob(EngineJob):
    """`genlab-engine queue run --runs-root ROOT`: its "queue" and "group" events as signals; it
    ends when nothing is queued or the queue is paused."""

    changed = Signal(dict)   # a "queue" (an entry started or ended) or "group" event
    finished = Signal(int, str)   # exit code, the engine's last error line ("" when it ended cleanly)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.event.connect(lambda ev: self.changed.emit(ev) if ev.get("event") in ("queue", "group") else None)
        self.ended.connect(lambda code, crashed, tail: self.finished.emit(
            code, "" if code == 0 and not crashed else self.error_line(tail, code)))

    def run_queue(self, runs_root: str | Path) -> None:
        self.start("queue", "run", "--runs-root", str(runs_root))

    def terminate(self, wait_ms: int = 0) -> None:
        """SIGTERM: the runner stops the run it trains (its final checkpoint is written) and marks
        the entry interrupted; killed if it is not gone in wait_ms."""
        if self.is_running():
            self.proc.terminate()
            if wait_ms and not self.proc.waitForFinished(wait_ms):
                self.kill(wait_ms=3000)


def budget_text(seconds: float) -> str:
    """A time budget as it was set: "2 min", "1.5 min", "45 s"; "–" for none."""
    if not seconds or seconds <= 0:
        return "–"
    return f"{seconds / 60:.4g} min" if seconds >= 60 else f"{seconds:.3g} s"


def position_of(queue: TrainingQueue, entry_id: str) -> int:
    """The entry's place in the queue, from 1 (0: not in it)."""
    ids = [e.id for e in queue.entries()]
    return ids.index(entry_id) + 1 if entry_id in ids else 0


class QueueView(QWidget):
    open_run = Signal(str)          # a run folder of an entry (double click)
    show_comparison = Signal(str, str)   # a comparison group's result file, its label

    def __init__(self, runs_root: str | Path, poll_ms: int = POLL_MS, parent=None):
        super().__init__(parent)
        self.queue = TrainingQueue(runs_root)
        self.entries: list[QueueEntry] = []
        self.groups: list[CompareGroup] = []
        self.paused = False
        self.runner: int | None = None   # the pid of a live runner (ours or another's)
        self._shown: tuple = ()          # what the table shows, to rebuild it only on a change

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.Stretch)
        self.table.setToolTip("Double-click an entry with a run folder to open that run")

        self.up_btn = QPushButton("Up")
        self.down_btn = QPushButton("Down")
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setToolTip("Take the entry out of the queue (a running entry: stop the queue first)")
        self.clear_btn = QPushButton("Clear ended")
        self.clear_btn.setToolTip("Drop the done, stopped and failed entries (their runs stay in the runs list)")
        self.pause_btn = QPushButton("Pause queue")
        self.pause_btn.setToolTip("Start no further entry; the one training goes on to its end")
        self.run_btn = QPushButton("▶ Run queue")
        self.run_btn.setToolTip("Train the queued entries one after another in a background engine process "
                                "(`genlab-engine queue run`); a paused queue is resumed")
        self.stop_btn = QPushButton("■ Stop queue")
        self.stop_btn.setToolTip("Pause the queue and stop the run it trains (its final checkpoint is written)")
        self.compare_btn = QPushButton("Show comparison")
        self.compare_btn.setToolTip("Show the selected entry's comparison group in the Families view")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.hide()

        self.job = QueueJob(self)
        self.job.changed.connect(lambda _ev: self.refresh())
        self.job.finished.connect(self._on_runner_ended)

        edit = QHBoxLayout()
        for b in (self.up_btn, self.down_btn, self.remove_btn, self.clear_btn, self.compare_btn):
            edit.addWidget(b)
        edit.addStretch(1)
        run = QHBoxLayout()
        for b in (self.run_btn, self.stop_btn, self.pause_btn):
            run.addWidget(b)
        run.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(run)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        lay.addLayout(edit)
        lay.addWidget(self.message)

        self.up_btn.clicked.connect(lambda: self.move(-1))
        self.down_btn.clicked.connect(lambda: self.move(+1))
        self.remove_btn.clicked.connect(self.remove)
        self.clear_btn.clicked.connect(lambda: self._edit(self.queue.clear_ended))
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.run_btn.clicked.connect(self.run_queue)
        self.stop_btn.clicked.connect(self.stop_queue)
        self.compare_btn.clicked.connect(self._show_comparison)
        self.table.itemSelectionChanged.connect(self._sync)
        self.table.itemDoubleClicked.connect(self._on_double_click)

        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.refresh)
        self.refresh()

    @property
    def runs_root(self) -> Path:
        return self.queue.root

    # ---- reading -------------------------------------------------------------------------------
    def showEvent(self, e):
        super().showEvent(e)
        self.refresh()
        self.timer.start()

    def hideEvent(self, e):
        super().hideEvent(e)
        if not self.job.is_running():   # while our runner works, its entries' states stay current
            self.timer.stop()

    def refresh(self) -> None:
        """Read queue.json again; the table changes only where the file did."""
        try:
            self.entries, self.groups, self.paused = self.queue.snapshot()   # one read of queue.json
        except QueueError as e:
            self.entries, self.groups = [], []
            self._say(str(e), error=True)
        self.runner = self.queue.runner_pid() or (self.job.proc.processId() if self.job.is_running() else None)
        shown = tuple((e.id, e.name, e.family, e.state, e.time_budget_s, e.group, e.run_dir, e.message)
                      for e in self.entries) + tuple((g.id, g.state, g.result) for g in self.groups)
        if shown != self._shown:
            self._shown = shown
            self._fill()
        self._show_status()
        self._sync()

    def _fill(self) -> None:
        keep = self.selected_id()
        groups = {g.id: g for g in self.groups}
        self.table.setRowCount(len(self.entries))
        for i, e in enumerate(self.entries):
            g = groups.get(e.group)
            cells = (str(i + 1), e.name, e.family, e.state, budget_text(e.time_budget_s),
                     f"{e.group} ({g.state})" if g else "", Path(e.run_dir).name if e.run_dir else "", e.message)
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setData(Qt.UserRole, e.id)
                if c == C_RUN and e.run_dir:
                    it.setToolTip(e.run_dir)
                elif c == C_NAME and e.continue_run:
                    it.setToolTip(f"continue {e.continue_run}" + (f" for {e.more_steps} more steps"
                                                                   if e.more_steps else " to its planned end"))
                elif text:
                    it.setToolTip(text)
                if c == C_STATE and e.state in _STATE_COLORS:
                    it.setForeground(QColor(_STATE_COLORS[e.state]))
                self.table.setItem(i, c, it)
        if keep is not None:
            self.select(keep)

    def _show_status(self) -> None:
        queued = sum(e.state == "queued" for e in self.entries)
        running = next((e for e in self.entries if e.state == "running"), None)
        parts = [f"{queued} queued"]
        if running is not None:
            since = f" for {human_duration(time.time() - running.started)}" if running.started else ""
            parts.append(f"training: {running.name}" + (f" in {Path(running.run_dir).name}" if running.run_dir else "")
                         + since)
        if self.runner is not None:
            parts.append(f"runner: process {self.runner}" + ("" if self.job.is_running() else
                                                            " (started elsewhere: a shell, or an earlier session)"))
        elif queued:
            parts.append("not running: press Run queue")
        if self.paused:
            parts.append("paused: no new entry starts")
        waiting = [g for g in self.groups if g.state in ("waiting", "comparing")]
        if waiting:
            parts.append(", ".join(f"comparison {g.id} {g.state}" for g in waiting))
        self.status.setText(" · ".join(parts))

    # ---- selection -----------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        it = self.table.item(rows[0].row(), 0)
        return it.data(Qt.UserRole) if it is not None else None

    def selected(self) -> QueueEntry | None:
        sid = self.selected_id()
        return next((e for e in self.entries if e.id == sid), None)

    def select(self, entry_id: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.UserRole) == entry_id:
                self.table.selectRow(r)
                return

    def _sync(self) -> None:
        e = self.selected()
        live = self.runner is not None
        self.up_btn.setEnabled(e is not None and self.entries.index(e) > 0)
        self.down_btn.setEnabled(e is not None and self.entries.index(e) < len(self.entries) - 1)
        self.remove_btn.setEnabled(e is not None and not (e.state == "running" and live))
        self.clear_btn.setEnabled(any(x.state in ENDED_STATES for x in self.entries))
        self.compare_btn.setEnabled(e is not None and self._result_of(e) is not None)
        self.pause_btn.setText("Resume queue" if self.paused else "Pause queue")
        self.run_btn.setEnabled(not live and any(x.state == "queued" for x in self.entries))
        self.stop_btn.setEnabled(live)

    # ---- editing -------------------------------------------------------------------------------
    def _edit(self, change, *args) -> bool:
        try:
            change(*args)
        except QueueError as err:
            self._say(str(err), error=True)
            self.refresh()
            return False
        self._say("")
        self.refresh()
        return True

    def move(self, delta: int) -> None:
        e = self.selected()
        if e is not None:
            self._edit(self.queue.move, e.id, delta)
            self.select(e.id)

    def remove(self) -> None:
        e = self.selected()
        if e is not None and self._edit(self.queue.remove, e.id):
            self._say(f"removed {e.name} from the queue")

    def toggle_pause(self) -> None:
        self._edit(self.queue.set_paused, not self.paused)

    def add_continue(self, run_dir: str | Path, more_steps: int = 0) -> QueueEntry | None:
        """Queue continuing a run (for more_steps more steps, 0: to its planned end)."""
        try:
            e = self.queue.add_continue(run_dir, more_steps)
        except QueueError as err:
            self._say(str(err), error=True)
            return None
        self.refresh()
        self.select(e.id)
        return e

    # ---- running -------------------------------------------------------------------------------
    def run_queue(self) -> bool:
        """Start `genlab-engine queue run` (resuming a paused queue); a runner already live on this
        folder is shown, not doubled."""
        self.refresh()
        if self.runner is not None:
            self._say(f"a queue runner already works on this folder (process {self.runner})")
            return False
        if self.paused and not self._edit(self.queue.set_paused, False):
            return False
        self.job.run_queue(self.runs_root)
        self.timer.start()
        self._say("queue started")
        self.refresh()
        return True

    def stop_queue(self) -> None:
        """Pause the queue, and stop the run it trains through its control file (it writes its
        final checkpoint; the runner then finds the queue paused and ends)."""
        self._edit(self.queue.set_paused, True)
        running = next((e for e in self.entries if e.state == "running" and e.run_dir), None)
        if running is not None:
            send_control(running.run_dir, "stop")
            self._say(f"stopping {running.name} (a checkpoint is written); the queue is paused")
        else:
            self._say("the queue is paused: the runner ends before the next entry")

    def _on_runner_ended(self, code: int, error: str) -> None:
        self.refresh()
        if error:
            self._say(f"the queue runner ended: {error}", error=True)
        else:
            self._say("the queue runner ended" + (" (the queue is paused)" if self.paused else ""))
        if not self.isVisible():
            self.timer.stop()

    def shutdown(self) -> None:
        """The window closes: the runner stops the run it trains (a checkpoint) and marks it
        interrupted; Run queue in the next session goes on with the queue."""
        self.timer.stop()
        self.job.terminate(wait_ms=20000)

    # ---- opening -------------------------------------------------------------------------------
    def _on_double_click(self, item: QTableWidgetItem) -> None:
        e = next((x for x in self.entries if x.id == item.data(Qt.UserRole)), None)
        if e is not None and e.run_dir and Path(e.run_dir).is_dir():
            self.open_run.emit(e.run_dir)
        elif e is not None and self._result_of(e) is not None:
            self._show_comparison()

    def _result_of(self, e: QueueEntry) -> Path | None:
        g = next((g for g in self.groups if g.id == e.group), None) if e.group else None
        if g is None:
            return None
        path = Path(g.result) if g.result else comparison_path(self.runs_root, g.id)
        return path if path.is_file() else None

    def _show_comparison(self) -> None:
        e = self.selected()
        path = self._result_of(e) if e is not None else None
        if path is not None:
            self.show_comparison.emit(str(path), f"comparison {e.group}")

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color:#c0392b" if error else "color:#1e8449")
        self.message.setText(("✖ " if error and text else "") + text)
        self.message.setVisible(bool(text))
