"""Tails a run directory on a timer: new metrics lines, the newest image of each training artifact
the run declares (artifacts.json: its sample grids, reconstructions, ...), status changes. The
plots and image views read the run directory, so they work the same for runs started from the GUI,
from a shell, or on another machine writing to a shared folder."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine.core.artifacts import ARTIFACTS_FILE
from engine.core.logkeys import normalize_row
from engine.runs.rundir import ACTIVE_STATES, RunDir, effective_status, metric_rows

LIVENESS_EVERY_S = 2.0  # how often a run recorded as running is checked for a living process


class RunWatcher(QObject):
    metrics = Signal(list)   # new rows (dicts, namespaced names: engine/core/logkeys.py) since the last poll
    artifacts = Signal(list)  # the ArtifactSpecs the watched run declares (on watch, and when that changes)
    artifact = Signal(str, str)  # an artifact's key and the path of its newer image
    status = Signal(dict)    # status.json when it changed ("interrupted" when its process is gone)
    reset = Signal()         # a different run is now watched

    def __init__(self, interval_ms: int = 250, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self._offset = 0
        self._partial = b""
        self._declared: list = []                 # the run's ArtifactSpecs
        self._declared_sig: float | None = None   # artifacts.json's mtime when they were read
        self._newest: dict[str, str] = {}         # artifact key -> the newest image reported
        self._last_status_mtime = 0.0
        self._last_state = ""
        self._last_liveness = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)

    def watch(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._offset, self._partial, self._last_status_mtime = 0, b"", 0.0
        self._last_state, self._newest, self._declared, self._declared_sig = "", {}, [], None
        self.reset.emit()
        self.poll()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def poll(self) -> None:
        if self.run_dir is None:
            return
        self._poll_metrics()
        self._poll_artifacts()
        self._poll_status()

    def _poll_metrics(self) -> None:
        path = self.run_dir / "metrics.jsonl"
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size < self._offset:  # truncated (a resume dropped lines): read again from the start
            self._offset, self._partial = 0, b""
            self.reset.emit()
        if size == self._offset:
            return
        with open(path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        self._offset = size
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        rows = [normalize_row(row) for row in metric_rows(lines)]  # runs from before the namespaces too
        if rows:
            self.metrics.emit(rows)

    def _poll_artifacts(self) -> None:
        """What the run declares (read again when artifacts.json changes: a new run writes it as it
        starts), then the newest image of each."""
        try:
            sig = (self.run_dir / ARTIFACTS_FILE).stat().st_mtime
        except OSError:
            sig = -1.0
        if sig != self._declared_sig:
            self._declared_sig = sig
            declared = RunDir(self.run_dir).artifacts()
            if declared != self._declared:
                self._declared = declared
                self.artifacts.emit(list(declared))
        for spec in self._declared:
            newest = newest_png(self.run_dir / spec.folder)
            if newest is not None and str(newest) != self._newest.get(spec.key):
                self._newest[spec.key] = str(newest)
                self.artifact.emit(spec.key, str(newest))

    def _poll_status(self) -> None:
        """On every change of status.json; and, while it says a process runs the run, every few
        seconds, since a killed process never writes again (it then reads as interrupted)."""
        p = self.run_dir / "status.json"
        try:
            m = p.stat().st_mtime
        except OSError:
            return
        now = time.monotonic()
        recheck = self._last_state in ACTIVE_STATES and now - self._last_liveness >= LIVENESS_EVERY_S
        if m == self._last_status_mtime and not recheck:
            return
        self._last_liveness = now
        st = effective_status(self.run_dir)
        if not st or (m == self._last_status_mtime and st.get("state") == self._last_state):
            return
        self._last_status_mtime, self._last_state = m, st.get("state", "")
        self.status.emit(st)


def newest_png(folder: Path) -> Path | None:
    """The PNG with the greatest name (step_000500.png: the newest step) in folder, or None."""
    try:
        return max((p for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith(".")),
                   key=lambda p: p.name, default=None)
    except OSError:
        return None
