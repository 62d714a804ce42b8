"""The runner of a training queue (`genlab-engine queue run`): trains the queued entries of a runs
folder one after another, each in a `genlab-engine train` process of its own, and compares a
group's runs once the last of them has ended.

It imports no torch: the training and the comparison happen in the child processes, and what they
did is read back from the run folder (status.json, checkpoints/) and the compare command's result
line. It re-reads the queue before each entry, so a reorder, a removal or a pause made meanwhile
(by the GUI or another shell) takes effect. Its own output is JSON lines (engine/core/protocol):

  runner  state (started/stopped), message
  queue   entry, state, run_dir, message          at each entry's start and end
  group   group, state, result, message           when a comparison starts and ends

A child's own events are not passed on: the GUI watches its run folder like any run's. SIGTERM or
SIGINT asks the running child to stop (it writes its final checkpoint, as Stop does) and marks its
entry "interrupted"; on Linux a child whose runner dies without a word gets SIGINT from the kernel
and does the same.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from engine.core import protocol
from engine.core.util import atomic_write_json
from engine.runs.queue import PENDING_STATES, CompareGroup, QueueEntry, QueueError, TrainingQueue, comparison_path
from engine.runs.rundir import RunDir, effective_status, new_run_dir, send_control

WORK_DIR = ".queue"          # <runs_root>/.queue: each entry's config file and each child's stderr
POLL_S = 0.2                 # how often a child is looked at
STOP_GRACE_S = 600.0         # after a stop request, how long a child may take to save before SIGINT
RUN_STATES = {"finished": "done", "stopped": "stopped", "failed": "failed"}   # status.json -> entry


def print_event(ev: dict) -> None:
    sys.stdout.write(protocol.encode(ev) + "\n")
    sys.stdout.flush()


class QueueRunner:
    def __init__(self, runs_root: str | Path, emit: Callable[[dict], None] = print_event,
                 python: str = sys.executable):
        self.queue = TrainingQueue(runs_root)
        self.root = self.queue.root
        self.work = self.root / WORK_DIR
        self.emit, self.python = emit, python
        self._terminating = False
        self._child: subprocess.Popen | None = None
        self._child_run: Path | None = None

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        """Train until nothing is queued, the queue is paused or a signal comes; how many entries
        were started. QueueError when another runner holds this folder."""
        self.queue.acquire_runner()
        restore = self._install_signals()
        try:
            for e in self.queue.settle_orphans():   # their runner died: no process is behind them
                self._say_entry(e)
            self.emit(protocol.event("runner", state="started", pid=os.getpid(), runs_root=str(self.root)))
            started = 0
            why = "nothing is queued"
            while True:
                self._compare_ready_groups()
                if self._terminating:
                    why = "stopped by a signal"
                    break
                entry = self.queue.start_next()
                if entry is None:
                    why = "the queue is paused" if self.queue.paused else "nothing is queued"
                    break
                started += 1
                self._run_entry(entry)
            self.emit(protocol.event("runner", state="stopped", message=why, entries=started))
            return started
        finally:
            restore()
            self.queue.release_runner()

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in old:
            signal.signal(s, self._on_signal)

        def restore():
            for s, h in old.items():
                signal.signal(s, h)
        return restore

    def _on_signal(self, signum, frame) -> None:
        self._terminating = True   # the wait loop asks the child to stop, and the runner ends after it

    # ---- one entry ---------------------------------------------------------------------------
    def _run_entry(self, entry: QueueEntry) -> None:
        try:
            spent = self._budget_spent(entry)
            if spent:
                self._end(entry, "stopped", spent)
                return
            command, run_dir = self._command(entry)
        except (QueueError, ValueError, OSError) as e:
            self._end(entry, "failed", str(e) if not isinstance(e, OSError) else f"{e.filename}: {e.strerror}")
            return
        entry = self.queue.update_entry(entry.id, run_dir=str(run_dir))
        self._say_entry(entry)
        self.work.mkdir(parents=True, exist_ok=True)
        log_path = self.work / f"{entry.id}.log"
        with open(log_path, "w", encoding="utf-8") as log:
            rc = self._wait(self._start_child(command, log), run_dir)
        state, message = self._outcome(run_dir, rc, log_path)
        self._end(entry, state, message)

    def _resumable(self, entry: QueueEntry) -> RunDir | None:
        """The run an interrupted entry left with a checkpoint (None: it starts afresh)."""
        rd = RunDir(entry.run_dir) if entry.run_dir else None
        return rd if rd is not None and rd.config_path.is_file() and rd.checkpoints() else None

    def _budget_spent(self, entry: QueueEntry) -> str:
        """Resuming an interrupted run with a time budget: what is left of it is written into
        its config.toml (the run's record of what it trains for); '' to go on, else why it ends
        here (its budget was spent before the interruption)."""
        rd = self._resumable(entry)
        if rd is None or entry.continue_run or not entry.time_budget_s:
            return ""
        left = entry.time_budget_s - _trained_s(rd)
        if left < 1.0:
            return f"its time budget of {entry.time_budget_s:g} s was spent before the queue runner was stopped"
        from engine.core.config import RunConfig
        cfg = RunConfig.load(rd.config_path, stored=True)
        cfg.replace(training={"time_budget_s": round(left, 1)}).save(rd.config_path)
        return ""

    def _command(self, entry: QueueEntry) -> tuple[list[str], Path]:
        train = [self.python, "-m", "engine", "train", "--no-stdin"]
        rd = self._resumable(entry)
        if rd is not None:   # interrupted: its config.toml already holds the steps (and the budget left)
            owner = rd.live_owner()
            if owner is not None:
                raise QueueError(f"{rd.path}: the run is being trained by process {owner}")
            return train + ["--resume", "--run-dir", str(rd.path)], rd.path
        if entry.continue_run:
            rd = RunDir(entry.continue_run)
            if not rd.config_path.is_file():
                raise QueueError(f"{rd.path}: not a run directory (no config.toml)")
            owner = rd.live_owner()
            if owner is not None:
                raise QueueError(f"{rd.path}: the run is being trained by process {owner}")
            steps = []
            if entry.more_steps:
                cks = rd.checkpoints()
                steps = ["--steps", str((cks[-1][0] if cks else 0) + entry.more_steps)]
            return train + ["--resume", "--run-dir", str(rd.path), *steps], rd.path
        from engine.core.config import ConfigError, RunConfig
        config = json.loads(json.dumps(entry.config))   # a copy
        config.setdefault("training", {})["time_budget_s"] = float(entry.time_budget_s)
        try:
            cfg = RunConfig.from_dict(config)
        except ConfigError as e:
            raise QueueError(f"{entry.name}: {e}") from None
        path = self.work / f"{entry.id}.toml"
        cfg.save(path)
        run_dir = new_run_dir(self.root, cfg.name)
        return train + ["--config", str(path), "--run-dir", str(run_dir), "--runs-root", str(self.root)], run_dir

    def _start_child(self, command: list[str], log) -> subprocess.Popen:
        self._child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                       preexec_fn=_interrupt_when_parent_dies if sys.platform == "linux" else None)
        return self._child

    def _wait(self, child: subprocess.Popen, run_dir: Path) -> int:
        """Wait for the child; on a signal, ask it to stop (through its control file, like Stop)
        and give it time to save."""
        asked_at = None
        try:
            while child.poll() is None:
                if self._terminating and asked_at is None:
                    asked_at = time.monotonic()
                    if (run_dir / "config.toml").exists():
                        send_control(run_dir, "stop")
                    else:   # still setting up: nothing trained yet, nothing to save
                        child.send_signal(signal.SIGINT)
                elif asked_at is not None and time.monotonic() - asked_at > STOP_GRACE_S:
                    child.send_signal(signal.SIGINT)
                    asked_at = float("inf")
                time.sleep(POLL_S)
            return child.returncode
        finally:
            if child.poll() is None:   # the runner itself is being torn down
                child.kill()
                child.wait()
            self._child = None

    def _outcome(self, run_dir: Path, rc: int, log_path: Path) -> tuple[str, str]:
        st = effective_status(run_dir) if run_dir.is_dir() else {}
        state, message, step = st.get("state"), st.get("message") or "", st.get("step", 0)
        if self._terminating and state not in ("finished", "failed"):   # it ended because the runner asked
            return "interrupted", (f"the queue runner was stopped; the run {state or 'ended'} at step {step}"
                                   + " (the next queue run resumes it)")
        if state in RUN_STATES and not (rc and state != "failed"):
            return RUN_STATES[state], message
        return "failed", message if state == "failed" and message else _last_error(log_path, rc)

    def _end(self, entry: QueueEntry, state: str, message: str) -> None:
        entry = self.queue.update_entry(entry.id, state=state, message=message, ended=time.time())
        self._say_entry(entry)

    def _say_entry(self, e: QueueEntry) -> None:
        self.emit(protocol.event("queue", entry=e.id, name=e.name, state=e.state, run_dir=e.run_dir,
                                 message=e.message))

    # ---- comparisons -------------------------------------------------------------------------
    def _compare_ready_groups(self) -> None:
        """Compare every group whose entries have all ended (a comparison a killed runner left
        half done is made again)."""
        for g in self.queue.groups():
            if self._terminating:
                return
            if g.state not in ("waiting", "comparing"):
                continue
            members = [e for e in self.queue.entries() if e.id in g.entries]
            if any(e.state in (*PENDING_STATES, "running") for e in members):
                continue
            self._compare(g, members)

    def _compare(self, g: CompareGroup, members: list[QueueEntry]) -> None:
        usable, notes = [], []
        for e in members:
            ck = RunDir(e.run_dir).latest_checkpoint() if e.run_dir else None
            if e.state in ("done", "stopped") and ck is not None:
                usable.append((e, ck))
            else:
                why = e.message or ("no checkpoint" if e.state in ("done", "stopped") else e.state)
                notes.append(f"{e.name} left out ({e.state}: {why})")
        if len(usable) < 2:
            self._end_group(g, "failed", None, "; ".join([f"fewer than 2 runs ended with a checkpoint "
                                                          f"({len(usable)})", *notes]))
            return
        self._end_group(g, "comparing", None, "")
        self.work.mkdir(parents=True, exist_ok=True)
        log_path = self.work / f"{g.id}.log"
        command = [self.python, "-m", "engine", "compare", "--checkpoints", *(str(ck) for _, ck in usable),
                   "--n", str(g.n)]
        result = None
        with open(log_path, "w", encoding="utf-8") as log:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                                     preexec_fn=_interrupt_when_parent_dies if sys.platform == "linux" else None)
            self._child = child
            try:
                for line in child.stdout:
                    ev = protocol.parse_line(line)
                    if ev and ev.get("event") == "result":
                        result = ev
                    if self._terminating:
                        break
            finally:
                if self._terminating and child.poll() is None:
                    child.terminate()
                child.wait()
                child.stdout.close()
                self._child = None
        if self._terminating:   # left for the next runner to make again
            self._end_group(g, "waiting", None, "the queue runner was stopped before the comparison ended")
            return
        if child.returncode or result is None:
            self._end_group(g, "failed", None, _last_error(log_path, child.returncode))
            return
        out = {k: v for k, v in result.items() if k != "event"}
        out.update(group=g.id, runs=[e.run_dir for e, _ in usable], names=[e.name for e, _ in usable],
                   left_out=notes)
        path = comparison_path(self.root, g.id)
        atomic_write_json(path, out)
        self._end_group(g, "done", str(path), "; ".join(notes))

    def _end_group(self, g: CompareGroup, state: str, result: str | None, message: str) -> None:
        self.queue.update_group(g.id, state=state, result=result, message=message)
        self.emit(protocol.event("group", group=g.id, state=state, result=result, message=message))


def _trained_s(rd: RunDir) -> float:
    """Seconds the run has trained: the time of its last metrics line, continued across resumes
    (pauses and grids included, so a resumed budget errs short rather than long)."""
    from engine.runs.index import read_curves
    times = read_curves(rd.path, keys=("lr",)).get("lr", ((), (), ()))[1]
    return float(times[-1]) if len(times) and times[-1] == times[-1] else 0.0


def _last_error(log_path: Path, rc: int) -> str:
    """The child's one-line error (genlab-engine: error: ...), else its last line of stderr."""
    try:
        lines = [l.strip() for l in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    except OSError:
        lines = []
    errors = [l for l in lines if l.startswith("genlab-engine: error:")]
    if errors:
        return errors[-1][len("genlab-engine: error:"):].strip()
    return (lines[-1] if lines else f"the process ended with exit code {rc}") + f" (see {log_path})"


def _interrupt_when_parent_dies() -> None:
    """In the child, before exec (Linux): SIGINT when the runner dies, so a child whose runner was
    killed stops and saves (KeyboardInterrupt) instead of training on unwatched."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
