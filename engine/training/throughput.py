"""Images per second of training alone, and the ETA it gives: measured over the steps since the
last logged row, with the time of everything that is not a training step left out (a pause, a grid
drawn on request or on schedule, an evaluation pass, a checkpoint), so a run paused for a minute
reads as fast after Resume as before it."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator


class Throughput:
    def __init__(self, batch_size: int, clock: Callable[[], float] = time.perf_counter):
        self.batch_size, self.clock = batch_size, clock
        self.run_start = clock()
        self._start, self._steps, self._excluded = self.run_start, 0, 0.0
        self._excluded_total = 0.0   # since the run began (the window's share is reset per row)

    def count_step(self) -> None:
        self._steps += 1

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Time spent inside is not training time."""
        t0 = self.clock()
        try:
            yield
        finally:
            spent = self.clock() - t0
            self._excluded += spent
            self._excluded_total += spent

    def images_per_s(self) -> float:
        busy = max(1e-9, self.clock() - self._start - self._excluded)
        return self._steps * self.batch_size / busy

    def eta_s(self, steps_left: int, images_per_s: float) -> float:
        return steps_left * self.batch_size / max(images_per_s, 1e-9)

    def elapsed_s(self) -> float:
        """Wall time since the run (this process) began, pauses included."""
        return self.clock() - self.run_start

    def training_s(self) -> float:
        """Seconds of training alone since the run (this process) began: what
        training.time_budget_s counts."""
        return self.clock() - self.run_start - self._excluded_total

    def new_window(self) -> None:
        """A row was logged: the next one measures the steps after it."""
        self._start, self._steps, self._excluded = self.clock(), 0, 0.0
