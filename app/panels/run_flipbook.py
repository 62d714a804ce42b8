"""The selected run's training images as a flip-book, and its checkpoints as thumbnails.

The flip-book shows whatever training artifacts the run declares (RunDir.artifacts(): its
artifacts.json, or what an older run has): a step slider flips through one artifact's images
(<its folder>/step_NNNNNN.png), and where the run declares more than one (a VAE: its samples and
its reconstructions) a picker above chooses which. It knows no artifact by name: the run says
what there is, the spec says its title and caption.

The checkpoint strip shows each checkpoint as the sample grid of its step; a click opens it."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListView, QListWidget, QListWidgetItem, QSlider, QTabBar,
                               QVBoxLayout, QWidget)

from app.qt_util import signals_blocked
from app.widgets.image_view import ImageView
from engine.core.artifacts import ArtifactSpec
from engine.runs.index import RunSummary, list_artifact_images
from engine.runs.rundir import RunDir

THUMB = 72
PATH_ROLE = Qt.UserRole
STEP_ROLE = Qt.UserRole + 1
NO_RUN = "No sample grids yet: a run writes one every training.sample_every steps."


def placeholder(spec: ArtifactSpec) -> str:
    return f"No {spec.title} yet: a run writes them every training.sample_every steps."


class CheckpointStrip(QListWidget):
    """One row of thumbnails, one per checkpoint: the sample grid of its step (else the newest one
    before it), so a checkpoint is picked by what it drew."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thumbs: dict[tuple[str, int], QIcon] = {}
        self.setViewMode(QListView.IconMode)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 18, THUMB + 24))
        self.setFixedHeight(THUMB + 42)  # one row of thumbnails and a scroll bar
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
        self.setToolTip("Checkpoints: click one to open it in the canvases")

    def show_checkpoints(self, s: RunSummary) -> None:
        """The run's checkpoints; the one picked stays picked when it is still there."""
        current = self.selected_path()
        grids = dict(s.samples)
        with signals_blocked(self):
            self.clear()
            for step, path in s.checkpoints:
                grid = grids.get(step) or next((grids[k] for k in sorted(grids, reverse=True) if k <= step), None)
                it = QListWidgetItem(self._thumb(grid), f"step {step}")
                it.setData(PATH_ROLE, str(path))
                it.setData(STEP_ROLE, step)
                it.setToolTip(f"{path}\nclick: open it in the canvases")
                self.addItem(it)
                if path == current:
                    self.setCurrentItem(it)
            for step, sigma_rel, path in s.reconstructed:   # post-hoc EMA: no step role, the slider keeps to training's
                grid = grids.get(step) or next((grids[k] for k in sorted(grids, reverse=True) if k <= step), None)
                it = QListWidgetItem(self._thumb(grid), f"{step} · σ {sigma_rel:g}")
                it.setData(PATH_ROLE, str(path))
                it.setToolTip(f"{path}\npost-hoc EMA of sigma_rel {sigma_rel:g} at step {step}\n"
                              f"click: open it in the canvases")
                self.addItem(it)
                if path == current:
                    self.setCurrentItem(it)
        if s.checkpoints:
            self.scrollToItem(self.currentItem() or self.item(self.count() - 1))

    def mark_step(self, step: int) -> None:
        """Pick the checkpoint of this step, if there is one (without opening it)."""
        for i in range(self.count()):
            if self.item(i).data(STEP_ROLE) == step:
                with signals_blocked(self):
                    self.setCurrentItem(self.item(i))

    def selected_path(self) -> Path | None:
        it = self.currentItem()
        return Path(it.data(PATH_ROLE)) if it is not None else None

    def _thumb(self, grid: Path | None) -> QIcon:
        if grid is None:
            pm = QPixmap(THUMB, THUMB)
            pm.fill(QColor("#d5d8dc"))
            return QIcon(pm)
        try:
            key = (str(grid), grid.stat().st_mtime_ns)
        except OSError:
            key = (str(grid), 0)
        if key not in self._thumbs:
            img = QImage(str(grid))
            if img.isNull():
                return self._thumb(None)
            side = min(img.width(), img.height())  # a wide grid (a few images) shows its first square
            img = img.copy(0, 0, side, side)
            mode = Qt.FastTransformation if img.width() <= THUMB else Qt.SmoothTransformation
            self._thumbs[key] = QIcon(QPixmap.fromImage(img.scaled(THUMB, THUMB, Qt.KeepAspectRatio, mode)))
        return self._thumbs[key]


class RunFlipbook(QWidget):
    checkpoint_opened = Signal(str)   # a checkpoint (.safetensors) clicked in the strip

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run: RunSummary | None = None
        self.specs: list[ArtifactSpec] = []   # what the run declares; the picker's tabs, in order
        self._steps: list[int] = []           # the slider's positions: the steps of the artifact's images
        self._paths: list[str] = []

        self.picker = QTabBar()
        self.picker.setDocumentMode(True)
        self.picker.setDrawBase(False)
        self.picker.setExpanding(False)
        self.picker.setToolTip("The images the run writes while it trains: pick which the slider flips through")
        self.picker.hide()
        self.image = ImageView(NO_RUN)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignCenter)
        self.caption.setWordWrap(True)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setPageStep(1)
        self.slider.setToolTip("Step through the run's images (a flip-book of training)")
        self.slider_label = QLabel("")
        self.slider_label.setMinimumWidth(110)
        self.checkpoints = CheckpointStrip()
        self.checkpoints_label = QLabel("<b>checkpoints</b> (click to open in the canvases)")

        lay = QVBoxLayout(self)
        lay.addWidget(self.picker)
        lay.addWidget(self.image, 1)
        lay.addWidget(self.caption)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.slider_label)
        lay.addLayout(row)
        lay.addWidget(self.checkpoints_label)
        lay.addWidget(self.checkpoints)

        self.picker.currentChanged.connect(self._on_pick)
        self.slider.valueChanged.connect(self._show)
        self.checkpoints.itemClicked.connect(self._on_checkpoint_clicked)
        self._show(0)

    @property
    def spec(self) -> ArtifactSpec | None:
        """The artifact the slider flips through."""
        i = self.picker.currentIndex()
        return self.specs[i] if 0 <= i < len(self.specs) else None

    # ---- the run -------------------------------------------------------------------------------
    def show_run(self, s: RunSummary | None, new: bool = False) -> None:
        """Show this run (None: none), or its news when it is the run shown: what it declares is
        read again (a new run writes artifacts.json as it starts), and the slider follows the
        newest image while it was on the newest one. new: it was just selected (its newest image)."""
        if s is None:
            self.clear()
            return
        old, self.run = self.run, s
        new = new or old is None or old.path != s.path
        self._set_specs(RunDir(s.path).artifacts())
        self._list_images(new_run=new)
        if new or old.checkpoints != s.checkpoints or old.samples != s.samples or old.reconstructed != s.reconstructed:
            self.checkpoints.show_checkpoints(s)
            self.checkpoints_label.setText(
                f"<b>checkpoints</b> ({len(s.checkpoints)}; click one to open it in the canvases)"
                if s.checkpoints else "<b>checkpoints</b>: none yet")

    def refresh(self) -> None:
        """Look for new images of the run shown (a live run writes them as it goes)."""
        if self.run is not None:
            self.show_run(self.run)

    def clear(self) -> None:
        self.run = None
        self._set_specs([])
        self.checkpoints.clear()
        self._set_images([], keep=None)

    def selected_checkpoint(self) -> Path | None:
        """The checkpoint picked in the strip, else the run's newest."""
        if self.run is None or not self.run.checkpoints:
            return None
        return self.checkpoints.selected_path() or self.run.checkpoints[-1][1]

    # ---- the artifact and its images -----------------------------------------------------------
    def _set_specs(self, specs: list[ArtifactSpec]) -> None:
        """The picker's tabs: one per declared artifact, the one picked staying picked where the
        run declares it too; shown only where there is a choice."""
        if specs == self.specs:
            return
        keep = self.spec.key if self.spec is not None else None
        self.specs = list(specs)
        with signals_blocked(self.picker):
            while self.picker.count():
                self.picker.removeTab(0)
            for spec in self.specs:
                self.picker.addTab(spec.title)
            keys = [spec.key for spec in self.specs]
            self.picker.setCurrentIndex(keys.index(keep) if keep in keys else 0)
        self.picker.setVisible(len(self.specs) > 1)

    def _on_pick(self, _index: int) -> None:
        self._list_images(new_run=False, force=True)

    def _list_images(self, new_run: bool, force: bool = False) -> None:
        """Read the artifact's images again; stay on the step shown unless the slider was on the
        newest (or this is another run: its newest)."""
        spec = self.spec
        images = list_artifact_images(self.run.path, spec) if self.run is not None and spec is not None else []
        if not (new_run or force) and [str(p) for _, p in images] == self._paths:
            return
        at_end = new_run or self.slider.value() >= self.slider.maximum()
        keep = self._steps[self.slider.value()] if self._steps and not at_end else None
        self._set_images(images, keep)

    def _set_images(self, images: list[tuple[int, Path]], keep: int | None) -> None:
        """keep: the step to show, if the images have it (else the newest)."""
        self._steps = [st for st, _ in images]
        self._paths = [str(p) for _, p in images]
        self.image.placeholder = placeholder(self.spec) if self.spec is not None else NO_RUN
        with signals_blocked(self.slider):
            self.slider.setRange(0, max(0, len(images) - 1))
            self.slider.setValue(self._steps.index(keep) if keep in self._steps else self.slider.maximum())
        self.slider.setEnabled(len(images) > 1)
        self._show(self.slider.value())

    def _show(self, index: int) -> None:
        spec = self.spec
        if not self._paths:
            self.image.clear()
            self.caption.setText("")
            self.slider_label.setText(f"no {spec.title}" if spec is not None else "")
            return
        n = len(self._paths)
        index = min(max(index, 0), n - 1)
        path, step = self._paths[index], self._steps[index]
        if self.image.path != path and not self.image.set_path(path):
            self.image.clear()   # unreadable (being written?): never the image shown before
            self.image.placeholder = f"{Path(path).name} could not be read"
        self.caption.setText(spec.caption_at(step) if spec is not None else "")
        self.slider_label.setText(f"step {step}  ({index + 1}/{n})")
        self.checkpoints.mark_step(step)

    def _on_checkpoint_clicked(self, item: QListWidgetItem) -> None:
        step = item.data(STEP_ROLE)
        if step in self._steps:
            self.slider.setValue(self._steps.index(step))
        self.checkpoint_opened.emit(item.data(PATH_ROLE))
