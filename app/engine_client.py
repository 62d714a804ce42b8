"""QProcess wrappers around engine processes. Nothing here blocks the event loop: stdout is
buffered into whole lines and parsed as JSON events, stderr is kept as a tail for error reports."""
from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engine.core import protocol
from engine.core.config import RunConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


def engine_argv(*args: str) -> tuple[str, list[str]]:
    """The engine runs as `python -m engine ...` with this interpreter, so it works from a checkout
    and from an installed package alike."""
    if getattr(sys, "frozen", False):  # a PyInstaller build: its one executable is the engine too
        return sys.executable, ["--engine", *args]  # (packaging/frozen_main.py)
    return sys.executable, ["-u", "-m", "engine", *args]


def engine_env_vars() -> dict[str, str]:
    """What an engine process needs on top of this process's environment: unbuffered output, and
    the `engine` package on its path even when the app runs from a plain checkout."""
    return {"PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def engine_environment() -> QProcessEnvironment:
    env = QProcessEnvironment.systemEnvironment()
    for k, v in engine_env_vars().items():
        env.insert(k, v)
    return env


class EngineJob(QObject):
    """One engine process. Signals: event(dict) for each JSON line, ended(exit_code, crashed, tail)."""

    event = Signal(dict)
    ended = Signal(int, bool, str)
    output = Signal(str)  # non-JSON stdout lines (for logs)

    STDERR_TAIL = 40

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.proc: QProcess | None = None
        self._buf = b""
        self._stderr = collections.deque(maxlen=self.STDERR_TAIL)
        self._errbuf = b""

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.state() != QProcess.NotRunning

    def start(self, *args: str) -> None:
        if self.is_running():
            raise RuntimeError("this job is already running")
        self._buf, self._errbuf = b"", b""
        self._stderr.clear()
        proc = QProcess(self)
        proc.setProcessEnvironment(engine_environment())
        proc.setWorkingDirectory(str(REPO_ROOT))
        proc.setProcessChannelMode(QProcess.SeparateChannels)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self.proc = proc
        program, argv = engine_argv(*args)
        proc.start(program, argv)  # asynchronous: no waitForStarted on the UI thread

    def send(self, line: str) -> None:
        if self.is_running():
            self.proc.write((line.rstrip("\n") + "\n").encode())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    @staticmethod
    def error_line(tail: str, code: int) -> str:
        """The engine's one-line error (its last stderr line), without the program prefix."""
        lines = [l for l in tail.splitlines() if l.strip()]
        return lines[-1].replace("genlab-engine: error: ", "") if lines else f"exit code {code}"

    def kill(self, wait_ms: int = 0) -> None:
        if self.is_running():
            self.proc.kill()
            if wait_ms:
                self.proc.waitForFinished(wait_ms)

    def _read_stdout(self) -> None:
        self._buf += bytes(self.proc.readAllStandardOutput())
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            ev = protocol.parse_line(line)
            if ev is not None and "event" in ev:
                self.event.emit(ev)
            elif line.strip():
                self.output.emit(line.decode("utf-8", "replace"))

    def _read_stderr(self) -> None:
        self._errbuf += bytes(self.proc.readAllStandardError())
        *lines, self._errbuf = self._errbuf.split(b"\n")
        for line in lines:
            self._stderr.append(line.decode("utf-8", "replace"))

    def _finished(self, code: int, status) -> None:
        self._read_stdout()
        self._read_stderr()
        if self._errbuf:
            self._stderr.append(self._errbuf.decode("utf-8", "replace"))
        crashed = status == QProcess.CrashExit
        self.ended.emit(code, crashed, self.stderr_tail())

    def _error(self, err) -> None:
        if err == QProcess.FailedToStart:
            self._stderr.append(f"could not start the engine ({self.proc.errorString()})")
            self.ended.emit(-1, True, self.stderr_tail())


# Training is background work: at this niceness it yields the CPU to the window and to canvas
# renders, and loses nothing while they are idle. On a 2-core CPU at the default priority, a run
# stalled the GUI thread for up to ~100 ms (benchmarks/ui_stall.py); training's steps/s did not change.
TRAIN_NICE = 10


class ResultJob(EngineJob):
    """An engine command that reports progress events, then one result event: done(result) when it
    exits cleanly with one, failed(one line) otherwise, cancelled() after cancel() (which kills the
    process). Subclasses declare `progressed` and say in on_progress(ev) what it carries."""

    done = Signal(dict)      # the result event
    failed = Signal(str)     # the engine's one-line error
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.event.connect(self._on_event)
        self.ended.connect(self._on_ended)
        self._result, self._cancelled = None, False

    def run_command(self, *args: str) -> None:
        self._result, self._cancelled = None, False
        self.start(*args)

    def cancel(self) -> None:
        if self.is_running():
            self._cancelled = True
            self.kill()

    def on_progress(self, ev: dict) -> None:
        raise NotImplementedError

    def _on_event(self, ev: dict) -> None:
        if ev["event"] == "progress":
            self.on_progress(ev)
        elif ev["event"] == "result":
            self._result = ev

    def _on_ended(self, code: int, crashed: bool, tail: str) -> None:
        if self._cancelled:
            self.cancelled.emit()
        elif code == 0 and self._result is not None:
            self.done.emit(self._result)
        else:
            self.failed.emit(self.error_line(tail, code))


class TrainJob(EngineJob):
    """`genlab-engine train` for one run directory, steered through stdin."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None

    def start_run(self, cfg: RunConfig | None, run_dir: Path, resume: bool = False, steps: int | None = None,
                  nproc: int = 1) -> None:
        """A new run from cfg, or (resume) the run in run_dir from its last checkpoint, for `steps`
        steps in total if given (longer than planned: "continue for more steps"); with nproc > 1,
        data-parallel in that many processes under torchrun (rank 0 reads stdin and speaks)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        extra = (*(("--nproc", str(nproc)) if nproc > 1 else ()), "--nice", str(TRAIN_NICE))
        if resume:
            self.start("train", "--run-dir", str(run_dir), "--resume", *(("--steps", str(steps)) if steps else ()),
                       *extra)
        else:
            cfg_path = run_dir / "requested.toml"
            cfg.save(cfg_path)
            self.start("train", "--config", str(cfg_path), "--run-dir", str(run_dir), *extra)

    def command(self, cmd: str) -> None:
        assert cmd in protocol.COMMANDS, cmd
        self.send(cmd)

    @staticmethod
    def resume_detached(run_dir: Path) -> int:
        """Continue the run in run_dir in an engine process of its own that outlives this window
        (a new session, no stdin: it is steered through the run's `control` file, like a run
        started from a shell). Its stderr goes to the run's engine_stderr.log. Returns its pid
        (0: it did not start)."""
        import subprocess
        program, argv = engine_argv("train", "--run-dir", str(run_dir), "--resume", "--no-stdin",
                                    "--nice", str(TRAIN_NICE))
        env = {**os.environ, **engine_env_vars()}
        detach = ({"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
                  if sys.platform == "win32" else {"start_new_session": True})
        try:
            with open(Path(run_dir) / "engine_stderr.log", "ab") as err:
                proc = subprocess.Popen([program, *argv], cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err, **detach)
        except OSError:
            return 0
        return proc.pid

    def stop(self, grace_ms: int = 15000) -> None:
        """Ask the engine to stop (it saves a checkpoint), kill it if it does not exit in time."""
        if self.is_running():
            self.send("stop")
            proc = self.proc   # only this process: a run continued meanwhile has a new one
            # `self` as the context: the timer dies with this job (a window closed meanwhile)
            QTimer.singleShot(grace_ms, self, lambda: self.kill() if proc is self.proc else None)


class WorkerClient(EngineJob):
    """The long-lived `genlab-engine worker`, started on first use. Requests get increasing ids;
    its events (ready, progress, result, cancelled, error) arrive on `event`, and
    app/worker_session.py routes them to the canvas that asked."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._next_id = 0

    def request(self, op: str, **fields) -> int:
        if not self.is_running():
            self.start("worker")
        self._next_id += 1
        self.send(protocol.encode({"id": self._next_id, "op": op, **fields}))
        return self._next_id

    def shutdown(self) -> None:
        if self.is_running():
            self.send(protocol.encode({"id": 0, "op": "quit"}))
            if not self.proc.waitForFinished(3000):
                self.kill(wait_ms=3000)


class DataPreviewJob(EngineJob):
    """`genlab-engine data-preview`: count a dataset and render a preview grid, off the UI thread."""

    done = Signal(dict)
    failed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.output.connect(self._on_output)  # data-preview prints its result as one JSON line
        self.ended.connect(self._on_ended)
        self._info = None

    def preview(self, dataset: str, path: str, resolution: int, out: Path, *, n: int = 64,
                fields: dict | None = None, batch_size: int | None = None, params: int | None = None) -> None:
        """Preview n images; `fields`: other [data] fields (color, count, max_images, ...);
        batch_size and params: the model's, for the too-few-images warning."""
        import json   # a JSON scalar (3, 0.5, true, "x") is also the TOML value --set reads
        if self.is_running():
            self.proc.kill()
            self.proc.waitForFinished(2000)
        self._info = None
        args = ["data-preview", "--dataset", dataset, "--resolution", str(resolution), "--out", str(out),
                "--n", str(n)]
        if path:
            args += ["--path", path]
        for key, value in (fields or {}).items():
            args += ["--set", f"data.{key}={json.dumps(value)}"]
        if batch_size:
            args += ["--batch-size", str(batch_size)]
        if params:
            args += ["--params", str(params)]
        self.start(*args)

    def _on_output(self, line: str) -> None:
        ev = protocol.parse_line(line)
        if ev is not None:
            self._info = ev

    def _on_ended(self, code: int, crashed: bool, tail: str) -> None:
        if code == 0 and self._info is not None:
            self.done.emit(self._info)
        elif not crashed:
            self.failed.emit(self.error_line(tail, code))


class EvalJob(ResultJob):
    """`genlab-engine eval` for one checkpoint: progress and the scores as signals."""

    progressed = Signal(str, int, int)  # stage, done, total

    def evaluate(self, checkpoint: str, n: int, metrics: str, steps: int | None = None) -> None:
        args = ["eval", "--checkpoint", checkpoint, "--n", str(n), "--metrics", metrics]
        if steps:
            args += ["--steps", str(steps)]
        self.run_command(*args)

    def on_progress(self, ev: dict) -> None:
        self.progressed.emit(ev["stage"], int(ev["done"]), int(ev["total"]))
