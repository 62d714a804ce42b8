"""Data panel: built-in datasets, or a folder chosen or dropped; a preview grid and the count.
Loading happens in an engine process (data-preview), never on the UI thread."""
from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout)

from app.engine_client import DataPreviewJob
from app.qt_util import signals_blocked
from app.widgets.config_form import ConfigForm
from app.widgets.image_view import ImageView
from engine.config import DATASETS, DataConfig

DATASET_LABELS = {"digits": "Digits (scikit-learn, 1,797 handwritten)", "shapes": "Shapes (procedural, RGB)",
                  "faces": "Faces (scikit-image LFW subset)", "textures": "Textures (scikit-image photos)",
                  "folder": "Image folder…"}


class DataPanel(QGroupBox):
    changed = Signal()
    previewed = Signal(dict)

    def __init__(self, parent=None):
        super().__init__("Data", parent)
        self.setAcceptDrops(True)
        self.folder = ""
        self.combo = QComboBox()
        for key in DATASETS:
            self.combo.addItem(DATASET_LABELS[key], key)
        self.browse = QPushButton("Choose folder…")
        self.browse.setToolTip("A folder of images (png, jpg, webp, bmp, tiff); subfolders become classes. "
                               "You can also drop a folder anywhere on this panel.")
        self.info = QLabel("Drop a folder of images here, or pick a built-in dataset.")
        self.info.setWordWrap(True)
        self.info.setObjectName("data_info")
        self.preview = ImageView("loading preview…")
        self.preview.setMinimumSize(160, 160)
        self.form = ConfigForm(DataConfig, exclude=("dataset", "path"))
        row = QHBoxLayout()
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.info)
        lay.addWidget(self.form)
        self.job = DataPreviewJob(self)
        self.job.done.connect(self._on_preview)
        self.job.failed.connect(self._on_failed)
        self._tmp = Path(tempfile.mkdtemp(prefix="genlab-preview-"))
        self._n = 0
        self._debounce = QTimer(self, singleShot=True, interval=300, timeout=self.refresh)
        self.combo.currentIndexChanged.connect(self._on_combo)
        self.browse.clicked.connect(self._choose_folder)
        self.form.changed.connect(self._on_form)
        self.last_info: dict = {}

    # ---- model <-> view -----------------------------------------------------------------------
    def set_config(self, d: DataConfig) -> None:
        with signals_blocked(self.combo):
            self.combo.setCurrentIndex(self.combo.findData(d.dataset))
        self.folder = d.path
        with signals_blocked(self.form):
            self.form.set_values(d)
        self._sync_fields()
        self._debounce.start()

    def values(self) -> dict:
        return {"dataset": self.combo.currentData(), "path": self.folder, **self.form.values()}

    def set_folder(self, folder: str) -> None:
        self.folder = folder
        with signals_blocked(self.combo):
            self.combo.setCurrentIndex(self.combo.findData("folder"))
        self.changed.emit()
        self.refresh()

    # ---- events -------------------------------------------------------------------------------
    def _sync_fields(self) -> None:
        procedural = self.combo.currentData() in ("shapes", "textures")
        for name in ("count", "seed"):
            self.form.editors[name].setEnabled(procedural)

    def _on_combo(self) -> None:
        self._sync_fields()
        if self.combo.currentData() == "folder" and not self.folder:
            self._choose_folder()
        self.changed.emit()
        self._debounce.start()

    def _on_form(self) -> None:
        self.changed.emit()
        self._debounce.start()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of images", self.folder or str(Path.home()))
        if folder:
            self.set_folder(folder)

    def dragEnterEvent(self, e):
        urls = e.mimeData().urls() if e.mimeData().hasUrls() else []
        if urls and Path(urls[0].toLocalFile()).is_dir():
            e.acceptProposedAction()

    def dropEvent(self, e):
        self.set_folder(e.mimeData().urls()[0].toLocalFile())

    def refresh(self) -> None:
        v = self.values()
        if v["dataset"] == "folder" and not v["path"]:
            self.info.setText("Choose or drop a folder of images.")
            self.preview.clear()
            return
        self._n += 1
        self.info.setText("Loading…")
        self.job.preview(v["dataset"], v["path"], v["resolution"], self._tmp / f"preview_{self._n}.png")

    def _on_preview(self, info: dict) -> None:
        self.last_info = info
        self.preview.set_path(info["preview"])
        classes = info.get("classes", [])
        cls = f"{len(classes)} classes" if len(classes) > 1 else "no labels"
        text = (f"<b>{info['images']:,} images</b>, {info['resolution']}×{info['resolution']}, "
                f"{'RGB' if info['channels'] == 3 else 'grayscale'}, {cls}")
        if info.get("warning"):
            text += f"<br><span style='color:#b26b00'>⚠ {info['warning']}</span>"
        self.info.setText(text)
        self.previewed.emit(info)

    def _on_failed(self, message: str) -> None:
        self.last_info = {}
        self.preview.clear()
        self.info.setText(f"<span style='color:#c0392b'>✖ {message}</span>")
