"""Training panel: Start, Add to queue (with a time budget), Pause/Resume, Stop, Sample now, Save now,
Continue (+N steps); progress
with step, images/s and ETA; the device. It owns the training process and survives its crash
(showing the error and the tail of stderr, and offering to continue from the last checkpoint).
Every control says at once what it did ("pausing…", "sample requested") and the engine's event
replaces that with what happened ("paused at step N", "saved step N").

Everything it shows belongs to the run the Train tab shows (show_run): the live run it drives, from
the engine's events, or a run opened from disk, from its status.json and metrics rows. Opening
another run while one trains here shows that run; opening the training one again shows it live."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPlainTextEdit, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout)

from app.config_diff import describe_differences
from app.engine_client import TrainJob
from app.panels.train_readout import device_line, stats_line
from app.widgets.elided_label import ElidedLabel
from engine.core.config import ConfigError, RunConfig
from engine.core.families import FAMILIES, family_spec
from engine.runs.rundir import new_run_dir

LIVE = ("starting", "running", "paused")             # a run this panel drives, with its process
ENDED = ("interrupted", "stopped", "finished", "failed")


def config_family(run_dir: Path) -> str | None:
    """The family in a run's config.toml (None: none readable yet, or a config from elsewhere)."""
    try:
        return RunConfig.load(Path(run_dir) / "config.toml", stored=True).model.family
    except (ConfigError, OSError):
        return None


class TrainingPanel(QGroupBox):
    run_started = Signal(str)     # run directory
    run_ended = Signal(str, str)  # state, message
    checkpoint_saved = Signal(str)
    queued = Signal(str)          # the id of an entry Add to queue put in the runs folder's training queue

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
        self._driven_family = ""
        self.shown: Path | None = None         # the run the Train tab shows
        self._live: dict[str, dict] = {}      # the driven run's last "started" and "metrics" events
        self._opened: dict[str, dict] = {}    # a shown run not live here: its "status" and last training "row"
        self._ack_is_phase = False             # the ack line says what the engine is doing (cleared by a step)
        self._ended_shown = False              # the driven run's process ended while it was shown

        self.start_btn = QPushButton("▶ Start")
        self.pause_btn = QPushButton("Pause")
        self.stop_btn = QPushButton("■ Stop")
        self.queue_btn = QPushButton("Add to queue")
        self.queue_btn.setToolTip("Queue a run of the current settings: Runs ▸ Queue trains the queued runs one "
                                  "after another")
        self.budget = QSpinBox(minimum=0, maximum=7 * 24 * 60, singleStep=5, value=0)
        self.budget.setSuffix(" min")
        self.budget.setSpecialValueText("no time limit")
        self.budget.setToolTip("A queued run stops after this many minutes of training (with its checkpoint); "
                               "0: it trains its steps")
        self.sample_btn = QPushButton("Sample now")
        self.save_btn = QPushButton("Save now")
        self.start_btn.setToolTip("Start training the configured model in a background engine process")
        self.sample_btn.setToolTip("Write a sample grid from the current (EMA) weights")
        self.save_btn.setToolTip("Write a checkpoint now")
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.stats = ElidedLabel("–", fill=True)
        self.stats.setObjectName("train_stats")
        self.device = QLabel("device: –")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color:#c0392b")
        self.stderr = QPlainTextEdit()
        self.stderr.setReadOnly(True)
        self.stderr.setMaximumHeight(110)
        self.ack = ElidedLabel("", elide=Qt.ElideMiddle, fill=True)   # what the last control did, until the engine answers; what the engine does
        self.ack.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
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
        for b in (self.start_btn, self.queue_btn, self.budget, self.pause_btn, self.stop_btn, self.sample_btn,
                  self.save_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        more = QHBoxLayout()   # a second row: the panel fits beside the Data and Model panels at 1024 px
        more.addWidget(self.nproc)
        more.addWidget(self.continue_btn)
        more.addWidget(self.more_steps)
        more.addStretch(1)
        info = QHBoxLayout()
        info.addWidget(self.stats, 3)   # both elide to their share: a long message never widens the tab
        info.addWidget(self.ack, 2)
        info.addSpacing(12)
        info.addWidget(self.device)
        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addLayout(more)
        lay.addWidget(self.progress)
        lay.addLayout(info)
        lay.addWidget(self.error)
        lay.addWidget(self.stderr)

        self.start_btn.clicked.connect(self.start)
        self.queue_btn.clicked.connect(self.add_to_queue)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.stop_btn.clicked.connect(self.stop)
        self.sample_btn.clicked.connect(self.sample_now)
        self.save_btn.clicked.connect(self.save_now)
        self.continue_btn.clicked.connect(lambda: self.continue_run(self.more_steps.value()))
        self._sync_buttons()

    # ---- actions ------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a new run with the panels' settings; on a stopped or interrupted run, ask first
        whether to continue it instead (a new run first, saying what differs, when the panels hold
        other settings than the run's)."""
        if self.job.is_running():
            return False
        cfg = self.config_provider()
        if self.can_continue() and self.state in ("stopped", "interrupted"):
            where = f"The run {self.run_dir.name} {self.state} at step {self.progress.value()}"
            differ = self.settings_differ(cfg)
            if differ:   # the panels hold another model: a new run is what Start means (the default)
                choice = self.ask("Start", f"{where}, with other settings than the panels hold ({differ}). "
                                           f"Start a new run with the current settings, or continue that run "
                                           f"with its own settings?", ["New run", "Continue", "Cancel"])
            else:
                choice = self.ask("Start", f"{where}. Continue it from its last checkpoint, or start a new run "
                                           f"with the current settings?", ["Continue", "New run", "Cancel"])
            if choice == "Continue":
                return self.continue_run(self.more_steps.value())
            if choice != "New run":
                return False
        if cfg is None:
            return False
        self._driven_family = cfg.model.family
        self._begin(new_run_dir(self.runs_root, cfg.name))
        self.job.start_run(cfg, self.run_dir, nproc=self.nproc.value())
        self.progress.setRange(0, cfg.training.steps)
        return True

    def add_to_queue(self) -> str | None:
        """Queue a run of the panels' current settings (with the time budget set beside); says at
        once where it went. Returns the entry's id."""
        from engine.runs.queue import QueueError, TrainingQueue
        cfg = self.config_provider()
        if cfg is None:
            return None
        queue = TrainingQueue(self.runs_root)
        try:
            e = queue.add(cfg.to_dict(), time_budget_s=60.0 * self.budget.value())
            place = [x.id for x in queue.entries()].index(e.id) + 1
        except (QueueError, ValueError) as err:
            self._say(f"not queued: {err}")
            return None
        self._say(f"queued as #{place} — see Runs ▸ Queue")
        self.queued.emit(e.id)
        return e.id

    def settings_differ(self, cfg: RunConfig | None) -> str:
        """How the panels' config differs from the run at hand's ("family stylegan vs ddpm",
        "2 settings differ: …"); "" when it is the same (or either cannot be read)."""
        if cfg is None or self.run_dir is None:
            return ""
        try:
            run = RunConfig.load(self.run_dir / "config.toml", stored=True)
        except (ConfigError, OSError):
            return ""
        return describe_differences(cfg, run)

    def set_family(self, name: str | None) -> None:
        """Show this family's headline losses (from the registry) beside the step."""
        self.headline = family_spec(name).headline if name in FAMILIES else ()

    def family_of(self, run_dir: Path) -> str | None:
        """The family of a run: the one this panel starts, else its config's (None: unreadable)."""
        if run_dir == self._driven and self._driven_family:
            return self._driven_family
        return config_family(run_dir)

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
            self._say("finished: set +N steps to continue it longer")
            return False
        self._driven_family = config_family(self.run_dir) or ""
        self._begin(self.run_dir)
        steps = total + more_steps if more_steps and total else None
        self.job.start_run(None, self.run_dir, resume=True, steps=steps, nproc=self.nproc.value())
        self._say(f"continuing to step {steps}" if steps else "continuing")
        return True

    def resume(self) -> None:
        self.continue_run(0)

    def drives(self, run_dir) -> bool:
        """Whether this panel started (or resumed) the run in run_dir in this session."""
        return self._driven is not None and run_dir is not None and Path(run_dir) == self._driven

    def is_live(self, run_dir) -> bool:
        """Whether run_dir is the run this panel drives and its process starts, runs or is paused."""
        return self.drives(run_dir) and self.state in LIVE

    def speaks_for(self, run_dir) -> bool:
        """Whether the engine's events speak for run_dir, not its status.json: it trains here, or
        its process ended while it was shown (a killed process's status reads "interrupted"; the
        panel knows it crashed). Opened again, its files speak."""
        return self.is_live(run_dir) or (self.drives(run_dir) and self._ended_shown)

    def showing_live(self) -> bool:
        return self.is_live(self.shown)

    def _begin(self, run_dir: Path) -> None:
        self.run_dir = self._driven = Path(run_dir)
        self.state = "starting"
        self._live = {}
        self.show_run(self._driven)
        self.run_started.emit(str(self.run_dir))   # the window watches it (and shows it again)

    def toggle_pause(self) -> None:
        pausing = self.state != "paused"
        self.job.command("pause" if pausing else "resume")
        self._say("pausing…" if pausing else "resuming…")
        self.pause_btn.setEnabled(False)   # until the engine confirms (its status event)

    def sample_now(self) -> None:
        self.job.command("sample-now")
        self._say("sample requested")

    def save_now(self) -> None:
        self.job.command("save-now")
        self._say("saving a checkpoint…")

    def stop(self) -> None:
        self.job.stop()
        self._say("stopping…")
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
        box.setDefaultButton(next(iter(buttons)))   # the first choice is what Return picks
        box.exec()
        return buttons.get(box.clickedButton())

    def shutdown(self) -> None:
        """Called when the window closes: stop cleanly, wait briefly, then kill."""
        if self.job.is_running():
            self.job.send("stop")
            if not self.job.proc.waitForFinished(10000):
                self.job.kill(wait_ms=3000)

    # ---- the run shown ------------------------------------------------------------------------
    def show_run(self, run_dir: str | Path) -> None:
        """The Train tab now shows this run: nothing of the run shown before stays (its losses,
        speed, state, device, messages). The live run this panel drives shows its own values
        again; any other run's come from its files (show_status, show_rows)."""
        self.shown = Path(run_dir)
        self.set_family(self.family_of(self.shown))
        self._opened, self._ended_shown = {}, False
        if self.state not in LIVE:   # Continue acts on the run shown, once its status says it can
            self.run_dir, self.state = None, "idle"
        self.stats.setText("–")
        self._say("")
        self.device.setText("device: –")
        self.device.setToolTip("")
        for w in (self.error, self.stderr):
            w.clear()
            w.hide()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("–")
        if self.showing_live():
            self._render_live()
        elif self.state in LIVE:   # the Train tab shows another run while this one trains
            self._say(f"{self._driven.name} trains meanwhile: open it to follow it, pause or stop it")
        self._sync_buttons()

    def _render_live(self) -> None:
        """The driven run's values, from its last events."""
        started, metrics = self._live.get("started"), self._live.get("metrics")
        if started:
            text, tip = device_line(started)
            self.device.setText(text)
            self.device.setToolTip(tip)
            self.progress.setRange(0, int(started["total_steps"]))
        if metrics:
            self.progress.setMaximum(int(metrics["total_steps"]))
        if "step" in self._live:   # the newest step any event named (a pause comes between logged steps)
            self.progress.setValue(int(self._live["step"]))
        phase = self._live.get("phase")
        if self.state == "starting":
            self._progress_text(f"{phase}…" if phase else "starting the engine…")
        else:
            self.progress.setFormat("step %v / %m" if self.state == "running" else "paused at step %v / %m")
        if metrics:
            self.stats.setText(stats_line(metrics, self.headline, eta=self.state == "running",
                                          paused=self.state == "paused"))

    def _progress_text(self, text: str) -> None:
        """A message in the progress bar, elided to one line of it (a path in "restoring …")."""
        fitted = self.progress.fontMetrics().elidedText(text, Qt.ElideMiddle, max(80, self.progress.width() - 16))
        self.progress.setFormat(fitted.replace("%", "%%"))

    def _say(self, text: str, phase: bool = False) -> None:
        self.ack.setText(text)
        self._ack_is_phase = phase

    # ---- engine events ------------------------------------------------------------------------
    def _on_event(self, ev: dict) -> None:
        kind = ev.get("event")
        self.last_event = ev
        if kind in ("started", "metrics"):
            self._live[kind] = ev
        if kind in ("started", "metrics", "status") and isinstance(ev.get("step"), int):
            self._live["step"] = ev["step"]
        elif kind == "phase" and self.state == "starting":
            self._live["phase"] = ev["what"]
        was = self.state
        if kind == "status" and ev["state"] in ("running", "paused"):
            # stopped, finished, failed: final only when the process has exited (_on_ended), so
            # Start stays off until then
            self.state = ev["state"]
            self._sync_buttons()
        if kind == "checkpoint":
            self.checkpoint_saved.emit(ev["path"])   # the window's checkpoint follows training, as ever
        if self.shown != self._driven:
            return   # the Train tab shows another run: its own files speak for it
        if kind == "phase":   # what the engine is doing now: never a silent wait
            if self.state == "starting":
                self._progress_text(f"{ev['what']}…")
            self._say(f"{ev['what']}…", phase=True)
        elif kind == "info" and ev.get("message") and (self.error.isHidden() or self.error.text().startswith("ℹ")):
            self.error.setStyleSheet("color:#555")
            self.error.setText(f"ℹ {ev['message']}")
            self.error.show()
        elif kind == "started":
            self._render_live()
        elif kind == "status" and ev["state"] in ("running", "paused"):
            self._render_live()
            if self.state == "paused":
                self._say(f"paused at step {ev['step']}")
            elif was == "paused":
                self._say("resumed")
            elif self._ack_is_phase:   # steps begin: what the engine prepared is done
                self._say("")
        elif kind == "metrics":
            self._render_live()
            if self._ack_is_phase:
                self._say("")
        elif kind == "checkpoint":
            self._say(f"saved step {ev['step']} ({Path(ev['path']).name})")
        elif kind == "sample":
            self._say(f"sample grid at step {ev['step']}")
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
        showing = self.shown == self._driven
        self._ended_shown = showing
        if code == 0 and not crashed and st.get("state") in ("finished", "stopped"):
            self.state = st["state"]
            if showing:
                self.progress.setValue(int(st.get("step", self.progress.value())))   # the real last step
                self.progress.setFormat(f"{self.state} at step %v / %m")
                metrics = self._live.get("metrics")
                self.stats.setText(stats_line(metrics, self.headline) if metrics else "–")     # no ETA once it ended
                self._say(f"{self.state} at step {st.get('step', '?')}")
            self.run_ended.emit(self.state, st.get("message", ""))
        else:
            self.state = "failed"
            msg = st.get("message") if st.get("state") == "failed" else ""
            if not msg:
                msg = (f"The engine process {'crashed' if crashed else f'exited with code {code}'} "
                       f"at step {st.get('step', self.progress.value() if showing else '?')}.")
            if showing:
                self._show_error(msg, tail)
            self.run_ended.emit("failed", msg)
        if not showing and self.shown is not None:
            # Start and Continue now act on the run shown, as they would had nothing trained meanwhile
            opened = self._opened.get("status", {}).get("state")
            self.run_dir, self.state = (self.shown, opened) if opened in ENDED else (None, "idle")
        self._sync_buttons()

    def _show_error(self, message: str, tail: str) -> None:
        self.error.setStyleSheet("color:#c0392b")
        self.error.setText(f"✖ {message}")
        self.error.show()
        if tail.strip():
            self.stderr.setPlainText(tail)
            self.stderr.show()
        self.progress.setFormat("failed at step %v / %m")

    # ---- a run not live here: from its files ------------------------------------------------------
    def show_status(self, st: dict, run_dir: str | Path | None = None) -> None:
        """The state of the shown run when this panel does not drive it live (read from its
        status.json): progress and state; an interrupted run (its process is gone) can be
        continued from here."""
        self._opened["status"] = st
        total, step = int(st.get("total_steps") or 0), int(st.get("step") or 0)
        if total:
            self.progress.setRange(0, total)
        self.progress.setValue(step)
        state = st.get("state", "?")
        opened = "" if self.drives(run_dir) else " (opened run)"   # not started from this window
        self.progress.setFormat(f"{state}{opened} at step %v / %m")
        if st.get("device"):
            self.device.setText(f"device: {st['device']}" + (f" · {st['precision']}" if st.get("precision") else ""))
        if state in ENDED and run_dir is not None and not self.job.is_running() and self.state not in LIVE:
            self.run_dir = Path(run_dir)   # Continue resumes it from its last checkpoint
            self.state = state
        self._render_opened()
        self._sync_buttons()

    def show_rows(self, rows: list[dict]) -> None:
        """New metrics rows of the shown run: the last training row gives its losses and speed
        (the live run's events give its own)."""
        if self.speaks_for(self.shown):
            return
        row = next((r for r in reversed(rows) if "img_per_s" in r), None)
        if row is not None:
            self._opened["row"] = row
            self._render_opened()

    def _render_opened(self) -> None:
        st = self._opened.get("status", {})
        state = st.get("state")
        row = self._opened.get("row") or (self._live.get("metrics") if self.drives(self.shown) else None) or {}
        if state == "failed" and st.get("message"):
            self.stats.setText(f"failed: {st['message']}")
        elif state == "interrupted":
            self.stats.setText(f"interrupted at step {st.get('step', 0)}: its engine process is gone — Continue?")
        elif state in ("running", "paused"):   # another process trains it: status.json is the freshest
            speed = {k: st[k] for k in ("img_per_s", "eta_s") if st.get(k) is not None}
            self.stats.setText(stats_line({**row, **speed}, self.headline, eta=True, paused=state == "paused"))
        else:
            self.stats.setText(stats_line(row, self.headline) if row else "–")

    def _sync_buttons(self) -> None:
        live = self.state in LIVE
        here = live and self.shown in (None, self._driven)   # its controls while the tab shows it
        self.start_btn.setEnabled(not live)
        self.nproc.setEnabled(not live)
        self.pause_btn.setEnabled(here and self.state in ("running", "paused"))
        self.pause_btn.setText("Resume" if here and self.state == "paused" else "Pause")
        for b in (self.stop_btn, self.sample_btn, self.save_btn):
            b.setEnabled(here and self.state in ("running", "paused"))
        can = self.can_continue()
        self.continue_btn.setEnabled(can)
        self.more_steps.setEnabled(can)
