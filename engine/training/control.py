"""Control commands for a running job: from stdin (a pipe from the GUI) and from the control file
in the run directory (a shared folder). Polled by the loop between steps; never blocks it."""
from __future__ import annotations

import queue
import sys
import threading
import time

from engine.protocol import parse_command
from engine.rundir import RunDir


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
