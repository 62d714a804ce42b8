"""The JSON-lines messages the engine and the GUI speak.

Events go out of an engine process on stdout, one JSON object per line, each with an "event" key:

  phase       what, step                   what the engine is doing now ("loading data", "building the
                                             model", "drawing the step-0 sample grid", "evaluating at step N")
  started     run_dir, device, devices (one per rank), world_size, precision, step, total_steps, params, dataset, images
  metrics     step, total_steps, lr, img_per_s, eta_s, elapsed_s, and the family's values under
              their namespaces (loss/…, gan/…, reg/…, grad/…: engine/core/logkeys.py)
  sample      step, path, artifacts          (the step's training artifacts were written: path is the
                                             sample grid, artifacts maps each declared artifact's key to
                                             its PNG, engine/core/artifacts.py)
  checkpoint  step, path
  status      state (running/paused/stopped/finished/failed), step, message
  eval        step, quality/fid or quality/fd_domain, quality/kid…, …, eval_s  (a metric pass ended)
  eval_progress  step, stage, done, total
  warning / info  message
  error       message

Worker events (the one vocabulary of operations; every reply carries the request's id and op):
  worker      state, cache_dir                 the worker started
  ready       id, checkpoint, step, capabilities, options   a checkpoint is loaded (capabilities: one record
                                               per interface, engine/core/capabilities.py; options: the
                                               run's sample options)
  progress    id, op, stage, done, total       throttled to ~10 per second, always the last one
  result      id, op, elapsed_s, and the op's Result fields (paths of written images, counts, …)
  cancelled   id, op                           stopped by a "cancel" request naming it, or superseded by
                                               a newer request of the same op (not for an op that is
                                               never superseded, e.g. interpolate-export: only cancel)
  error       id, op, message                  the request failed; the worker keeps serving

Control commands come in on stdin (a plain word or {"cmd": ...}) and through the file `control`
in the run directory (one command per line), so a run on another machine can be steered through a
shared folder. Worker requests are JSON objects with "id" and "op" (engine/worker.py lists them);
a preview walk is "interpolate" and writing one to a file is "interpolate-export", so a preview
never cancels an export.
"""
from __future__ import annotations

import json
from typing import Any

COMMANDS = ("pause", "resume", "stop", "sample-now", "save-now")
STATES = ("starting", "running", "paused", "stopped", "finished", "failed", "interrupted")  # interrupted: read, never written (the process is gone)
CONTROL_FILE = "control"


def encode(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"event": kind, **fields}


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """An event or request from one line, or None for blank or non-JSON lines (e.g. stray prints)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_command(line: str) -> str | None:
    """A control command from a line: 'pause' or {"cmd": "pause"}. Unknown input gives None."""
    line = line.strip()
    if not line:
        return None
    obj = parse_line(line)
    word = obj.get("cmd") if obj is not None else line
    word = str(word).strip().lower().replace("_", "-")
    return word if word in COMMANDS else None
