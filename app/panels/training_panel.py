"""Training panel: Start, Pause/Resume, Stop, Sample now, Save now, Continue (+N steps); progress
with step, images/s and ETA; the device. It owns the training process and survives its crash
(showing the error and the tail of stderr, and offering to continue from the last checkpoint).
Every control says at once what it did ("pausing…", "sample requested") and the engine's event
replaces that with what happened ("paused at step N", "saved step N")."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPlainTextEdit, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout)

from app.engine_client import TrainJob
from app.qt_util import human_duration
from engine.core.config import ConfigError, RunConfig
from engine.core.families import FAMILIES, family_spec
from engine.core.logkeys import short
from engine.runs.rundir import new_run_dir


class TrainingPanel(QGroupBox):
    run_started = Signal(str)     # run directory
    run_ended = Signal(str, str)  # state, message
    checkpoint_saved = Signal(str)

    def __init__(self, runs_root: Path, config_provider: Callable[[], RunConfig | None], parent=None):
        super().__init__("Training", parent)
        self.runs_root = Path(runs_root)
        self.config_provider = config_provider
        self.job = TrainJob(self)
        self.job.event.connect(self._on_event)
        self.job.ended.connect(self._on_ended)
        self.state = "idle"
        self.run_dir: Path | None = None
        self.last_event: dict = {}
        self.headline: tuple[str, ...] = ()   # the losses shown beside the step (the family's headline)
        self._driven: Path | None = None       # the run this panel started or resumed

        self.start_btn = QPushButton("▶ Start")
        self.pause_btn = QPushButton("Pause")
        self.stop_btn = QPushButton("■ Stop")
        self.sample_btn = QPushButton("Sample now")
        self.save_btn = QPushButton("Save now")
        self.start_btn.setToolTip("Start training the configured model in a background engine process")
        self.sample_btn.setToolTip("Write a sample grid from the current (EMA) weights")
        self.save_btn.setToolTip("Write a checkpoint now")
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.stats = QLabel("–")
        self.stats.setObjectName("train_stats")
        self.device = QLabel("device: –")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color:#c0392b")
        self.stderr = QPlainTextEdit()
        self.stderr.setReadOnly(True)
        self.stderr.setMaximumHeight(110)
        self.ack = QLabel("")                  # what the last control did, until the engine answers
        self.ack.setObjectName("train_ack")
        self.continue_btn = QPushButton("Continue")
        self.continue_btn.setToolTip("Resume this run from its last checkpoint (for more steps if set beside)")
        self.more_steps = QSpinBox(minimum=0, maximum=10_000_000, singleStep=500, value=0)
        self.more_steps.setPrefix("+")
        self.more_steps.setSuffix(" steps")
        self.more_steps.setSpecialValueText("to its planned end")
        self.more_steps.setToolTip("Continue for this many steps more than the run had planned (0: to its planned end)")
        self.nproc = QSpinBox(minimum=1, maximum=64, value=1)
        self.nproc.setPrefix("processes: ")
        self.nproc.setToolTip("Data-parallel training under torchrun: one process per GPU, or CPU processes "
                              "sharing the cores. The batch size stays the global batch (it must divide evenly); "
                              "a checkpoint resumes on any number of processes.")
        # ask(title, text, choices) -> the chosen text or None; tests replace it
        self.ask: Callable[[str, str, list[str]], str | None] = self._ask_dialog
        for w in (self.error, self.stderr):
            w.hide()

        buttons = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn, self.sample_btn, self.save_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        more = QHBoxLayout()   # a second row: the panel fits beside the Data and Model panels at 1024 px
        more.addWidget(self.nproc)
        more.addWidget(self.continue_btn)
        more.addWidget(self.more_steps)
        more.addStretch(1)
        info = QHBoxLayout()
        info.addWidget(self.stats, 1)
        info.addWidget(self.ack)
        info.addWidget(self.device)
        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addLayout(more)
        lay.addWidget(self.progress)
        lay.addLayout(info)
        lay.addWidget(self.error)
        lay.addWidget(self.stderr)

        self.start_btn.clicked.connect(self.start)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.stop_btn.clicked.connect(self.stop)
        self.sample_btn.clicked.connect(self.sample_now)
        self.save_btn.clicked.connect(self.save_now)
        self.continue_btn.clicked.connect(lambda: self.continue_run(self.more_steps.value()))
        self._sync_buttons()

    # ---- actions ------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a new run with the panels' settings; on a stopped or interrupted run, ask first
        whether to continue it instead."""
        if self.job.is_running():
            return False
        if self.can_continue() and self.state in ("stopped", "interrupted"):
            choice = self.ask("Start", f"The run {self.run_dir.name} {self.state} at step {self.progress.value()}. "
                                       f"Continue it from its last checkpoint, or start a new run with the current "
                                       f"settings?", ["Continue", "New run", "Cancel"])
            if choice == "Continue":
                return self.continue_run(self.more_steps.value())
            if choice != "New run":
                return False
        cfg = self.config_provider()
        if cfg is None:
            return False
        self.set_family(cfg.model.family)
        self._begin(new_run_dir(self.runs_root, cfg.name))
        self.job.start_run(cfg, self.run_dir, nproc=self.nproc.value())
        self.progress.setRange(0, cfg.training.steps)
        return True

    def set_family(self, name: str) -> None:
        """Show this family's headline losses (from the registry) beside the step."""
        self.headline = family_spec(name).headline if name in FAMILIES else ()

    def can_continue(self) -> bool:
        """A run is at hand and not live here (it continues from its last checkpoint, or from
        step 0 if it never wrote one)."""
        return (self.run_dir is not None and not self.job.is_running()
                and self.state not in ("idle", "starting", "running", "paused")
                and (self.run_dir / "config.toml").exists())

    def planned_steps(self) -> int:
        """The run's planned total (its status, else its config)."""
        try:
            st = json.loads((self.run_dir / "status.json").read_text())
            if st.get("total_steps"):
                return int(st["total_steps"])
        except (OSError, ValueError):
            pass
        try:
            return RunConfig.load(self.run_dir / "config.toml", stored=True).training.steps
        except (ConfigError, OSError):
            return 0

    def continue_run(self, more_steps: int = 0) -> bool:
        """Resume the run from its last checkpoint: to its planned end, or `more_steps` beyond it."""
        if not self.can_continue():
            return False
        total = self.planned_steps()
        if not more_steps and self.state == "finished":
            self.ack.setText("finished: set +N steps to continue it longer")
            return False
        try:
            self.set_family(RunConfig.load(self.run_dir / "config.toml", stored=True).model.family)
        except (ConfigError, OSError):
            self.headline = ()
        self._begin(self.run_dir)
        steps = total + more_steps if more_steps and total else None
        self.job.start_run(None, self.run_dir, resume=True, steps=steps, nproc=self.nproc.value())
        self.ack.setText(f"continuing to step {steps}" if steps else "continuing")
        return True

    def resume(self) -> None:
        self.continue_run(0)

    def drives(self, run_dir) -> bool:
        """Whether this panel started (or resumed) the run in run_dir in this session."""
        return self._driven is not None and run_dir is not None and Path(run_dir) == self._driven

    def _begin(self, run_dir: Path) -> None:
        self.run_dir = self._driven = Path(run_dir)
        self.state = "starting"
        for w in (self.error, self.stderr):
            w.hide()
        self.progress.setFormat("starting the engine…")
        self.stats.setText("–")
        self._sync_buttons()
        self.run_started.emit(str(self.run_dir))

    def toggle_pause(self) -> None:
        pausing = self.state != "paused"
        self.job.command("pause" if pausing else "resume")
        self.ack.setText("pausing…" if pausing else "resuming…")
        self.pause_btn.setEnabled(False)   # until the engine confirms (its status event)

    def sample_now(self) -> None:
        self.job.command("sample-now")
        self.ack.setText("sample requested")

    def save_now(self) -> None:
        self.job.command("save-now")
        self.ack.setText("saving a checkpoint…")

    def stop(self) -> None:
        self.job.stop()
        self.ack.setText("stopping…")
        self.progress.setFormat("stopping (saving a checkpoint)…")
        for b in (self.stop_btn, self.pause_btn, self.sample_btn, self.save_btn):
            b.setEnabled(False)

    def keep_in_background(self) -> int:
        """The window is closing while this run trains: stop it (a checkpoint is written), then
        continue it in an engine process of its own that outlives the window. Returns its pid, 0
        if it could not be handed over (the run is then stopped, with its checkpoint)."""
        if not self.job.is_running() or self.run_dir is None:
            return 0
        self.job.send("stop")
        if not self.job.proc.waitForFinished(30000):
            self.job.kill(wait_ms=3000)
            return 0
        from app.engine_client import TrainJob
        return TrainJob.resume_detached(self.run_dir)

    def _ask_dialog(self, title: str, text: str, choices: list[str]) -> str | None:
        box = QMessageBox(QMessageBox.Question, title, text, parent=self)
        buttons = {box.addButton(c, QMessageBox.RejectRole if c == "Cancel" else QMessageBox.AcceptRole): c
                   for c in choices}
        box.exec()
        return buttons.get(box.clickedButton())

    def shutdown(self) -> None:
        """Called when the window closes: stop cleanly, wait briefly, then kill."""
        if self.job.is_running():
            self.job.send("stop")
            if not self.job.proc.waitForFinished(10000):
                self.job.kill(wait_ms=3000)

    # ---- engine events ------------------------------------------------------------------------
    def _on_event(self, ev: dict) -> None:
        kind = ev.get("event")
        self.last_event = ev
        if kind == "phase":   # what the engine is doing now: never a silent wait
            if self.state == "starting":
                self.progress.setFormat(f"{ev['what']}…")
            self.ack.setText(f"{ev['what']}…")
        elif kind == "info" and ev.get("message") and (self.error.isHidden() or self.error.text().startswith("ℹ")):
            self.error.setStyleSheet("color:#555")
            self.error.setText(f"ℹ {ev['message']}")
            self.error.show()
        elif kind == "started":
            world = int(ev.get("world_size") or 1)
            if world > 1:   # one device per rank, in rank order
                devices = ev.get("devices") or [ev["device"]]
                shown = ", ".join(devices[:4]) + (f", … ({len(devices)} in all)" if len(devices) > 4 else "")
                self.device.setText(f"{world} processes: {shown} · {ev['precision']}")
                self.device.setToolTip("\n".join(f"rank {r}: {d}" for r, d in enumerate(devices)))
            else:
                self.device.setText(f"device: {ev['device']} · {ev['precision']}")
            self.progress.setRange(0, int(ev["total_steps"]))
            self.progress.setValue(int(ev["step"]))
        elif kind == "status":
            if ev["state"] in ("stopped", "finished", "failed"):
                return  # final only when the process has exited (_on_ended): Start stays off until then
            was = self.state
            self.state = ev["state"]
            if self.state == "paused":
                self.progress.setFormat("paused at step %v / %m")
                self.ack.setText(f"paused at step {ev.get('step', self.progress.value())}")
            elif self.state == "running":
                self.progress.setFormat("step %v / %m")
                if was == "paused":
                    self.ack.setText("resumed")
            self._sync_buttons()
        elif kind == "metrics":
            self.progress.setMaximum(int(ev["total_steps"]))
            self.progress.setValue(int(ev["step"]))
            keys = self.headline or tuple(k for k in ev if k.startswith("loss/"))
            losses = " · ".join(f"loss {short(k)} {ev[k]:.4f}" for k in keys if k in ev)
            self.stats.setText(f"{losses} · {ev['img_per_s']:.0f} img/s · "
                               f"ETA {human_duration(ev.get('eta_s'))}")
        elif kind == "checkpoint":
            self.ack.setText(f"saved step {ev['step']} ({Path(ev['path']).name})")
            self.checkpoint_saved.emit(ev["path"])
        elif kind == "sample":
            self.ack.setText(f"sample grid at step {ev['step']}")
        elif kind == "warning":
            self.error.setStyleSheet("color:#b26b00")
            self.error.setText(f"⚠ {ev['message']}")
            self.error.show()
        elif kind == "error":
            self._show_error(ev["message"], "")

    def _on_ended(self, code: int, crashed: bool, tail: str) -> None:
        st = {}
        if self.run_dir is not None and (self.run_dir / "status.json").exists():
            try:
                st = json.loads((self.run_dir / "status.json").read_text())
            except (OSError, ValueError):
                st = {}
        if code == 0 and not crashed and st.get("state") in ("finished", "stopped"):
            self.state = st["state"]
            self.progress.setValue(int(st.get("step", self.progress.value())))   # the real last step
            self.progress.setFormat(f"{self.state} at step %v / %m")
            self.stats.setText(self.stats.text().split(" · ETA")[0])            # no ETA once it ended
            self.ack.setText(f"{self.state} at step {st.get('step', '?')}")
            self.run_ended.emit(self.state, st.get("message", ""))
        else:
            self.state = "failed"
            msg = st.get("message") if st.get("state") == "failed" else ""
            if not msg:
                msg = (f"The engine process {'crashed' if crashed else f'exited with code {code}'} "
                       f"at step {st.get('step', self.progress.value())}.")
            self._show_error(msg, tail)
            self.run_ended.emit("failed", msg)
        self._sync_buttons()

    def _show_error(self, message: str, tail: str) -> None:
        self.error.setStyleSheet("color:#c0392b")
        self.error.setText(f"✖ {message}")
        self.error.show()
        if tail.strip():
            self.stderr.setPlainText(tail)
            self.stderr.show()
        self.progress.setFormat("failed at step %v / %m")

    def show_status(self, st: dict, run_dir: str | Path | None = None) -> None:
        """The state of a run this panel does not drive (read from its status.json): progress and
        state; an interrupted run (its process is gone) can be continued from here."""
        total, step = int(st.get("total_steps") or 0), int(st.get("step") or 0)
        if total:
            self.progress.setRange(0, total)
        self.progress.setValue(step)
        state = st.get("state", "?")
        self.progress.setFormat(f"{state} (opened run) at step %v / %m")
        if st.get("device"):
            self.device.setText(f"device: {st['device']}" + (f" · {st['precision']}" if st.get("precision") else ""))
        if state in ("running", "paused") and st.get("img_per_s"):
            self.stats.setText(f"{st['img_per_s']:.0f} img/s · ETA {human_duration(st.get('eta_s'))}")
        elif state == "failed" and st.get("message"):
            self.stats.setText(f"failed: {st['message']}")
        if state in ("interrupted", "stopped", "finished", "failed") and run_dir is not None \
                and not self.job.is_running():
            self.run_dir = Path(run_dir)   # Continue resumes it from its last checkpoint
            self.state = state
            if state == "interrupted":
                self.stats.setText(f"interrupted at step {step}: its engine process is gone — Continue?")
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        live = self.state in ("starting", "running", "paused")
        self.start_btn.setEnabled(not live)
        self.nproc.setEnabled(not live)
        self.pause_btn.setEnabled(self.state in ("running", "paused"))
        self.pause_btn.setText("Resume" if self.state == "paused" else "Pause")
        for b in (self.stop_btn, self.sample_btn, self.save_btn):
            b.setEnabled(self.state in ("running", "paused"))
        can = self.can_continue()
        self.continue_btn.setEnabled(can)
        self.more_steps.setEnabled(can)
