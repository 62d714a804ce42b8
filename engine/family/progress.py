"""The progress and cancel types every long computation takes (sampling, inversion, projection,
inpainting, evaluation, an operation), and the exception a cancelled one raises. Light: no torch.

  Progress        progress(done, total): one computation's steps
  StageProgress   progress(stage, done, total): a job of several named stages (an operation, an
                  evaluation: "sampling", "real features", ...)
  Cancel          cancel() -> True when the work must stop; checked between steps
"""
from __future__ import annotations

from typing import Callable

Progress = Callable[[int, int], None]
StageProgress = Callable[[str, int, int], None]
Cancel = Callable[[], bool]


class Cancelled(Exception):
    """The work was cancelled (by its Cancel button, or superseded by a newer request)."""


def check_cancel(cancel: Cancel | None) -> None:
    """Raise Cancelled when cancel() says so (None: never)."""
    if cancel is not None and cancel():
        raise Cancelled()


def stage(progress: StageProgress, name: str) -> Progress:
    """A Progress that reports to a StageProgress under one stage name."""
    return lambda done, total: progress(name, done, total)
