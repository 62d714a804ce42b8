"""Small helpers with no heavy imports: atomic file writes."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable


def throttled(fn: Callable, interval_s: float) -> Callable:
    """Progress callback fn(..., done, total) passed on at most every interval_s, and always for
    the last item, so a fast loop does not flood its listener with events."""
    last = [float("-inf")]

    def call(*args):
        now = time.monotonic()
        if now - last[0] >= interval_s or args[-2] == args[-1]:
            last[0] = now
            fn(*args)
    return call


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))
