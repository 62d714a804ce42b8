"""Render resources/icons/genlab.svg to the PNG sizes the desktop install and the window use:

    .venv/bin/python packaging/render_icons.py

Uses PySide6's QtSvg (part of PySide6-Essentials), offscreen, so it runs without a display."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (48, 128, 256)


def render(svg: Path = ICON_DIR / "genlab.svg", out_dir: Path = ICON_DIR, sizes=SIZES) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    if QGuiApplication.instance() is None:
        render.app = QGuiApplication(sys.argv[:1])  # kept alive while Qt renders
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    written = []
    for size in sizes:
        img = QImage(size, size, QImage.Format_ARGB32_Premultiplied)
        img.fill(Qt.transparent)
        painter = QPainter(img)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setRenderHint(QPainter.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        path = out_dir / f"genlab-{size}.png"
        if not img.save(str(path)):
            raise SystemExit(f"{path}: could not write it")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in render():
        print(p)
