"""Pieces the latent canvases share: parsing seed lists, the images a person drops, and copying a
rendered PNG to where they want it."""
from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtWidgets import QWidget

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def parse_sources(text: str) -> list:
    """'1, 2, 5-7, /path/face.png' -> [1, 2, 5, 6, 7, '/path/face.png']. Raises ValueError naming the
    bad item."""
    out: list = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.isdigit():
            out.append(int(part))
        elif "-" in part and all(x.strip().isdigit() for x in part.split("-", 1)):
            a, b = (int(x) for x in part.split("-", 1))
            if b < a or b - a > 64:
                raise ValueError(f"{part!r}: a seed range runs low-high, at most 64 seeds")
            out += list(range(a, b + 1))
        elif Path(part).suffix.lower() in IMAGE_SUFFIXES:
            if not Path(part).is_file():
                raise ValueError(f"{part}: image not found")
            out.append(part)
        else:
            raise ValueError(f"{part!r} is neither a seed, a seed range like 3-7, nor an image file")
    return out


def dropped_images(mime) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if Path(u.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES]


def copy_result(src: str, dst: str) -> None:
    shutil.copyfile(src, dst)


class LatentCanvas(QWidget):
    """A canvas on the shared engine worker: it remembers the checkpoint and capabilities the worker
    last reported, and shows progress and errors of its own requests (those `owns` accepts) in
    `self.progress` and `self.status`, which subclasses create."""

    def __init__(self, worker, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.worker = worker
        self.checkpoint = ""
        self.capabilities: dict = {}
        worker.ready.connect(self._on_ready)
        worker.result_event.connect(self.on_result)
        worker.stage_progress.connect(self._on_progress)
        worker.failed.connect(self._on_failed)

    def set_checkpoint(self, path: str) -> None:
        self.checkpoint = path

    def owns(self, rid: int) -> bool:
        raise NotImplementedError

    def apply_capabilities(self, caps: dict) -> None:
        raise NotImplementedError

    def on_result(self, ev: dict) -> None:
        raise NotImplementedError

    def forget(self, rid: int) -> None:
        """A request of this canvas ended in an error."""

    def _on_ready(self, ev: dict) -> None:
        self.capabilities = ev.get("capabilities", {})
        self.checkpoint = ev.get("checkpoint", self.checkpoint)
        self.apply_capabilities(self.capabilities)

    def _on_progress(self, rid: int, stage: str, done: int, total: int) -> None:
        if self.owns(rid):
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"{stage} %v / %m" if stage else "%v / %m")

    def _on_failed(self, rid: int, message: str) -> None:
        if self.owns(rid):
            self.forget(rid)
            self.progress.setFormat("failed")
            self.status.setText(f"<span style='color:#c0392b'>✖ {message}</span>")
