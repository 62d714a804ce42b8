"""What the mask editor remembers between sessions (brush, overlay, last folder), kept in a
QSettings under one group so the editor's keys never mix with another widget's."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QSettings

KEY = "mask_editor/"  # QSettings("GenLab", "GenLab") group of everything remembered here


class MaskEditorSettings:
    """Typed reads with a fallback, and writes that are held back while the editor restores its
    state (reading a value back is not a change, so opening an editor writes nothing)."""

    def __init__(self, settings: QSettings | None = None):
        self.store = settings if settings is not None else QSettings("GenLab", "GenLab")
        self._restoring = False

    def value(self, name: str, default, kind):
        try:
            v = self.store.value(KEY + name, default, type=kind)
            return default if v is None else v
        except (TypeError, ValueError):  # a hand-edited or foreign value: fall back
            return default

    def save(self, name: str, value) -> None:
        if not self._restoring:
            self.store.setValue(KEY + name, value)

    @contextmanager
    def restoring(self):
        """Within: save() writes nothing."""
        self._restoring = True
        try:
            yield
        finally:
            self._restoring = False

    def last_folder(self) -> str:
        return str(self.value("last_folder", str(Path.home()), str))

    def remember_folder(self, path) -> None:
        self.save("last_folder", str(Path(path).resolve().parent))
