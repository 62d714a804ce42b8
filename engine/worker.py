"""`genlab-engine worker`: a long-lived process that loads checkpoints and answers canvas requests.

Requests are JSON lines on stdin, each with "id" and "op":
  {"id": 1, "op": "load", "checkpoint": "runs/.../step_001500.safetensors"}
  {"id": 2, "op": "sample", "n": 16, "seed": 0, "steps": 50, "sampler": "ddim", "eta": 0.0,
   "guidance_scale": 2.0, "class": 3}          (class: an index, or null for a mix / unconditional)
  {"id": 3, "op": "quit"}
Replies are events on stdout: ready, progress, result (with the PNG path), cancelled, error.
A newer request of the same op supersedes an older one: a queued one is dropped and a running one
is cancelled between denoising steps, so dragging a slider never queues stale work.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from engine import protocol
from engine.sampling.samplers import Cancelled
from engine.util import throttled


class Worker:
    def __init__(self, cache_dir: str | Path | None = None, device: str = "auto",
                 emit: Callable[[dict], None] | None = None):
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="genlab-worker-"))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.emit = emit or (lambda ev: (sys.stdout.write(protocol.encode(ev) + "\n"), sys.stdout.flush()))
        self.family = None
        self.checkpoint = None
        self._queue: list[dict] = []
        self._running: dict | None = None
        self._cond = threading.Condition()

    # ---- requests in --------------------------------------------------------------------------
    def submit(self, req: dict) -> None:
        with self._cond:
            op = req.get("op")
            for old in [r for r in self._queue if r.get("op") == op]:
                self._queue.remove(old)
                self.emit(protocol.event("cancelled", id=old.get("id"), op=op))
            if self._running is not None and self._running.get("op") == op:
                self._running["_superseded"] = True
            self._queue.append(req)
            self._cond.notify()

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
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                req = self._queue.pop(0)
                self._running = req
            try:
                if req.get("op") == "quit":
                    return
                self.handle(req)
            finally:
                with self._cond:
                    self._running = None

    def handle(self, req: dict) -> None:
        rid, op = req.get("id"), req.get("op")
        try:
            if op == "load":
                self.load(req["checkpoint"])
                self.emit(protocol.event("ready", id=rid, checkpoint=str(self.checkpoint),
                                         capabilities=self.family.capabilities().to_dict(),
                                         step=self._ckpt_step))
            elif op == "sample":
                path, dt = self.sample(req)
                self.emit(protocol.event("result", id=rid, op=op, path=str(path), elapsed_s=round(dt, 3)))
            else:
                raise ValueError(f"unknown op {op!r}; known: load, sample, quit")
        except Cancelled:
            self.emit(protocol.event("cancelled", id=rid, op=op))
        except KeyError as e:
            self.emit(protocol.event("error", id=rid, op=op, message=f"request is missing {e.args[0]!r}"))
        except Exception as e:  # the worker keeps serving after a bad request
            self.emit(protocol.event("error", id=rid, op=op, message=str(e) or type(e).__name__))

    def load(self, checkpoint: str) -> None:
        from engine.training.checkpoint import family_from_checkpoint
        self.family, ckpt = family_from_checkpoint(checkpoint, self.device)
        self.checkpoint, self._ckpt_step = Path(checkpoint), ckpt.step

    def sample(self, req: dict) -> tuple[Path, float]:
        if req.get("checkpoint") and Path(req["checkpoint"]) != self.checkpoint:
            self.load(req["checkpoint"])
        if self.family is None:
            raise ValueError("no checkpoint loaded: send a 'load' request first")
        from engine.training.grid import sample_grid_image, save_png
        n = int(req.get("n", 16))
        if not 1 <= n <= 1024:
            raise ValueError(f"n = {n} must be between 1 and 1024")
        rid = req.get("id")
        progress = throttled(lambda done, total: self.emit(
            protocol.event("progress", id=rid, done=done, total=total)), 0.1)
        t0 = time.perf_counter()
        img = sample_grid_image(
            self.family, n, seed=int(req.get("seed", 0)), cls=req.get("class"), use_ema=bool(req.get("ema", True)),
            sampler=req.get("sampler", "ddim"), steps=int(req.get("steps", 50)), eta=float(req.get("eta", 0.0)),
            guidance_scale=float(req.get("guidance_scale", 1.0)), progress=progress,
            cancel=lambda: bool(req.get("_superseded")))
        dt = time.perf_counter() - t0
        out = Path(req["out"]) if req.get("out") else self.cache_dir / f"sample_{rid}.png"
        save_png(img, out)
        return out, dt
