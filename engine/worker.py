"""`genlab-engine worker`: a long-lived process that loads checkpoints and answers canvas requests.

Requests are JSON lines on stdin, each with "id" and "op":
  {"id": 1, "op": "load", "checkpoint": "runs/.../step_001500.safetensors"}
  {"id": 2, "op": "sample", "n": 16, "seed": 0, "steps": 50, "sampler": "ddim", "eta": 0.0,
   "guidance_scale": 2.0, "class": 3}          (class: an index, or null for a mix / unconditional)
  {"id": 3, "op": "project", "image": "face.png"}   (GANs: projection; diffusion: DDIM inversion;
                                                  the latent is cached for later mix/interpolate)
  {"id": 4, "op": "mix", "rows": [1, 2, "face.png"], "cols": [4, 5], "layers": [0, 1, 2], "psi": 0.7,
   "noise_mode": "const"}
  {"id": 5, "op": "interpolate", "endpoints": [1, "face.png", 7], "frames": 16, "mode": "slerp", "psi": 1.0,
   "out": "walk.gif"}           (the strip PNG always comes back; out adds a GIF/MP4; "steps" are
                                 diffusion's DDIM steps per frame)
  {"id": 6, "op": "quit"}
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
        from engine.sampling.interpolate import EndpointCache
        self.endpoints = EndpointCache()

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
            elif op in ("sample", "mix", "interpolate", "project"):
                self._ensure_loaded(req)
                t0 = time.perf_counter()
                info = getattr(self, op)(req)
                self.emit(protocol.event("result", id=rid, op=op, elapsed_s=round(time.perf_counter() - t0, 3),
                                         **info))
            else:
                raise ValueError(f"unknown op {op!r}; known: load, sample, project, mix, interpolate, quit")
        except Cancelled:
            self.emit(protocol.event("cancelled", id=rid, op=op))
        except KeyError as e:
            self.emit(protocol.event("error", id=rid, op=op, message=f"request is missing {e.args[0]!r}"))
        except Exception as e:  # the worker keeps serving after a bad request
            self.emit(protocol.event("error", id=rid, op=op, message=str(e) or type(e).__name__))

    def load(self, checkpoint: str) -> None:
        from engine.sampling.interpolate import EndpointCache
        self.endpoints = EndpointCache()  # latents belong to the model they were encoded for
        from engine.training.checkpoint import family_from_checkpoint
        self.family, ckpt = family_from_checkpoint(checkpoint, self.device)
        self.checkpoint, self._ckpt_step = Path(checkpoint), ckpt.step

    def _ensure_loaded(self, req: dict) -> None:
        if req.get("checkpoint") and Path(req["checkpoint"]) != self.checkpoint:
            self.load(req["checkpoint"])
        if self.family is None:
            raise ValueError("no checkpoint loaded: send a 'load' request first")

    def _progress(self, req: dict, stage: str = ""):
        staged = self._staged_progress(req)
        return lambda done, total: staged(stage, done, total)

    def _staged_progress(self, req: dict):
        rid = req.get("id")
        return throttled(lambda stage, done, total: self.emit(
            protocol.event("progress", id=rid, done=done, total=total, stage=stage)), 0.1)

    @staticmethod
    def _cancel(req: dict):
        return lambda: bool(req.get("_superseded"))

    def _out(self, req: dict, name: str) -> Path:
        return Path(req["out"]) if req.get("out") else self.cache_dir / f"{name}_{req.get('id')}.png"

    def sample(self, req: dict) -> dict:
        from engine.training.grid import sample_grid_image, save_png
        n = int(req.get("n", 16))
        if not 1 <= n <= 1024:
            raise ValueError(f"n = {n} must be between 1 and 1024")
        img = sample_grid_image(
            self.family, n, seed=int(req.get("seed", 0)), cls=req.get("class"), use_ema=bool(req.get("ema", True)),
            sampler=req.get("sampler", "ddim"), steps=int(req.get("steps", 50)), eta=float(req.get("eta", 0.0)),
            guidance_scale=float(req.get("guidance_scale", 1.0)), truncation_psi=float(req.get("psi", 1.0)),
            noise_mode=req.get("noise_mode", "const"), progress=self._progress(req, "sampling"),
            cancel=self._cancel(req))
        out = self._out(req, "sample")
        save_png(img, out)
        return {"path": str(out)}

    def _labels(self, req: dict):
        cls = req.get("class")
        return self.family.labels_for(1, cls) if cls is not None else self.family.latent_labels()

    def _latent(self, req: dict, spec):
        from engine.sampling.interpolate import default_encode_steps
        labels = self._labels(req)
        steps = int(req.get("encode_steps") or default_encode_steps(self.family, {"steps": req.get("steps", 25)}))
        return self.endpoints.latent(self.family, spec, labels, encode_steps=steps,
                                     progress=self._progress(req, f"encoding {Path(str(spec)).name}"),
                                     cancel=self._cancel(req))

    def project(self, req: dict) -> dict:
        """Encode an image into the model's latent space (cached), and return its reconstruction."""
        from engine.training.grid import make_grid, save_png
        lat = self._latent(req, req["image"])
        img = self.family.decode_latents(lat, self._labels(req), **decode_options(req))
        out = self._out(req, "project")
        save_png(make_grid(img, 1), out)
        return {"path": str(out), "image": req["image"]}

    def mix(self, req: dict) -> dict:
        from engine.training.grid import make_grid, save_png
        if not self.family.capabilities().style_mix:
            raise ValueError(f"a {self.family.name} model has no per-layer styles to mix")
        rows = [self._latent(req, s) for s in req["rows"]]
        cols = [self._latent(req, s) for s in req["cols"]]
        if not rows or not cols:
            raise ValueError("style mixing needs at least one row and one column source")
        import torch
        grid = self.family.style_mix(torch.cat(rows), torch.cat(cols), [int(i) for i in req.get("layers", [])],
                                     truncation_psi=float(req.get("psi", 1.0)),
                                     noise_mode=req.get("noise_mode", "const"))
        out = self._out(req, "mix")
        save_png(make_grid(grid, len(cols) + 1), out)
        return {"path": str(out), "rows": len(rows), "cols": len(cols)}

    def interpolate(self, req: dict) -> dict:
        from engine.sampling.interpolate import interpolate, save_animation
        specs = req["endpoints"]
        for s in specs:  # encode images first, with their own progress
            self._latent(req, s)
        cls = req.get("class")
        frames = interpolate(self.family, specs, int(req.get("frames", 16)), req.get("mode", "slerp"), cls=cls,
                             cache=self.endpoints, encode_steps=int(req.get("encode_steps") or 0) or None,
                             progress=self._staged_progress(req), cancel=self._cancel(req), **decode_options(req))
        strip = self.cache_dir / f"interp_{req.get('id')}.png"
        save_animation(frames, strip, scale=1)
        info = {"path": str(strip), "frames": len(frames), "frame_size": self.family.resolution}
        if req.get("out"):
            info["out"] = str(save_animation(frames, req["out"], fps=float(req.get("fps", 12)),
                                             bounce=bool(req.get("bounce", False))))
        return info


def decode_options(req: dict) -> dict:
    """Rendering settings of a request, for any family's decode_latents (each ignores the rest)."""
    return {"truncation_psi": float(req.get("psi", 1.0)), "noise_mode": req.get("noise_mode", "const"),
            "steps": int(req.get("steps", 25)), "guidance_scale": float(req.get("guidance_scale", 1.0)),
            "use_ema": bool(req.get("ema", True))}
