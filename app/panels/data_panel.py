"""Data panel: built-in datasets, or a folder chosen or dropped; the folder's path, a preview grid
at a size a person can see, the count, and warnings in plain words (files skipped and why, far
too few images for the model). Loading happens in an engine process (data-preview), never on the
UI thread. A run folder dropped or chosen here opens as a run (run_dropped), never as a dataset;
while the panel's run trains, it is read-only and says so."""
from __future__ import annotations

import html
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QToolButton, QVBoxLayout)

from app.engine_client import DataPreviewJob
from app.qt_util import signals_blocked
from app.widgets.config_form import ConfigForm
from app.widgets.image_view import ImageView
from engine.core.config import DATASETS, DataConfig

DATASET_LABELS = {"digits": "Digits (1,797 handwritten)", "shapes": "Shapes (procedural, RGB)",
                  "faces": "Faces (scikit-image LFW subset)", "textures": "Textures (scikit-image photos)",
                  "folder": "Image folder…"}
PREVIEW_COUNT = 16                  # a 4 x 4 grid: each image large enough to see in the panel
PREVIEW_FIELDS = ("color", "count", "max_images", "seed")   # the data fields that change what is previewed
READ_ONLY_REASON = "Read-only while the run trains — stop it or start a new run to change the data."
WARN = "#b26b00"
RUN_MARKERS = ("status.json", "metrics.jsonl", "checkpoints")


def run_folder_of(path: str) -> str | None:
    """The run folder that `path` is (config.toml beside status.json, metrics.jsonl or
    checkpoints/), or whose samples/ or checkpoints/ it is; None for any other folder."""
    p = Path(path)
    candidates = [p, p.parent] if p.name in ("samples", "checkpoints") else [p]
    for folder in candidates:
        if (folder / "config.toml").is_file() and any((folder / m).exists() for m in RUN_MARKERS):
            return str(folder)
    return None


class ElidedPathLabel(QLabel):
    """A path that fits its width, elided in the middle (the start and the folder's own name stay
    readable); the full path in the tooltip."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.path = ""
        self.setTextFormat(Qt.PlainText)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)   # a long path never widens the panel

    def set_path(self, path: str) -> None:
        self.path = path
        self.setToolTip(path)
        self._elide()

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self.path, Qt.ElideMiddle, max(40, self.width())))


class WrappedLabel(QLabel):
    """A word-wrapped label whose minimum height is that of its wrapped text at its width, so a
    layout in a splitter keeps room for every line of a long warning instead of drawing the next
    widget over it (a wrapped QLabel reports the height of a guessed width)."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(text, parent)
        self.setWordWrap(True)

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit()

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self._fit()

    def _fit(self) -> None:
        self.setMinimumHeight(self.heightForWidth(max(1, self.width())) if self.text() else 0)


class DataPanel(QGroupBox):
    changed = Signal()
    previewed = Signal(dict)
    run_dropped = Signal(str)   # a run folder was dropped or chosen: the window opens it as a run

    def __init__(self, parent=None):
        super().__init__("Data", parent)
        self.setAcceptDrops(True)
        self.folder = ""
        self.read_only = False
        self.batch_size: int | None = None   # the model's, for the too-few-images warning
        self.params: int | None = None
        self.last_info: dict = {}
        self._build_widgets()
        self._lay_out()
        self.job = DataPreviewJob(self)
        self.job.done.connect(self._on_preview)
        self.job.failed.connect(self._on_failed)
        self._tmp = Path(tempfile.mkdtemp(prefix="genlab-preview-"))
        self._n = 0
        self._debounce = QTimer(self, singleShot=True, interval=300, timeout=self.refresh)
        self.combo.currentIndexChanged.connect(self._on_combo)
        self.browse.clicked.connect(self._choose_folder)
        self.open_folder.clicked.connect(self._open_in_file_manager)
        self.form.changed.connect(self._on_form)
        with signals_blocked(self.form):   # the defaults until a config is set, not the editors' minimums
            self.form.set_values(DataConfig())
        self._sync_fields()

    def _build_widgets(self) -> None:
        self.combo = QComboBox()
        for key in DATASETS:
            self.combo.addItem(DATASET_LABELS[key], key)
        self.combo.setItemData(self.combo.findData("digits"), "scikit-learn's 1,797 handwritten digits", Qt.ToolTipRole)
        # a narrow column cuts a long name short instead of growing wider (the list shows it whole)
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(8)
        self.browse = QPushButton("Choose folder…")
        self.browse.setToolTip("A folder of images (png, jpg, webp, bmp, tiff); subfolders become classes. "
                               "You can also drop a folder anywhere on this panel.")
        self.path_label = ElidedPathLabel()
        self.path_label.setObjectName("data_path")
        self.open_folder = QToolButton()
        self.open_folder.setText("Open")
        self.open_folder.setToolTip("Show this folder in the file manager")
        self.read_only_note = self._note_label("data_read_only")
        self.notice = self._note_label("data_notice")
        self.info = WrappedLabel("Drop a folder of images here, or pick a built-in dataset.")
        self.info.setObjectName("data_info")
        self.preview = ImageView("loading preview…")
        self.preview.setMinimumSize(160, 160)   # a 4 x 4 grid at about 40 pixels an image, at the least
        # it grows into the room the panel has, but asks for no more than its minimum: the panel
        # scrolls in its pane of the window's left column, which would otherwise make room for
        # the view's 320-pixel size hint and push the options out of sight
        self.preview.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Ignored)
        self.form = ConfigForm(DataConfig, exclude=("dataset", "path"))

    @staticmethod
    def _note_label(name: str) -> QLabel:
        label = WrappedLabel()
        label.setObjectName(name)
        label.setStyleSheet(f"color: {WARN};")
        label.hide()
        return label

    def _lay_out(self) -> None:
        # the dataset's name gets a row of its own (the window's left column can be 270 px wide);
        # under it the folder button, and the chosen folder's path with an Open button
        path_row = QHBoxLayout()
        path_row.addWidget(self.browse)
        path_row.addWidget(self.path_label, 1)
        path_row.addStretch(0)   # takes the room while no path shows
        path_row.addWidget(self.open_folder)
        lay = QVBoxLayout(self)
        lay.addWidget(self.combo)
        lay.addLayout(path_row)
        lay.addWidget(self.read_only_note)
        lay.addWidget(self.notice)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.info)
        lay.addWidget(self.form)
        self._show_path()

    # ---- model <-> view -----------------------------------------------------------------------
    def set_config(self, d: DataConfig) -> None:
        """Show a config's data section (also while read-only: the panel shows its run's data)."""
        with signals_blocked(self.combo):
            self.combo.setCurrentIndex(self.combo.findData(d.dataset))
        self.folder = d.path
        with signals_blocked(self.form):
            self.form.set_values(d)
        self._sync_fields()
        self._show_path()
        self._debounce.start()

    def values(self) -> dict:
        return {"dataset": self.combo.currentData(), "path": self.folder, **self.form.values()}

    def set_folder(self, folder: str) -> bool:
        """A folder dropped or chosen (here, on the window, from a menu). A run folder is not a
        dataset: run_dropped is emitted for the window to open it. While read-only nothing changes.
        True when the folder became the dataset."""
        self._say("")
        run = run_folder_of(folder)
        if run:
            self._say(f"{Path(run).name} is a run folder, not a folder of images: opening it as a run.")
            self.run_dropped.emit(run)
            return False
        if self.read_only:
            self._say(f"{Path(folder).name} not used: {self.read_only_note.text()}")
            return False
        self.folder = folder
        with signals_blocked(self.combo):
            self.combo.setCurrentIndex(self.combo.findData("folder"))
        self._sync_fields()
        self._show_path()
        self.changed.emit()
        self.refresh()
        return True

    def set_model_hint(self, batch_size: int | None, params: int | None = None) -> None:
        """The chosen model's batch size (and parameter count, if known): a dataset with fewer
        images than a batch, or far too few for any generative model, is warned about."""
        if (batch_size, params) == (self.batch_size, self.params):
            return
        self.batch_size, self.params = batch_size, params
        self._debounce.start()

    def set_read_only(self, on: bool, reason: str = "") -> None:
        """Read-only while the panel's run trains: the dataset, the folder, drops and the fields
        are locked, and a visible line says why. Off: all of it comes back."""
        self.read_only = on
        for w in (self.combo, self.browse, self.form):
            w.setEnabled(not on)
        self.read_only_note.setText(reason or READ_ONLY_REASON)
        self.read_only_note.setVisible(on)
        if not on:
            self._say("")

    # ---- events -------------------------------------------------------------------------------
    def _sync_fields(self) -> None:
        procedural = self.combo.currentData() in ("shapes", "textures")
        for name in ("count", "seed"):
            self.form.editors[name].setEnabled(procedural)

    def _show_path(self) -> None:
        shown = self.combo.currentData() == "folder" and bool(self.folder)
        self.path_label.set_path(self.folder if shown else "")
        self.path_label.setVisible(shown)
        self.open_folder.setVisible(shown)

    def _say(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def _on_combo(self) -> None:
        self._say("")
        self._sync_fields()
        self._show_path()
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

    def _open_in_file_manager(self) -> None:
        if self.folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.folder))

    def _dropped_folder(self, e) -> str | None:
        urls = e.mimeData().urls() if e.mimeData().hasUrls() else []
        path = urls[0].toLocalFile() if urls else ""
        return path if path and Path(path).is_dir() else None

    def dragEnterEvent(self, e):
        folder = self._dropped_folder(e)
        # read-only: only a run folder is taken here (it opens the run); others go to the window
        if folder and (not self.read_only or run_folder_of(folder)):
            e.acceptProposedAction()

    def dropEvent(self, e):
        folder = self._dropped_folder(e)
        if folder:
            self.set_folder(folder)
            e.acceptProposedAction()

    def refresh(self) -> None:
        v = self.values()
        if v["dataset"] == "folder" and not v["path"]:
            self.info.setText("Choose or drop a folder of images.")
            self.preview.clear()
            return
        self._n += 1
        self.info.setText("Loading…")
        self.job.preview(v["dataset"], v["path"], v["resolution"], self._tmp / f"preview_{self._n}.png",
                         n=PREVIEW_COUNT, fields={k: v[k] for k in PREVIEW_FIELDS},
                         batch_size=self.batch_size, params=self.params)

    def _on_preview(self, info: dict) -> None:
        self.last_info = info
        self.preview.set_path(info["preview"])
        res, shown = info["resolution"], info.get("preview_size", info["resolution"])
        self.preview.setToolTip(f"Some of the images, shown at {shown}×{shown} pixels; "
                                f"training uses {res}×{res}.")
        classes = info.get("classes", [])
        cls = f"{len(classes)} classes" if len(classes) > 1 else "no labels"
        text = (f"<b>{info['images']:,} images</b>, {res}×{res} for training, "
                f"{'RGB' if info['channels'] == 3 else 'grayscale'}, {cls}")
        for warning in info.get("warnings", []):
            text += f"<br><span style='color:{WARN}'>⚠ {html.escape(warning)}</span>"
        self.info.setText(text)
        self.info.setToolTip(skipped_files_tooltip(info.get("skipped_files", []), info.get("skipped", 0)))
        self.previewed.emit(info)

    def _on_failed(self, message: str) -> None:
        self.last_info = {}
        self.preview.clear()
        self.info.setToolTip("")
        self.info.setText(f"<span style='color:#c0392b'>✖ {html.escape(message)}</span>")


def skipped_files_tooltip(files: list, total: int, lines: int = 40) -> str:
    """'Skipped files:' and one 'name — reason' line each (the first `lines` of them)."""
    if not files:
        return ""
    rows = [f"{name} — {why}" for name, why in files[:lines]]
    if total > len(rows):
        rows.append(f"… and {total - len(rows)} more")
    return "Skipped files:\n" + "\n".join(rows)
