"""The app icon (resources/icons/: genlab.svg and its PNG renders, packaging/render_icons.py)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon

# resources/ sits beside app/ in a checkout, an installed tree and a PyInstaller bundle alike
ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
PNG_SIZES = (48, 128, 256)


def icon_paths() -> list[Path]:
    """The icon files that exist, PNGs first (every Qt can read those), then the SVG."""
    files = [ICON_DIR / f"genlab-{s}.png" for s in PNG_SIZES] + [ICON_DIR / "genlab.svg"]
    return [p for p in files if p.is_file()]


def app_icon() -> QIcon:
    """GenLab's window icon: the PNG renders at their sizes, or the SVG alone if they are missing
    (Qt scales it); an empty QIcon (Qt's default icon) when neither is there."""
    icon = QIcon()
    for size in PNG_SIZES:
        png = ICON_DIR / f"genlab-{size}.png"
        if png.is_file():
            icon.addFile(str(png), QSize(size, size))
    svg = ICON_DIR / "genlab.svg"
    if icon.isNull() and svg.is_file():
        icon.addFile(str(svg))
    return icon
