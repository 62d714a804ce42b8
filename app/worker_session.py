"""The one engine worker every canvas shares, as a model the canvases listen to: which checkpoint
the window works on, what the worker has loaded and what it can do (Capabilities), and which canvas
owns each request in flight, so each reply (result, progress, error, cancelled) reaches the canvas
that asked and no other. If the worker process dies, every canvas is told and resets. A checkpoint
that cannot be loaded changes nothing: the worker keeps the model it had, and so does the window."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.engine_client import WorkerClient
from engine.core.capabilities import Capabilities


class RequestOwner:
    """What a canvas implements to receive its replies (app/canvases/base.py does)."""

    def on_result(self, ev: dict) -> None: ...
    def on_progress(self, rid: int, stage: str, done: int, total: int) -> None: ...
    def on_failed(self, rid: int, message: str) -> None: ...
    def on_cancelled(self, rid: int) -> None: ...
    def on_done(self, rid: int, kind: str) -> None: ...   # after the final reply of `rid`


class WorkerSession(QObject):
    checkpoint_changed = Signal(str)   # the window's checkpoint (loaded on demand)
    loading = Signal(str)              # a load was sent for this checkpoint
    loaded = Signal(object)            # Capabilities of the checkpoint the worker now holds
    load_failed = Signal(str)          # message: a load failed and no model is loaded
    load_refused = Signal(str, str)    # (checkpoint, message): it could not be loaded; the model loaded
                                       # before stays loaded and is the window's checkpoint again
    reset = Signal(str)                # the worker process ended: every request in flight is lost

    def __init__(self, client: WorkerClient | None = None, parent=None):
        super().__init__(parent)
        self.client = client or WorkerClient(self)
        self.checkpoint = ""            # what the window works on
        self.loaded_checkpoint = ""     # what the worker holds (its last ready event)
        self.capabilities: Capabilities | None = None
        self.step: int | None = None
        self.options: dict = {}         # the run's sample options of the loaded checkpoint
        self._owners: dict[int, RequestOwner | None] = {}
        self._load_id = 0
        self._loading = ""              # the checkpoint of the load in flight
        self.client.event.connect(self._on_event)
        self.client.ended.connect(self._on_ended)

    # ---- checkpoint ----------------------------------------------------------------------------
    def set_checkpoint(self, path: str, load: bool = True) -> None:
        """Make `path` the window's checkpoint; load it now, or (load=False, e.g. while training
        needs the CPU) when a canvas asks for it through ensure_loaded()."""
        path = str(path)
        if path != self.checkpoint:
            self.checkpoint = path
            self.checkpoint_changed.emit(path)
        if load:
            self.ensure_loaded()

    def ensure_loaded(self) -> None:
        if self.checkpoint and not self.is_loaded():
            if self._load_id in self._owners and self._loading == self.checkpoint:
                return  # that load is on its way
            # a load of another checkpoint may still be running: this one follows it (and a queued
            # older load is superseded by the worker)
            self._load_id = self.client.request("load", checkpoint=self.checkpoint)
            self._loading = self.checkpoint
            self._owners[self._load_id] = None
            self.loading.emit(self.checkpoint)

    def is_loaded(self) -> bool:
        return bool(self.checkpoint) and same_path(self.checkpoint, self.loaded_checkpoint) \
            and self.capabilities is not None

    # ---- requests ------------------------------------------------------------------------------
    def request(self, owner: RequestOwner, op: str, **fields) -> int:
        """Send an op for the window's checkpoint; replies go to `owner`."""
        if self.checkpoint:
            fields.setdefault("checkpoint", self.checkpoint)
        rid = self.client.request(op, **fields)
        self._owners[rid] = owner
        return rid

    def cancel(self, rid: int) -> None:
        """Stop request `rid` (queued: dropped; running: stopped between steps). Its owner then
        hears on_cancelled, as for a superseded request."""
        if rid in self._owners:
            self.client.request("cancel", target=rid)

    def shutdown(self) -> None:
        self.client.shutdown()

    # ---- replies -------------------------------------------------------------------------------
    def _on_event(self, ev: dict) -> None:
        kind, rid = ev.get("event"), ev.get("id")
        if kind == "ready":
            self._owners.pop(rid, None)
            self.loaded_checkpoint = str(ev.get("checkpoint", ""))
            self.capabilities = Capabilities.from_dict(ev.get("capabilities", {}))
            self.step = ev.get("step")
            self.options = ev.get("options", {})
            if self.is_loaded():
                self.loaded.emit(self.capabilities)
            else:  # an older checkpoint finished loading after the window moved on: load the new one
                self.ensure_loaded()
            return
        if rid is None or rid not in self._owners:
            return  # a reply to a request nobody waits for (e.g. superseded long ago)
        owner = self._owners.get(rid)
        if kind == "progress":
            if owner is not None:
                owner.on_progress(rid, ev.get("stage", ""), int(ev["done"]), int(ev["total"]))
            return
        self._owners.pop(rid, None)
        if kind == "error" and owner is None:  # a load failed: the worker keeps what it had
            if rid == self._load_id:
                self._on_load_error(ev.get("message", "error"))
            return
        if owner is None:
            return
        if kind == "result":
            owner.on_result(ev)
        elif kind == "error":
            owner.on_failed(rid, ev.get("message", "error"))
        elif kind == "cancelled":
            owner.on_cancelled(rid)
        if kind in ("result", "error", "cancelled"):
            owner.on_done(rid, kind)

    def _on_load_error(self, message: str) -> None:
        """The newest load failed. With a model loaded before, the window goes back to it (every
        canvas and the toolbar follow checkpoint_changed) and says why the other did not load."""
        failed, self._loading = self._loading, ""
        if self.capabilities is not None and self.loaded_checkpoint:
            if not same_path(self.checkpoint, self.loaded_checkpoint):
                self.checkpoint = self.loaded_checkpoint
                self.checkpoint_changed.emit(self.checkpoint)
            self.load_refused.emit(failed, message)
        else:
            self.load_failed.emit(message)

    def _on_ended(self, code: int, crashed: bool, tail: str) -> None:
        self._owners.clear()
        self.loaded_checkpoint, self.capabilities, self.step, self.options = "", None, None, {}
        if code != 0 or crashed:
            message = f"the engine worker stopped (exit code {code})" + (f": {tail.strip().splitlines()[-1]}"
                                                                         if tail.strip() else "")
        else:
            message = "the engine worker exited"
        self.reset.emit(message)


def same_path(a: str, b: str) -> bool:
    return bool(a) and bool(b) and Path(a) == Path(b)


def failure_reason(message: str, path: str) -> str:
    """The worker's first line about a checkpoint that did not load, without the checkpoint's
    folder and file name (whoever shows it names the checkpoint already); a sidecar it names, like
    step_000400.json, stays."""
    line = message.strip().splitlines()[0] if message.strip() else "error"
    p = Path(path)
    for prefix in (f"{p}: ", f"{p.parent}/", f"{p.parent}\\"):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line
