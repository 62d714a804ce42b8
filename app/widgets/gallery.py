"""A gallery of sampled images: thumbnails with their seed and class, a history of recent batches,
and per-image actions (use this seed, copy, save one, save all). The PNG files come from the
engine (engine/ops/sample.py) and carry their generation parameters, so saving copies the file as
it is: a saved image still says how it was made.

The gallery only shows batches and reports what a person picked: `image_selected` (a path to
enlarge, or the grid) and `use_seed` (a GalleryImage), and says what it did (`message`) or what
failed (`failed`); the canvas decides what those mean."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMenu,
                               QToolButton, QVBoxLayout, QWidget)

from app.qt_util import scratch_settings

THUMB = 72          # thumbnail size (px): an 8×8 sample at 9×, nearest, stays crisp
HISTORY = 10        # batches kept in the history
SAVE_FOLDER_KEY = "gallery/save_folder"


@dataclass
class GalleryImage:
    path: str
    seed: int
    cls: int | None = None      # class index (None: unconditional)
    class_name: str = ""        # how the model names that class

    def named(self) -> bool:
        return bool(self.class_name) and self.class_name != str(self.cls)   # digits are named "0".."9"

    def caption(self) -> str:
        if self.cls is None:
            return f"seed {self.seed}"
        return f"seed {self.seed}\n" + (self.class_name if self.named() else f"class {self.cls}")

    def tooltip(self) -> str:
        cls = "" if self.cls is None else f", class {self.cls}" + (f" ({self.class_name})" if self.named() else "")
        return (f"seed {self.seed}{cls}\n{Path(self.path).name}\n"
                "click: enlarge · right-click: use this seed, copy, save")


@dataclass
class Batch:
    grid: str                   # the grid PNG
    images: list[GalleryImage]
    seed: int
    n: int
    note: str = ""              # e.g. the class and the checkpoint step
    when: float = field(default_factory=time.time)

    def title(self) -> str:
        parts = [time.strftime("%H:%M:%S", time.localtime(self.when)), f"seed {self.seed}",
                 f"{self.n} image{'s' if self.n != 1 else ''}"]
        return " · ".join(parts + ([self.note] if self.note else []))

    def files_exist(self) -> bool:
        return Path(self.grid).is_file() and all(Path(im.path).is_file() for im in self.images)


def thumbnail(path: str, size: int = THUMB) -> QPixmap:
    """A square-fitting thumbnail: small images blown up with nearest (their pixels stay sharp),
    large ones scaled down smoothly."""
    img = QImage(path)
    if img.isNull():
        return QPixmap()
    mode = Qt.FastTransformation if max(img.width(), img.height()) <= size else Qt.SmoothTransformation
    return QPixmap.fromImage(img.scaled(size, size, Qt.KeepAspectRatio, mode))


class Gallery(QWidget):
    image_selected = Signal(str)    # the image to show enlarged (the grid's path when none is picked)
    use_seed = Signal(object)       # GalleryImage: its seed (and class) for the next batch
    message = Signal(str)           # what happened ("saved …"), for the canvas's status line
    failed = Signal(str)            # what went wrong (a save, files gone), for the canvas to show as an error

    def __init__(self, settings: QSettings | None = None, parent=None):
        super().__init__(parent)
        self.settings = settings if settings is not None else scratch_settings()
        self.batches: list[Batch] = []      # newest first
        self.history = QComboBox()
        self.history.setToolTip("Recent batches: pick one to show it again")
        self.history.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 24, THUMB + 40))   # room for two caption lines
        self.list.setResizeMode(QListWidget.Adjust)             # re-flow on resize
        self.list.setMovement(QListWidget.Static)
        self.list.setUniformItemSizes(True)
        self.list.setWordWrap(True)
        self.list.setContextMenuPolicy(Qt.CustomContextMenu)

        self.use_seed_action = QAction("Use this seed", self)
        self.use_seed_action.setToolTip("Sample again from this image's seed and class: "
                                        "it comes first in the next batch")
        self.copy_action = QAction("Copy", self)
        self.copy_action.setShortcut(QKeySequence.Copy)
        self.copy_action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        self.copy_action.setToolTip("Copy the image to the clipboard")
        self.save_action = QAction("Save…", self)
        self.save_action.setToolTip("Save this image as a PNG (with the parameters that made it)")
        self.save_all_action = QAction("Save all…", self)
        self.save_all_action.setToolTip("Save every image of this batch into a folder (with their parameters)")
        self.grid_action = QAction("Whole grid", self)
        self.grid_action.setToolTip("Show the batch as one grid again")
        self.addAction(self.copy_action)   # Ctrl+C while the gallery has focus
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for a in (self.use_seed_action, self.copy_action, self.save_action, self.save_all_action, self.grid_action):
            b = QToolButton()
            b.setDefaultAction(a)
            buttons.addWidget(b)
        buttons.addStretch(1)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Batch"))
        top.addWidget(self.history, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)

        self.history.currentIndexChanged.connect(self.show_batch)
        self.list.currentRowChanged.connect(self._on_row)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.use_seed_action.triggered.connect(self._use_seed)
        self.copy_action.triggered.connect(self.copy_current)
        self.save_action.triggered.connect(self._save)
        self.save_all_action.triggered.connect(self._save_all)
        self.grid_action.triggered.connect(self.show_grid)
        self._enable()

    # ---- batches -------------------------------------------------------------------------------
    def add_batch(self, batch: Batch) -> None:
        """A new batch goes first in the history (the oldest beyond HISTORY is forgotten) and is shown."""
        self.batches.insert(0, batch)
        del self.batches[HISTORY:]
        self.history.blockSignals(True)   # one show_batch below, not one per combo change
        self.history.clear()
        for b in self.batches:
            self.history.addItem(b.title())
        self.history.setCurrentIndex(0)
        self.history.blockSignals(False)
        self.show_batch(0)

    def current_batch(self) -> Batch | None:
        i = self.history.currentIndex()
        return self.batches[i] if 0 <= i < len(self.batches) else None

    def show_batch(self, index: int) -> None:
        self.list.clear()
        batch = self.batches[index] if 0 <= index < len(self.batches) else None
        if batch is not None and not batch.files_exist():
            self.failed.emit(f"the files of the batch from {batch.title()} are gone (the engine's cache was cleared)")
            batch = None
        if batch is not None:
            for im in batch.images:
                item = QListWidgetItem(QIcon(thumbnail(im.path)), im.caption())
                item.setToolTip(im.tooltip())
                item.setTextAlignment(Qt.AlignHCenter | Qt.AlignTop)
                self.list.addItem(item)
        self._enable()
        self.image_selected.emit(batch.grid if batch is not None else "")

    def show_grid(self) -> None:
        """No image picked: the canvas shows the whole grid."""
        self.list.setCurrentRow(-1)
        self.list.clearSelection()
        batch = self.current_batch()
        self.image_selected.emit(batch.grid if batch is not None else "")

    def clear(self) -> None:
        self.batches.clear()
        self.history.clear()
        self.list.clear()
        self._enable()

    # ---- images --------------------------------------------------------------------------------
    def count(self) -> int:
        return self.list.count()

    def image(self, row: int) -> GalleryImage | None:
        batch = self.current_batch()
        return batch.images[row] if batch is not None and 0 <= row < len(batch.images) else None

    def current_image(self) -> GalleryImage | None:
        return self.image(self.list.currentRow())

    def select(self, row: int) -> None:
        self.list.setCurrentRow(row)

    def copy_current(self) -> bool:
        im = self.current_image()
        if im is None:
            return False
        QGuiApplication.clipboard().setImage(QImage(im.path))
        self.message.emit(f"copied the image of seed {im.seed}")
        return True

    def save_current_to(self, dest: str) -> None:
        """The PNG as the engine wrote it (its parameters included). Raises OSError."""
        im = self.current_image()
        if im is None:
            raise ValueError("no image picked")
        shutil.copyfile(im.path, dest)
        self.message.emit(f"saved {dest}")

    def save_all_to(self, folder: str) -> list[str]:
        """Every image of the shown batch into `folder` under its own name (seed in it), and the grid."""
        batch = self.current_batch()
        if batch is None:
            return []
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for src in [im.path for im in batch.images] + [batch.grid]:
            dest = out / Path(src).name
            shutil.copyfile(src, dest)
            paths.append(str(dest))
        self.message.emit(f"saved {len(batch.images)} images and the grid into {folder}")
        return paths

    # ---- private -------------------------------------------------------------------------------
    def _on_row(self, row: int) -> None:
        self._enable()
        im = self.image(row)
        if im is not None:
            self.image_selected.emit(im.path)

    def _enable(self) -> None:
        picked = self.current_image() is not None
        for a in (self.use_seed_action, self.copy_action, self.save_action):
            a.setEnabled(picked)
        shown = self.list.count() > 0
        self.save_all_action.setEnabled(shown)
        self.grid_action.setEnabled(shown)
        self.history.setEnabled(bool(self.batches))

    def _use_seed(self) -> None:
        im = self.current_image()
        if im is not None:
            self.use_seed.emit(im)

    def _context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        self.list.setCurrentItem(item)
        menu = QMenu(self)
        menu.addActions([self.use_seed_action, self.copy_action, self.save_action])
        menu.addSeparator()
        menu.addAction(self.save_all_action)
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def _folder(self) -> str:
        return str(self.settings.value(SAVE_FOLDER_KEY, str(Path.home())))

    def _save(self) -> None:
        im = self.current_image()
        if im is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the image", str(Path(self._folder()) / Path(im.path).name),
                                              "PNG (*.png)")
        if path:
            self._saving(lambda: self.save_current_to(path), path)

    def _save_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save every image of this batch into", self._folder())
        if folder:
            self._saving(lambda: self.save_all_to(folder), folder)

    def _saving(self, save, where: str) -> None:
        try:
            save()
        except OSError as e:
            self.failed.emit(f"cannot save {where}: {e.strerror or e}")
            return
        self.settings.setValue(SAVE_FOLDER_KEY, str(Path(where).parent if where.endswith(".png") else where))
