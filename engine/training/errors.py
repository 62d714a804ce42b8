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


# ---- failing together: a distributed run's ranks all raise, or none does ----------------------------
def rank0_alone(d, fn, *args):
    """fn(*args) on rank 0 alone (d: the run's Distributed); then every rank learns whether it
    failed (one small broadcast) and the others raise PeerFailed with its message. fn must call
    no collective."""
    if not d.enabled:
        return fn(*args)
    result, error = None, None
    if d.is_main:
        try:
            result = fn(*args)
        except Exception as e:
            error = e
    message = d.broadcast_bytes(error_line(error).encode("utf-8") if error is not None else None)
    if error is not None:
        raise error
    if message:
        raise PeerFailed(f"rank 0 failed: {message.decode('utf-8', 'replace')}")
    return result


def agree(d, error: Exception | None) -> None:
    """After work every rank does that may fail on some: all raise, or none does."""
    if not d.enabled:
        if error is not None:
            raise error
        return
    found = d.first_error(None if error is None else error_line(error))
    if error is not None:
        raise error
    if found is not None:
        raise PeerFailed(f"rank {found[0]} failed: {found[1]}")
