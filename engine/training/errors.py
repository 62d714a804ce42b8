"""How a training run fails, and the one line another rank hears of it."""
from __future__ import annotations

from engine.core.config import ConfigError
from engine.core.errors import os_error_line
from engine.data import DataError
from engine.training.checkpoint import CheckpointError


class TrainingFailed(RuntimeError):
    pass


class RunBusy(TrainingFailed):
    """Another live process is training this run directory: refused without touching its files."""


class PeerFailed(TrainingFailed):
    """Another rank of a distributed run failed; its message says which and why."""


def error_line(e: BaseException) -> str:
    """An error as the other ranks are told it: ours in their words, anything else with its type."""
    if isinstance(e, OSError):
        return os_error_line(e)
    text = str(e).strip()
    if isinstance(e, (TrainingFailed, ConfigError, DataError, CheckpointError)) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
