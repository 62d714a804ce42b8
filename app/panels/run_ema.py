"""The runs browser's "Reconstruct EMA…" (post-hoc EMA, EDM2): for a run trained with
training.posthoc_ema, ask for the EMA length σ_rel and run `genlab-engine ema RUN --sigma-rel S`
(engine/ops/posthoc_ema.py) in an engine process of its own, with a progress bar, time left and
Cancel (kills the process: the checkpoint is written atomically, so no partial one is ever seen).
The new checkpoint joins the run's checkpoint strip."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QInputDialog, QProgressBar, QPushButton, QWidget

from app.engine_client import ResultJob
from app.qt_util import human_duration
from engine.core.config import POSTHOC_SIGMA_MAX
from engine.runs.posthoc_files import has_snapshots

TIP = ("Post-hoc EMA (EDM2): combine the power-function EMA snapshots this run stored "
       "(training.posthoc_ema) into the EMA of any length sigma_rel, written as a checkpoint of the run")
DEFAULT_SIGMA_REL = 0.07


class EmaJob(ResultJob):
    """`genlab-engine ema RUN --sigma-rel S`: progress events, then one result event (done: checkpoint,
    step, sigma_rel, snapshots, ...)."""

    progressed = Signal(str, int, int)   # stage, done, total

    def reconstruct(self, run_dir: str | Path, sigma_rel: float) -> None:
        self.run_command("ema", str(run_dir), "--sigma-rel", repr(float(sigma_rel)))

    def on_progress(self, ev: dict) -> None:
        self.progressed.emit(str(ev.get("stage", "")), int(ev["done"]), int(ev["total"]))


class EmaReconstruction(QWidget):
    """The button, and while a reconstruction runs its progress bar and Cancel. `say(text, error)`
    reports what happened (the run actions' message line)."""

    reconstructed = Signal(str)   # the checkpoint written (.safetensors)

    def __init__(self, say=None, parent=None):
        super().__init__(parent)
        self.say = say or (lambda text, error=False: None)
        self.run_dir: Path | None = None
        # replaceable (tests): ask_sigma() -> float | None
        self.ask_sigma = self._ask_sigma
        self.job = EmaJob(self)
        self.button = QPushButton("Reconstruct EMA…")
        self.button.setToolTip(TIP)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the reconstruction (no checkpoint is written)")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.button, self.bar, self.cancel_btn):
            lay.addWidget(w)
        self.button.clicked.connect(lambda: self.start())
        self.cancel_btn.clicked.connect(self.job.cancel)
        self.job.progressed.connect(self._on_progress)
        self.job.done.connect(self._on_done)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self._t0 = 0.0
        self._show_running(False)
        self.set_run(None)

    def set_run(self, run_dir: str | Path | None) -> None:
        """The run the button acts on: shown only for a run with post-hoc EMA snapshots."""
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.setVisible(self.run_dir is not None and (self.job.is_running() or has_snapshots(self.run_dir)))

    def _ask_sigma(self) -> float | None:
        value, ok = QInputDialog.getDouble(
            self, "Reconstruct EMA", f"EMA length sigma_rel (relative to the training time, 0.005 to "
                                     f"{POSTHOC_SIGMA_MAX}; EDM2 stores 0.05 and 0.1):",
            DEFAULT_SIGMA_REL, 0.005, POSTHOC_SIGMA_MAX, 3)
        return value if ok else None

    def start(self, sigma_rel: float | None = None) -> bool:
        if self.run_dir is None or self.job.is_running():
            return False
        if sigma_rel is None:
            sigma_rel = self.ask_sigma()
            if sigma_rel is None:
                return False
        self._t0 = time.monotonic()
        self.bar.setRange(0, 0)   # busy until the first progress event
        self._show_running(True)
        self.say(f"Reconstructing the EMA of sigma_rel {sigma_rel:g} from {self.run_dir.name}'s snapshots…")
        self.job.reconstruct(self.run_dir, sigma_rel)
        return True

    def _show_running(self, running: bool) -> None:
        self.button.setEnabled(not running)
        self.bar.setVisible(running)
        self.cancel_btn.setVisible(running)

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)
        left = (time.monotonic() - self._t0) / done * (total - done) if done else None
        self.bar.setFormat(f"%v/%m snapshots, {human_duration(left)} left" if left is not None else "%v/%m snapshots")

    def _on_done(self, result: dict) -> None:
        self._show_running(False)
        path = str(result.get("checkpoint", ""))
        self.say(f"Post-hoc EMA of sigma_rel {result.get('sigma_rel'):g} at step {result.get('step')} from "
                 f"{result.get('snapshots')} snapshots: {Path(path).name} (in the checkpoint strip)")
        self.reconstructed.emit(path)

    def _on_failed(self, line: str) -> None:
        self._show_running(False)
        self.say(f"Could not reconstruct the EMA: {line}", True)

    def _on_cancelled(self) -> None:
        self._show_running(False)
        self.say("Reconstruction cancelled; no checkpoint was written")
