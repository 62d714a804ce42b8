"""The base of every canvas: a view of the shared WorkerSession. It hears which checkpoint the window
works on, what the loaded model can do (apply_capabilities), and the replies to its own requests
only; it shows their progress in `self.progress` and errors in `self.status`, and resets when the
worker dies. Subclasses build their controls and implement apply_capabilities and on_result."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

from app.qt_util import scratch_settings, signals_blocked
from app.widgets.config_form import ConfigForm
from app.worker_session import WorkerSession
from engine.capabilities import Capabilities
from engine.families import FAMILIES, family_spec
from engine.sections.common import option_fields

ERROR_STYLE = "<span style='color:#c0392b'>✖ {}</span>"


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
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.options: ConfigForm | None = None   # the loaded family's sample options (build_options)
        self.options_box = QVBoxLayout()           # where a subclass wants that form
        self._options_run = ""                     # the run whose values the form was last set to
        session.loaded.connect(self._on_loaded)
        session.loading.connect(self._on_loading)
        session.load_failed.connect(self._on_load_failed)
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
        return self.session.request(self, op, **fields)

    def on_progress(self, rid: int, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{stage} %v / %m" if stage else "%v / %m")

    def on_failed(self, rid: int, message: str) -> None:
        self.progress.setRange(0, 1)  # stop a busy indicator
        self.progress.setValue(0)
        self.progress.setFormat("failed")
        self.status.setText(ERROR_STYLE.format(message))

    def on_cancelled(self, rid: int) -> None:
        pass  # a newer request of the same kind replaced it: its reply is what counts

    def show_error(self, message: str) -> None:
        self.status.setText(ERROR_STYLE.format(message))

    # ---- session events ------------------------------------------------------------------------
    def _on_loaded(self, caps: Capabilities) -> None:
        self.capabilities = caps
        self.apply_capabilities(caps)

    def _on_loading(self, path: str) -> None:
        self.status.setText("loading checkpoint…")

    def _on_load_failed(self, message: str) -> None:
        self.capabilities = None
        self.clear_pending()
        self.show_error(message)

    def _on_reset(self, message: str) -> None:
        self.capabilities = None
        self.clear_pending()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.show_error(message)

    def showEvent(self, e):
        super().showEvent(e)
        self.session.ensure_loaded()  # a canvas on screen needs the window's checkpoint loaded
