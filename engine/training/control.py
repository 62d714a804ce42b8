"""Control commands for a running job: from stdin (a pipe from the GUI) and from the control file
in the run directory (a shared folder). Polled by the loop between steps; never blocks it.

In a distributed run only rank 0 listens (SharedControl) and hands what it read to every rank at a
step they all agree on, so pause, stop, sample-now and save-now act at the same step everywhere.
Rank 0's own decisions that every rank must follow (the time budget is spent) travel the same way."""
from __future__ import annotations

import queue
import sys
import threading
import time
from typing import TYPE_CHECKING

from engine.core.protocol import parse_command
from engine.runs.rundir import RunDir

if TYPE_CHECKING:
    from engine.training.distributed import Distributed


class ControlChannel:
    FILE_POLL_S = 0.25  # the control file is stat'ed at most this often

    def __init__(self, run_dir: RunDir, listen_stdin: bool = False):
        self.run_dir = run_dir
        self._q: queue.Queue[str] = queue.Queue()
        self._last_file_poll = 0.0
        if listen_stdin and sys.stdin is not None:
            threading.Thread(target=self._read_stdin, name="stdin-control", daemon=True).start()

    def _read_stdin(self) -> None:
        try:
            for line in sys.stdin:
                cmd = parse_command(line)
                if cmd:
                    self._q.put(cmd)
        except (OSError, ValueError):
            pass  # stdin closed: the file channel still works

    def poll(self, force_file: bool = False) -> list[str]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
        now = time.monotonic()
        if force_file or now - self._last_file_poll >= self.FILE_POLL_S:
            self._last_file_poll = now
            out += self.run_dir.take_control_commands()
        return out


class SharedControl:
    """Rank 0's ControlChannel shared with every rank. A broadcast costs a round trip between the
    processes, so it is not made every step: each one also carries the step of the next, which
    rank 0 picks so that they come about every SYNC_S seconds of training. A world of one polls its
    channel every step, as before."""

    SYNC_S = 0.2
    MAX_EVERY = 1000

    def __init__(self, channel: ControlChannel | None, dist: "Distributed"):
        self.channel, self.dist = channel, dist
        self.next_step = 0            # the step at which all ranks next exchange commands
        self._last: tuple[float, int] | None = None   # rank 0: (time, step) of the last exchange
        self._own: list[str] = []     # rank 0: commands of its own, handed out at the next exchange

    def add(self, command: str) -> None:
        """Rank 0: act on `command` on every rank at the next exchange (e.g. the time budget is
        spent: rank 0's clock decides, so the ranks cannot disagree about the step)."""
        self._own.append(command)

    def poll(self, step: int, force: bool = False) -> list[str]:
        """Commands to act on before training step `step`; [] between exchanges. `force` (while
        paused) exchanges now; every rank must then pass it."""
        if not self.dist.enabled:
            own, self._own = self._own, []
            return own + (self.channel.poll(force_file=force) if self.channel is not None else [])
        if not force and step < self.next_step:
            return []
        commands, next_step = [], 0
        if self.dist.is_main:
            commands, self._own = self._own, []
            commands += self.channel.poll(force_file=True) if self.channel is not None else []
            now = time.perf_counter()
            every = 1
            if self._last is not None and step > self._last[1]:
                per_step = (now - self._last[0]) / (step - self._last[1])
                every = max(1, min(self.MAX_EVERY, int(self.SYNC_S / max(per_step, 1e-6))))
            self._last = (now, step)
            next_step = step + every
        commands, self.next_step = self.dist.broadcast_commands(commands, next_step)
        return commands
