"""Small Qt helpers."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def signals_blocked(obj):
    prev = obj.blockSignals(True)
    try:
        yield obj
    finally:
        obj.blockSignals(prev)


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def scratch_settings():
    """Settings that last only as long as this process (a temporary INI file): for windows and
    canvases built without the user's settings (tests, screenshots), so nothing leaks into them."""
    import tempfile
    from PySide6.QtCore import QSettings
    handle, path = tempfile.mkstemp(prefix="genlab-settings-", suffix=".ini")
    import os
    os.close(handle)
    return QSettings(path, QSettings.IniFormat)


def scrolled(widget):
    """`widget` in a scroll area that resizes it: below its minimum size it scrolls instead of
    forcing the window wider (the window must fit a 1024×640 screen)."""
    from PySide6.QtWidgets import QFrame, QScrollArea
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    return area
