"""`genlab-engine worker`: serve canvas requests, JSON lines on stdin (engine/worker.py)."""
from __future__ import annotations

from engine.core.config import DEVICES

HELP = "serve canvas requests (JSON lines on stdin)"


def add_arguments(w) -> None:
    w.add_argument("--cache-dir")
    w.add_argument("--device", choices=DEVICES)


def run(args) -> int:
    from engine.worker import Worker
    Worker(args.cache_dir, args.device or "auto").serve()
    return 0
