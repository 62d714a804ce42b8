"""`genlab-engine worker`: a long-lived process that loads checkpoints and answers canvas requests.

Requests are JSON lines on stdin, each with "id" and "op". "load" and "quit" are the worker's own;
every other op is an operation of engine/ops (OPS), whose Request dataclass gives its fields:
  {"id": 1, "op": "load", "checkpoint": "runs/.../step_001500.safetensors"}
  {"id": 2, "op": "sample", "n": 16, "seed": 0, "cls": 3, "options": {"steps": 50, "sampler": "ddim"}}
  {"id": 3, "op": "project", "image": "face.png"}           (the latent is cached for mix/interpolate)
  {"id": 4, "op": "mix", "rows": [1, 2, "face.png"], "cols": [4, 5], "layers": [0, 1, 2],
   "options": {"truncation_psi": 0.7, "noise_mode": "const"}}
  {"id": 5, "op": "interpolate", "endpoints": [1, "face.png", 7], "frames": 16}   (a preview: a strip)
  {"id": 6, "op": "interpolate-export", "endpoints": [1, 7], "frames": 16, "out": "walk.gif"}
  {"id": 7, "op": "evaluate", "n": 1000}
  {"id": 8, "op": "inpaint", "image": "photo.png", "mask": "mask.png", "method": "repaint", "seeds": [0, 1]}
  {"id": 9, "op": "cancel", "target": 8}                    (stops request 8 between steps)
  {"id": 10, "op": "quit"}
"options" are the loaded family's sample options (its section.py); one it does not have is an
error naming it. Any op may carry "checkpoint" (loaded first if it is not the loaded one); a
checkpoint that cannot be loaded is an error, and the model loaded before stays loaded. An op
that writes an image and names no "out" writes it into the worker's cache folder (which fields
are outputs is its Request's metadata: engine/core/flags.py).
Replies are the events of engine/core/protocol.py: ready, progress, result, cancelled, error.
A newer request of the same op supersedes an older one: a queued one is dropped and a running one
is cancelled between steps, so dragging a slider never queues stale work. Ops marked
superseded=False in OPS (interpolate-export: a file someone asked for; project: an image someone
dropped) are stopped only by their own "cancel"; a newer request of the same op queues behind them.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from engine.core import protocol
from engine.core.flags import worker_outputs
from engine.ops import OPS
from engine.ops.base import ModelSession, parse_request, result_fields
from engine.family.progress import Cancelled
from engine.core.sections import option_values
from engine.core.util import throttled

OWN_OPS = ("load", "cancel", "quit")


class Worker:
    def __init__(self, cache_dir: str | Path | None = None, device: str = "auto",
                 emit: Callable[[dict], None] | None = None):
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="genlab-worker-"))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.emit = emit or (lambda ev: (sys.stdout.write(protocol.encode(ev) + "\n"), sys.stdout.flush()))
        self.session: ModelSession | None = None
        self._queue: list[dict] = []
        self._running: dict | None = None
        self._running_cancel = threading.Event()  # set when a newer request of the running op arrives
        self._cond = threading.Condition()

    @property
    def family(self):
        return self.session.family if self.session else None

    # ---- requests in --------------------------------------------------------------------------
    def submit(self, req: dict) -> None:
        with self._cond:
            op = req.get("op")
            if op == "cancel":   # answered at once, not queued: the work it stops may be running
                self._cancel(req.get("target"))
                return
            if supersedes(op):
                for old in [r for r in self._queue if r.get("op") == op]:
                    self._queue.remove(old)
                    self.emit(protocol.event("cancelled", id=old.get("id"), op=op))
                if self._running is not None and self._running.get("op") == op:
                    self._running_cancel.set()  # the running one stops at its next step
            self._queue.append(req)
            self._cond.notify()

    def _cancel(self, target) -> None:
        """Stop request `target`: dropped if queued, stopped at its next step if running (its
        reply is then "cancelled"). Unknown or finished requests: nothing to do. Holds _cond."""
        for old in [r for r in self._queue if r.get("id") == target]:
            self._queue.remove(old)
            self.emit(protocol.event("cancelled", id=target, op=old.get("op")))
        if self._running is not None and self._running.get("id") == target:
            self._running_cancel.set()

    def read_stdin(self) -> None:
        for line in sys.stdin:
            req = protocol.parse_line(line)
            if req is None:
                if line.strip():
                    self.emit(protocol.event("error", id=None, message=f"not a JSON request: {line.strip()[:80]}"))
                continue
            self.submit(req)
        self.submit({"op": "quit", "id": None})

    # ---- serving ------------------------------------------------------------------------------
    def serve(self) -> None:
        threading.Thread(target=self.read_stdin, name="worker-stdin", daemon=True).start()
        self.emit(protocol.event("worker", state="idle", cache_dir=str(self.cache_dir)))
        self.serve_queue()

    def serve_queue(self) -> None:
        """Answer submitted requests in order until a "quit" (serve() feeds it from stdin)."""
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                req = self._queue.pop(0)
                self._running = req
                cancel = self._running_cancel = threading.Event()
            try:
                if req.get("op") == "quit":
                    return
                self.handle(req, cancel)
            finally:
                with self._cond:
                    self._running = None

    def handle(self, req: dict, cancel: threading.Event | None = None) -> None:
        """Answer one request (on the serving thread; the stdin thread only ever touches the queue
        and the cancel event, never the request)."""
        rid, op = req.get("id"), req.get("op")
        try:
            if op == "load":
                if not req.get("checkpoint"):
                    raise ValueError("load: the request is missing 'checkpoint'")
                self.load(req["checkpoint"], rid)
            elif isinstance(op, str) and op in OPS:
                self._ensure_loaded(req, required=OPS.get(op).needs_model)
                t0 = time.perf_counter()
                result = self.run_op(req, cancel or threading.Event())
                self.emit(protocol.event("result", id=rid, op=op, elapsed_s=round(time.perf_counter() - t0, 3),
                                         **result_fields(result)))
            else:
                raise ValueError(f"unknown op {op!r}; known: {', '.join((*OWN_OPS, *OPS))}")
        except Cancelled:
            self.emit(protocol.event("cancelled", id=rid, op=op))
        except Exception as e:  # the worker keeps serving after a bad request
            self.emit(protocol.event("error", id=rid, op=op, message=error_message(e, op)))

    def run_op(self, req: dict, cancel: threading.Event):
        op = OPS.get(req["op"])
        fields = {k: v for k, v in req.items() if k not in ("id", "op", "checkpoint")}
        # images go to the cache folder unless the request names a file
        fields = self._default_outputs(req, op, fields)
        request = parse_request(op.request, fields, req["op"])
        progress = throttled(lambda stage, done, total: self.emit(
            protocol.event("progress", id=req.get("id"), op=req["op"], stage=stage, done=done, total=total)), 0.1)
        return op.run(self.session, request, progress, cancel.is_set)

    def _default_outputs(self, req: dict, op, fields: dict) -> dict:
        """The request's outputs that it leaves out, in the cache folder: <op>_<id>.png for a file
        or a strip, <op>_<id>/ for a folder."""
        stem = self.cache_dir / f"{op.cache_name or req['op']}_{req.get('id')}"
        for name, kind in worker_outputs(op.request):
            fields.setdefault(name, str(stem) if kind == "folder" else f"{stem}.png")
        return fields

    def load(self, checkpoint: str, rid=None) -> None:
        """Load a checkpoint and say so (ready: what it can do, and the run's sample options). The
        new model replaces the loaded one only once it has loaded in full: a checkpoint that cannot
        be loaded (missing, corrupt, another family's) is an error, and the model loaded before
        stays loaded and answers the next request."""
        self.session = ModelSession.load(checkpoint, self.device)
        self.emit(protocol.event("ready", id=rid, checkpoint=str(self.session.checkpoint), step=self.session.step,
                                 capabilities=self.family.capabilities().to_dict(),
                                 options=option_values(self.session.config.sampling)))

    def _ensure_loaded(self, req: dict, required: bool = True) -> None:
        if "checkpoint" in req and not isinstance(req["checkpoint"], str):
            raise ValueError(f"{req.get('op')}: checkpoint = {req['checkpoint']!r} must be the path of a checkpoint")
        if req.get("checkpoint") and (self.session is None or Path(req["checkpoint"]) != self.session.checkpoint):
            self.load(req["checkpoint"])  # a request for another checkpoint: load it, and say so
        if self.session is None and required:
            raise ValueError("no checkpoint loaded: send a 'load' request first")


def supersedes(op) -> bool:
    """Whether a newer request of `op` replaces older ones (the worker's own ops do: a newer load)."""
    known = OPS.get(op) if isinstance(op, str) and op in OPS else None   # a malformed op is answered later
    return known is None or known.superseded


def error_message(e: Exception, op) -> str:
    """One line for a failed request: what was wrong with it (a bad field, a missing file, a
    checkpoint that does not fit), or, for a bug in GenLab, that it is one (the traceback goes to
    the worker's stderr, which the GUI shows)."""
    from engine.data.dataset import DataError
    from engine.core.errors import os_error_line
    from engine.training.checkpoint import CheckpointError
    if isinstance(e, OSError):
        return os_error_line(e)
    if isinstance(e, (ValueError, DataError, CheckpointError)) and str(e):
        return str(e).splitlines()[0]
    traceback.print_exc(file=sys.stderr)
    return f"internal error while running {op!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); " \
           f"the details are on the worker's stderr"
