"""The main window fits the screen it opens on: its first size is the size it would like or the
screen's available area less the window frame, whichever is less; a geometry remembered from a
larger screen (or another monitor) is shrunk and moved onto this one. A 1280×800 laptop gets a
window that fits, a 1920×1080 desktop the size the layout was made for."""
from __future__ import annotations

from PySide6.QtCore import QMargins, QRect, QSize
from PySide6.QtGui import QGuiApplication

# a window manager's title bar and borders, used until the real frame is known (after the first show)
FRAME_GUESS = QMargins(8, 34, 8, 8)


def frame_margins(window) -> QMargins:
    """The frame the window manager draws around `window` (zero without one, or before it is shown)."""
    f, g = window.frameGeometry(), window.geometry()
    return QMargins(g.left() - f.left(), g.top() - f.top(), f.right() - g.right(), f.bottom() - g.bottom())


def available_rect(window) -> QRect:
    """The part of the window's screen that windows may use (without panels and docks)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 800)


def fitted_size(want: QSize, avail: QRect, frame: QMargins) -> QSize:
    """`want`, or less where the window and its frame would not fit into `avail`."""
    return QSize(max(1, min(want.width(), avail.width() - frame.left() - frame.right())),
                 max(1, min(want.height(), avail.height() - frame.top() - frame.bottom())))


def fit_to_screen(window, want: QSize | None = None, *, move: bool = False) -> None:
    """Resize `window` to `want` (default: its size) within its screen's available area, frame
    included; `move`: also move it onto that area where it lies (partly) outside it, as a geometry
    restored from another monitor may."""
    avail = available_rect(window)
    frame = frame_margins(window)
    if frame.isNull():
        frame = FRAME_GUESS
    size = fitted_size(want or window.size(), avail, frame)
    if size != window.size():
        window.resize(size)
    if move:
        g = window.geometry()
        x = min(max(g.x(), avail.left() + frame.left()), avail.right() + 1 - frame.right() - g.width())
        y = min(max(g.y(), avail.top() + frame.top()), avail.bottom() + 1 - frame.bottom() - g.height())
        if (x, y) != (g.x(), g.y()):
            window.move(x - frame.left(), y - frame.top())   # move() places the frame's corner


def refit_shown(window) -> None:
    """Once shown under a window manager (its real frame known): fit again, frame included, where
    the guess was short (a thicker title bar). Without a window manager there is nothing to fix."""
    if frame_margins(window).isNull():
        return
    if not available_rect(window).contains(window.frameGeometry()):
        fit_to_screen(window, move=True)
