"""The base of every canvas: a view of the shared WorkerSession. It hears which checkpoint the window
works on, what the loaded model can do (apply_capabilities), and the replies to its own requests
only; it shows their progress with an ETA in `self.progress`, offers `self.cancel_btn` for whatever
it has in flight, shows errors in `self.status`, and resets when the worker dies. Subclasses build
their controls (placing `self.progress_row`) and implement apply_capabilities and on_result.

Interactive renders (a slider drag) go through request_live(): at most one such request is in flight;
newer ones wait as a single pending request that replaces the previous pending one, and is sent when
the one in flight answers. So a drag shows intermediate frames at the render rate instead of
cancelling every frame before it finishes; `self.live_label` shows "rendering…" and the frame rate."""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.qt_util import human_duration, scratch_settings, signals_blocked
from app.widgets.config_form import ConfigForm
from app.worker_session import WorkerSession, failure_reason
from engine.core.capabilities import Capabilities
from engine.core.families import FAMILIES, family_spec
from engine.core.sections import option_fields

ERROR_STYLE = "<span style='color:#c0392b'>✖ {}</span>"
# a live render sent longer than this after the last one answered starts a new sequence: the frame
# rate is of frames rendered one after another (a drag), never of single renders minutes apart
SEQUENCE_GAP_S = 0.5


def options_class(caps: Capabilities | None):
    """The sample-options dataclass of the loaded model's family (from the registry), or None."""
    if caps is None or caps.family not in FAMILIES:
        return None
    return family_spec(caps.family).sample_options


def has_capability(caps: Capabilities, path: str) -> bool:
    """'conditional.guidance' -> caps.conditional.guidance, False where a record is missing."""
    value = caps
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return False
    return bool(value)


def enable_by_capability(form, caps: Capabilities) -> None:
    """Disable the option editors whose field `requires` a capability the model lacks (its
    metadata names it as a path into the records, e.g. requires="conditional.guidance")."""
    for f in dataclasses.fields(form.section_cls):
        need = f.metadata.get("requires")
        if need and f.name in form.editors:
            form.editors[f.name].setEnabled(has_capability(caps, need))


class Canvas(QWidget):
    def __init__(self, session: WorkerSession, parent=None, settings: QSettings | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.session = session
        self.settings = settings if settings is not None else scratch_settings()  # what it remembers
        self.capabilities: Capabilities | None = None
        self.progress = QProgressBar()
        self.progress.setFormat("")
        self.progress.setMinimumWidth(120)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop this canvas's work in the engine (Esc)")
        self.cancel_btn.setShortcut("Esc")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.progress_row = QWidget()   # progress and Cancel, side by side: subclasses place this
        pr = QHBoxLayout(self.progress_row)
        pr.setContentsMargins(0, 0, 0, 0)
        pr.addWidget(self.progress, 1)
        pr.addWidget(self.cancel_btn)
        self.live_label = QLabel("")    # "rendering…" and the frame rate of live renders
        self.live_label.setObjectName("live_label")
        self.inflight: dict[int, str] = {}          # request id -> op, of this canvas's requests
        self._started: dict[int, float] = {}        # request id -> when it was sent (for the ETA)
        self._live_pending: dict[str, dict] = {}    # op -> the newest live request waiting to be sent
        self._live_sent: dict[str, int] = {}        # op -> the live request in flight
        self._frame_times: deque[float] = deque(maxlen=30)
        self._cancelling = False
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.options: ConfigForm | None = None   # the loaded family's sample options (build_options)
        self.options_box = QVBoxLayout()           # where a subclass wants that form
        self._options_run = ""                     # the run whose values the form was last set to
        session.loaded.connect(self._on_loaded)
        session.loading.connect(self._on_loading)
        session.load_failed.connect(self._on_load_failed)
        session.load_refused.connect(self._on_load_refused)
        session.reset.connect(self._on_reset)
        session.checkpoint_changed.connect(self.on_checkpoint_changed)

    # ---- to implement ------------------------------------------------------------------------
    def apply_capabilities(self, caps: Capabilities) -> None:
        raise NotImplementedError

    def on_result(self, ev: dict) -> None:
        raise NotImplementedError

    def on_checkpoint_changed(self, path: str) -> None:
        """The window's checkpoint changed (it may not be loaded yet)."""

    def clear_pending(self) -> None:
        """Forget requests in flight (their replies will not come)."""

    # ---- the model's own options ----------------------------------------------------------------
    def build_options(self, caps: Capabilities, *, decode_only: bool = False, on_change=None) -> bool:
        """One editor per sample option of the loaded family (drawn from its options dataclass, as
        the Model panel draws the config), set to the run's values; decode_only keeps those that
        apply to rendering latents. False when the family is unknown to this GUI."""
        cls = options_class(caps)
        if cls is None:
            return False
        run = str(Path(self.session.loaded_checkpoint).parent)  # checkpoints of one run share a folder
        new = self.options is None or self.options.section_cls is not cls
        if new:
            if self.options is not None:
                self.options.deleteLater()
            self.options = ConfigForm(cls, include=[f.name for f in option_fields(cls, decode_only=decode_only)])
            self.options.layout().setContentsMargins(0, 0, 0, 0)  # aligned with the canvas's own form
            if on_change is not None:
                self.options.changed.connect(on_change)
            self.options_box.addWidget(self.options)
        if new or run != self._options_run:  # a newer checkpoint of the same run keeps what was set
            with signals_blocked(self.options):  # showing the run's values is not a change to act on
                self.options.set_values(self.session.options)
            self._options_run = run
        enable_by_capability(self.options, caps)
        return True

    def option_values(self) -> dict:
        return self.options.values() if self.options is not None else {}

    # ---- requests ------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> str:
        return self.session.checkpoint

    def request(self, op: str, **fields) -> int:
        rid = self.session.request(self, op, **fields)
        self.inflight[rid] = op
        self._started[rid] = time.monotonic()
        self.cancel_btn.setEnabled(True)
        return rid

    def request_live(self, op: str, **fields) -> int:
        """An interactive render: sent now when no `op` of this canvas is in flight, else kept as
        the one pending `op` (replacing an older pending one) and sent when the running one
        answers. Returns the id sent, or 0 when it waits (its result still arrives, as an `op`
        result: live results are shown whichever request they answer)."""
        if op in self._live_sent:
            self._live_pending[op] = fields
            self._show_live()
            return 0
        t = self._frame_times
        if t and time.monotonic() - t[-1] > SEQUENCE_GAP_S:
            t.clear()   # not a frame of the sequence before: its rate says nothing of this one
        rid = self.request(op, **fields)
        self._live_sent[op] = rid
        self._show_live()
        return rid

    def live_busy(self) -> bool:
        return bool(self._live_sent or self._live_pending)

    def frame_rate(self) -> float:
        """Live results per second over the recent ones of one sequence (0 with fewer than two)."""
        t = self._frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def _show_live(self) -> None:
        fps = self.frame_rate()
        rate = f"{fps:.1f} frames/s" if fps >= 1 else f"{fps:.2f} frames/s" if fps else ""
        self.live_label.setText(" · ".join(x for x in ("rendering…" if self.live_busy() else "", rate) if x))

    def on_done(self, rid: int, kind: str) -> None:
        """Called by the session after the final reply (result, error, cancelled) of request `rid`
        reached this canvas: it is no longer in flight; a waiting live request goes out now."""
        op = self.inflight.pop(rid, None)
        self._started.pop(rid, None)
        if op is not None and self._live_sent.get(op) == rid:
            del self._live_sent[op]
            if kind == "result":
                self._frame_times.append(time.monotonic())
            fields = self._live_pending.pop(op, None)
            if fields is not None and kind != "cancelled":
                self.request_live(op, **fields)
            self._show_live()
        if not self.inflight:
            self.cancel_btn.setEnabled(False)
            if self._cancelling and kind == "cancelled":
                self.progress.setRange(0, 1)
                self.progress.setValue(0)
                self.progress.setFormat("cancelled")
            self._cancelling = False

    def cancel(self) -> None:
        """Stop everything this canvas has in flight in the engine (and drop live requests waiting)."""
        self._live_pending.clear()
        if not self.inflight:
            return
        for rid in list(self.inflight):
            self.session.cancel(rid)
        self._cancelling = True
        self.progress.setFormat("cancelling…")
        self.cancel_btn.setEnabled(False)

    def on_progress(self, rid: int, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        text = f"{stage} %v / %m" if stage else "%v / %m"
        started = self._started.get(rid)
        if started is not None and 0 < done < total:
            left = (time.monotonic() - started) * (total - done) / done
            text += f" · {human_duration(left)} left"
        self.progress.setFormat(text)
        self.progress.setToolTip(text.replace("%v", str(done)).replace("%m", str(total)))  # if the bar clips it

    def on_failed(self, rid: int, message: str) -> None:
        self.progress.setRange(0, 1)  # stop a busy indicator
        self.progress.setValue(0)
        self.progress.setFormat("failed")
        self.status.setText(ERROR_STYLE.format(message))

    def on_cancelled(self, rid: int) -> None:
        pass  # asked for (Cancel: on_done says so) or a newer request of the same kind replaced it

    def show_error(self, message: str) -> None:
        self.status.setText(ERROR_STYLE.format(message))

    # ---- session events ------------------------------------------------------------------------
    def _on_loaded(self, caps: Capabilities) -> None:
        self.capabilities = caps
        self.apply_capabilities(caps)

    def _on_loading(self, path: str) -> None:
        self.status.setText("loading checkpoint…")

    def _forget_requests(self) -> None:
        self.inflight.clear()
        self._started.clear()
        self._live_pending.clear()
        self._live_sent.clear()
        self._cancelling = False
        self.cancel_btn.setEnabled(False)
        self._show_live()
        self.clear_pending()

    def _on_load_failed(self, message: str) -> None:
        self.capabilities = None
        self._forget_requests()
        self.show_error(message)

    def _on_load_refused(self, path: str, message: str) -> None:
        # the model loaded before stays, and so does everything this canvas holds for it
        self.show_error(f"{Path(path).name} was not opened ({failure_reason(message, path)}); still working on "
                        f"{Path(self.session.loaded_checkpoint).name}")

    def _on_reset(self, message: str) -> None:
        self.capabilities = None
        self._forget_requests()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.show_error(message)

    def showEvent(self, e):
        super().showEvent(e)
        self.session.ensure_loaded()  # a canvas on screen needs the window's checkpoint loaded
