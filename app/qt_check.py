"""Before Qt starts: on a bare Linux the xcb platform plugin cannot load without a few system
libraries, and Qt then aborts with a long message that does not name the package. Say it in one
line first."""
from __future__ import annotations

import ctypes.util
import os
import sys

# library (as ctypes.util.find_library names it) -> the Debian/Ubuntu package that has it
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xkbcommon-x11": "libxkbcommon-x11-0",
                 "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
                 "xcb-render-util": "libxcb-render-util0", "EGL": "libegl1"}


def missing_qt_libraries(find=ctypes.util.find_library) -> list[str]:
    """The packages whose libraries the xcb plugin needs and this system lacks."""
    return [pkg for lib, pkg in XCB_LIBRARIES.items() if find(lib) is None]


def qt_platform_hint(platform: str | None = None, system: str = sys.platform, find=ctypes.util.find_library) -> str:
    """One line naming what to install, or "" when nothing is missing or xcb is not used."""
    platform = platform if platform is not None else os.environ.get("QT_QPA_PLATFORM", "")
    if not system.startswith("linux") or platform not in ("", "xcb"):
        return ""
    missing = missing_qt_libraries(find)
    if not missing:
        return ""
    return (f"GenLab: Qt's xcb platform plugin needs system libraries that are missing: install them with "
            f"`sudo apt install {' '.join(missing)}` (package names for Debian/Ubuntu), then start GenLab again.")
