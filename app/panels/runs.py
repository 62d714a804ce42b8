"""Runs browser: the runs under the runs folder (and any folder added, such as one a cluster writes
to), each with its state, family, dataset, step, best quality score and a loss sparkline. A timer
rescans every few seconds (stat calls, plus the metrics lines appended since), so a live run moves
and a run started from a shell appears by itself.

The selected run shows its sample grids with a step slider (a flip-book of training), its
checkpoints as thumbnails (a click opens one in the canvases), its config and, under the list, its
curves. Actions: open, resume, continue longer, duplicate the config, export, rename, delete to the
trash; several selected runs can be compared (app/panels/run_compare.py).

Everything is read from the run directories (engine/runs/index.py); the window connects the
signals to the panels that train and sample."""
from __future__ import annotations

import html
import math
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
                               QListView, QListWidget, QListWidgetItem, QMessageBox, QPlainTextEdit, QPushButton,
                               QSlider, QSpinBox, QSplitter, QTabWidget, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                               QWidget)

from app.panels.family_compare import FamilyCompare
from app.panels.plots_panel import LossPlot, MetricPlot
from app.panels.run_compare import RunCompare
from app.qt_util import FlowLayout, scratch_settings, signals_blocked
from app.run_watcher import RunWatcher
from app.widgets.image_view import ImageView
from engine.core import metrics
from engine.core.families import FAMILIES, LOSS_PLOT
from engine.core.logkeys import short
from engine.runs.fileops import export_checkpoint, export_config, rename_run, trash
from engine.runs.index import RunsIndex, RunSummary

FOLDERS_KEY = "runs_browser/folders"
POLL_MS = 2000
COLUMNS = ("run", "state", "family", "dataset", "step", "best", "loss")
C_NAME, C_STATE, C_FAMILY, C_DATASET, C_STEP, C_BEST, C_LOSS = range(len(COLUMNS))
SPARK = QSize(84, 20)
THUMB = 72
PATH_ROLE = Qt.UserRole
KIND_ROLE = Qt.UserRole + 1

STATE_COLORS = {"running": "#1e8449", "starting": "#1e8449", "paused": "#b9770e", "interrupted": "#ca6f1e",
                "failed": "#c0392b", "stopped": "#7d3c98", "finished": "#2e4053", "no status": "#7f8c8d"}


def metric_label(key: str) -> str:
    """'quality/fd_domain' -> 'FD-domain' (GenLab's own features), 'quality/fid' -> 'FID' (the
    metric registry's titles, engine/core/metrics.py)."""
    return metrics.label(short(key))


def sparkline(values, size: QSize = SPARK, color: str = "#1f4e99") -> QPixmap:
    """A small line of the last loss values, on a log scale when they are all positive."""
    pm = QPixmap(size)
    pm.fill(Qt.transparent)
    vals = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if len(vals) < 2:
        return pm
    if all(v > 0 for v in vals):
        vals = [math.log10(v) for v in vals]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    w, h, pad = size.width(), size.height(), 2
    pts = [(pad + i * (w - 2 * pad) / (len(vals) - 1), pad + (hi - v) / span * (h - 2 * pad)) for i, v in enumerate(vals)]
    path = QPainterPath()
    path.moveTo(*pts[0])
    for x, y in pts[1:]:
        path.lineTo(x, y)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    p.setPen(QPen(QColor(color), 1.3))
    p.drawPath(path)
    p.setBrush(QColor(color))
    p.drawEllipse(int(pts[-1][0]) - 2, int(pts[-1][1]) - 2, 4, 4)
    p.end()
    return pm


def best_text(s: RunSummary) -> tuple[str, str]:
    """The best-metric cell and its tooltip (every quality score's best, with its step)."""
    head = s.headline_metric()
    if head is None:
        return "–", "No sample-quality pass logged (Metrics → every N steps)"
    key, value, step = head
    tip = "\n".join(f"best {metric_label(k)}: {v:.4g} at step {st}" for k, (v, st) in sorted(s.best.items()))
    return f"{metric_label(key)} {value:.3g}", tip


def step_text(s: RunSummary) -> str:
    return f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)


def _default_confirm(parent, title: str, text: str) -> bool:
    return QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.Cancel,
                                QMessageBox.Cancel) == QMessageBox.Yes


class RunsBrowser(QWidget):
    open_run = Signal(str)           # a run directory to watch and load (the Open button, a double click)
    open_checkpoint = Signal(str)    # a checkpoint (.safetensors) to open in the canvases
    resume_run = Signal(str, int)    # run directory, extra steps (0: resume to its total)
    duplicate_config = Signal(str)   # a config.toml to load into the Model panel

    def __init__(self, runs_root: str | Path, settings: QSettings | None = None, *,
                 trash_dir: str | Path | None = None, poll_ms: int = POLL_MS, parent=None):
        super().__init__(parent)
        self.runs_root = Path(runs_root)
        self.settings = settings if settings is not None else scratch_settings()
        self.trash_dir = Path(trash_dir) if trash_dir is not None else None  # None: the system's (runs_index)
        self.index = RunsIndex()
        self.summaries: dict[Path, RunSummary] = {}
        self.current: RunSummary | None = None
        self._thumbs: dict[tuple[str, int], QIcon] = {}
        self._sample_steps: list[int] = []   # the slider's positions: the steps of the sample grids
        self._sample_paths: list[str] = []
        # dialogs, replaceable (tests): confirm(title, text) -> bool; ask_text(title, label, text) -> str | None;
        # ask_save(title, suggested path, filter) -> str | None; ask_folder(title) -> str | None
        self.confirm = lambda title, text: _default_confirm(self, title, text)
        self.ask_text = self._ask_text
        self.ask_save = lambda title, path, flt: QFileDialog.getSaveFileName(self, title, path, flt)[0] or None
        self.ask_folder = lambda title: QFileDialog.getExistingDirectory(self, title, str(self.runs_root)) or None

        # ---- the list ----
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.tree.setIconSize(SPARK)
        self.tree.setUniformRowHeights(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        head = self.tree.header()
        head.setStretchLastSection(False)
        head.setSectionResizeMode(C_NAME, QHeaderView.Stretch)
        for c in (C_STATE, C_FAMILY, C_DATASET, C_STEP, C_BEST):
            head.setSectionResizeMode(c, QHeaderView.ResizeToContents)
        head.setSectionResizeMode(C_LOSS, QHeaderView.Fixed)
        head.resizeSection(C_LOSS, SPARK.width() + 12)
        self.tree.headerItem().setToolTip(C_BEST, "The best sample-quality score of the run (hover a cell for all)")
        self.tree.headerItem().setToolTip(C_LOSS, "The last logged values of the run's main loss (log scale)")
        self.add_folder_btn = QPushButton("Add folder…")
        self.add_folder_btn.setToolTip("List the runs of another folder too (e.g. one a cluster job writes to)")
        self.remove_folder_btn = QPushButton("Remove folder")
        self.remove_folder_btn.setToolTip("Stop listing the selected folder (nothing is deleted)")
        self.compare_btn = QPushButton("Compare")
        self.compare_btn.setToolTip("Overlay the curves of the selected runs (select two or more: Ctrl- or Shift-click)")
        self.families_btn = QPushButton("Compare families…")
        self.families_btn.setToolTip("Quality, diversity, sampling speed and training cost of the selected runs' newest "
                                     "checkpoints (any families, one dataset), measured on the same real images; "
                                     "with fewer than two runs selected, pick checkpoint files")
        # one row where the list column is wide enough, else two: the column stays narrow
        list_bar = FlowLayout()
        for b in (self.add_folder_btn, self.remove_folder_btn, self.compare_btn, self.families_btn):
            list_bar.addWidget(b)
        list_box = QWidget()
        ll = QVBoxLayout(list_box)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(list_bar)
        ll.addWidget(self.tree, 1)

        # ---- the selected run ----
        self.header = QLabel("Select a run to see its samples, checkpoints, curves and config.")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_btn = QPushButton("Open")
        self.open_btn.setToolTip("Show this run's plots and samples on the Train tab and load its newest checkpoint")
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setToolTip("Continue training from the last checkpoint up to the run's total steps")
        self.continue_btn = QPushButton("Continue +")
        self.continue_btn.setToolTip("Train this run for more steps than it was configured for (from its last checkpoint)")
        self.extra_steps = QSpinBox()
        self.extra_steps.setRange(1, 10_000_000)
        self.extra_steps.setSingleStep(100)
        self.extra_steps.setSuffix(" steps")
        self.duplicate_btn = QPushButton("Duplicate config")
        self.duplicate_btn.setToolTip("Load this run's config into the Model panel, to start a new run from it")
        self.export_ckpt_btn = QPushButton("Export checkpoint…")
        self.export_ckpt_btn.setToolTip("Copy the checkpoint selected below (else the newest) with its metadata")
        self.export_cfg_btn = QPushButton("Export config…")
        self.export_cfg_btn.setToolTip("Save config.toml to train it again without the GUI: "
                                       "python -m engine train --config FILE")
        self.rename_btn = QPushButton("Rename…")
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.setToolTip("Move the run folder to the trash (it can be restored from there)")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.hide()

        self.samples = ImageView("No sample grids yet: a run writes one every training.sample_every steps.")
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setPageStep(1)
        self.slider.setToolTip("Step through the sample grids of the run (a flip-book of training)")
        self.slider_label = QLabel("")
        self.slider_label.setMinimumWidth(110)
        self.checkpoints = QListWidget()
        self.checkpoints.setViewMode(QListView.IconMode)
        self.checkpoints.setFlow(QListView.LeftToRight)
        self.checkpoints.setWrapping(False)
        self.checkpoints.setMovement(QListView.Static)
        self.checkpoints.setIconSize(QSize(THUMB, THUMB))
        self.checkpoints.setGridSize(QSize(THUMB + 18, THUMB + 24))
        self.checkpoints.setFixedHeight(THUMB + 42)  # one row of thumbnails and a scroll bar
        self.checkpoints.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
        self.checkpoints.setToolTip("Checkpoints: click one to open it in the canvases")
        samples_tab = QWidget()
        sl = QVBoxLayout(samples_tab)
        sl.addWidget(self.samples, 1)
        srow = QHBoxLayout()
        srow.addWidget(self.slider, 1)
        srow.addWidget(self.slider_label)
        sl.addLayout(srow)
        self.checkpoints_label = QLabel("<b>checkpoints</b> (click to open in the canvases)")
        sl.addWidget(self.checkpoints_label)
        sl.addWidget(self.checkpoints)

        self.curves_tab = QSplitter(Qt.Vertical)   # the family's plot groups, then sample quality
        self.curves_tab.setChildrenCollapsible(False)
        self.curve_plots: dict[str, LossPlot] = {}
        self._curves_family: str | None = None
        self.quality_plot = MetricPlot()
        self.watcher = RunWatcher(interval_ms=1000, parent=self)
        self.watcher.metrics.connect(self._on_rows)
        self.watcher.reset.connect(self._clear_curves)
        self._build_curve_plots("")

        self.config_text = QPlainTextEdit()
        self.config_text.setReadOnly(True)
        self.config_text.setFont(QFont("monospace"))
        self.compare = RunCompare()
        self.family_compare = FamilyCompare()
        # the selected run's samples and config, and the selected runs compared, in one tab widget:
        # the comparisons' pages are about 500 px wide, and beside the run's they would not fit the
        # page at a window width of 1024 (the run's curves stay in view under the list)
        self.tabs = QTabWidget()
        self.tabs.addTab(samples_tab, "Samples")
        self.tabs.addTab(self.config_text, "Config")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.family_compare, "Families")
        # ask_open(title, folder, filter) -> [paths] (replaceable in tests)
        self.ask_open = lambda title, folder, flt: QFileDialog.getOpenFileNames(self, title, folder, flt)[0]

        row1 = QHBoxLayout()
        for w in (self.open_btn, self.resume_btn, self.continue_btn, self.extra_steps, self.duplicate_btn):
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        for w in (self.export_ckpt_btn, self.export_cfg_btn, self.rename_btn, self.delete_btn):
            row2.addWidget(w)
        row2.addStretch(1)
        details = QWidget()
        dl = QVBoxLayout(details)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.header)
        dl.addLayout(row1)
        dl.addLayout(row2)
        dl.addWidget(self.message)
        dl.addWidget(self.tabs, 1)

        left = QSplitter(Qt.Vertical)
        left.addWidget(list_box)
        left.addWidget(self.curves_tab)
        left.setSizes([330, 470])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(details)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 640])
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.slider.valueChanged.connect(self._show_sample)
        self.checkpoints.itemClicked.connect(self._on_checkpoint_clicked)
        self.add_folder_btn.clicked.connect(lambda: self.add_folder())
        self.remove_folder_btn.clicked.connect(self.remove_folder)
        self.compare_btn.clicked.connect(self.compare_selected)
        self.families_btn.clicked.connect(lambda: self.compare_families())
        self.open_btn.clicked.connect(lambda: self.current and self.open_run.emit(str(self.current.path)))
        self.resume_btn.clicked.connect(self.resume)
        self.continue_btn.clicked.connect(self.continue_longer)
        self.duplicate_btn.clicked.connect(self.duplicate)
        self.export_ckpt_btn.clicked.connect(lambda: self.export_checkpoint())
        self.export_cfg_btn.clicked.connect(lambda: self.export_config())
        self.rename_btn.clicked.connect(lambda: self.rename())
        self.delete_btn.clicked.connect(self.delete)

        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        for folder in self.folders():
            self._folder_item(folder)
        self.poll()
        self._sync_actions()

    # ---- folders -------------------------------------------------------------------------------
    def folders(self) -> list[Path]:
        """The runs root, then the folders added (remembered in the settings)."""
        extra = self.settings.value(FOLDERS_KEY) or []
        if isinstance(extra, str):  # an INI file gives back a one-element list as a string
            extra = [extra]
        out = [self.runs_root]
        for f in extra:
            if Path(f) not in out:
                out.append(Path(f))
        return out

    def add_folder(self, path: str | Path | None = None) -> Path | None:
        """List the runs of another folder too. A run folder itself adds the folder that holds it."""
        if path is None:
            path = self.ask_folder("Add a folder of runs")
            if not path:
                return None
        path = Path(path)
        if (path / "config.toml").is_file() or (path / "status.json").is_file():
            path = path.parent
        if path not in self.folders():
            self.settings.setValue(FOLDERS_KEY, [str(f) for f in self.folders()[1:]] + [str(path)])
            self._folder_item(path)
        self.poll()
        return path

    def remove_folder(self) -> None:
        """Stop listing the selected added folder (the runs root stays; nothing is deleted)."""
        item = self.tree.currentItem()
        if item is not None and item.data(0, KIND_ROLE) == "run":
            item = item.parent()
        if item is None:
            return
        path = Path(item.data(0, PATH_ROLE))
        if path == self.runs_root:
            return
        self.settings.setValue(FOLDERS_KEY, [str(f) for f in self.folders()[1:] if f != path])
        for run in [Path(item.child(i).data(0, PATH_ROLE)) for i in range(item.childCount())]:
            self.summaries.pop(run, None)
        self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
        self._on_selection()

    def _folder_item(self, folder: Path) -> QTreeWidgetItem:
        for i in range(self.tree.topLevelItemCount()):
            it = self.tree.topLevelItem(i)
            if Path(it.data(0, PATH_ROLE)) == folder:
                return it
        it = QTreeWidgetItem([str(folder)])
        it.setData(0, PATH_ROLE, str(folder))
        it.setData(0, KIND_ROLE, "folder")
        font = it.font(0)
        font.setBold(True)
        it.setFont(0, font)
        it.setToolTip(0, str(folder) + ("  (the runs folder)" if folder == self.runs_root else "  (added)"))
        self.tree.addTopLevelItem(it)
        it.setFirstColumnSpanned(True)
        it.setExpanded(True)
        return it

    # ---- polling -------------------------------------------------------------------------------
    def showEvent(self, e):
        super().showEvent(e)
        self.poll()
        self.timer.start()
        if self.current is not None:
            self.watcher.poll()
            self.watcher.timer.start()

    def hideEvent(self, e):
        super().hideEvent(e)
        self.timer.stop()
        self.watcher.stop()

    def poll(self) -> None:
        """Rescan every folder: new runs appear, gone ones go, changed ones update (the selected
        one's samples, checkpoints and header too)."""
        for i in range(self.tree.topLevelItemCount()):
            folder_item = self.tree.topLevelItem(i)
            folder = Path(folder_item.data(0, PATH_ROLE))
            runs = self.index.scan(folder)
            have = {Path(folder_item.child(j).data(0, PATH_ROLE)): folder_item.child(j)
                    for j in range(folder_item.childCount())}
            wanted = {s.path for s in runs}
            for path, item in have.items():
                if path not in wanted:
                    folder_item.removeChild(item)
                    self.summaries.pop(path, None)
            for pos, s in enumerate(runs):  # newest first, as scan gives them
                item = have.get(s.path)
                if item is None:
                    item = QTreeWidgetItem()
                    item.setData(0, PATH_ROLE, str(s.path))
                    item.setData(0, KIND_ROLE, "run")
                    folder_item.insertChild(pos, item)
                if self.summaries.get(s.path) != s:
                    self.summaries[s.path] = s
                    self._fill_item(item, s)
            n = len(runs)
            folder_item.setText(0, f"{folder}   ({n} run{'s' if n != 1 else ''})" if folder.is_dir()
                                else f"{folder}   (not found)")
        if self.current is not None:
            s = self.summaries.get(self.current.path)
            if s is None:  # renamed or deleted elsewhere
                self._on_selection()
            elif s != self.current:
                self._update_details(s)
        if self.tabs.currentWidget() is self.compare and any(
                self.summaries.get(r) is not None and self.summaries[r].live for r in self.compare.runs):
            self.compare.reload()

    def _fill_item(self, item: QTreeWidgetItem, s: RunSummary) -> None:
        item.setText(C_NAME, s.name)
        item.setToolTip(C_NAME, f"{s.path}" + (f"\nconfig name: {s.config_name}" if s.config_name else ""))
        item.setText(C_STATE, s.state)
        item.setForeground(C_STATE, QBrush(QColor(STATE_COLORS.get(s.state, "#333333"))))
        tip = s.state + (f": {s.message}" if s.message else "")
        if s.state == "interrupted":
            tip += f"\nits process is gone (status.json still says {s.recorded_state}); Resume continues it"
        elif s.live and s.host:
            tip += f"\npid {s.pid} on {s.host}"
        item.setToolTip(C_STATE, tip)
        item.setText(C_FAMILY, s.family)
        item.setText(C_DATASET, s.dataset)
        item.setText(C_STEP, step_text(s))
        item.setTextAlignment(C_STEP, Qt.AlignRight | Qt.AlignVCenter)
        text, tip = best_text(s)
        item.setText(C_BEST, text)
        item.setToolTip(C_BEST, tip)
        icon = QIcon(sparkline(s.loss_tail))
        icon.addPixmap(sparkline(s.loss_tail, color="#ffffff"), QIcon.Selected)  # readable on the selection
        item.setIcon(C_LOSS, icon)
        if s.loss_tail:
            item.setToolTip(C_LOSS, f"loss {short(s.loss_key or '')}: last {s.loss_tail[-1]:.4g} "
                                    f"(the last {len(s.loss_tail)} logged values, log scale)")

    # ---- selection and details -----------------------------------------------------------------
    def run_item(self, path: str | Path) -> QTreeWidgetItem | None:
        path = Path(path)
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if Path(top.child(j).data(0, PATH_ROLE)) == path:
                    return top.child(j)
        return None

    def select_run(self, path: str | Path, *more: str | Path) -> None:
        """Select a run (and more runs, as a multi-selection); the first becomes the current one."""
        self.tree.clearSelection()
        items = [self.run_item(p) for p in (path, *more)]
        for it in items:
            if it is not None:
                it.setSelected(True)
        if items[0] is not None:
            self.tree.setCurrentItem(items[0], 0, QItemSelectionModel.NoUpdate)
        self._on_selection()

    def selected_runs(self) -> list[Path]:
        return [Path(it.data(0, PATH_ROLE)) for it in self.tree.selectedItems() if it.data(0, KIND_ROLE) == "run"]

    def _on_selection(self) -> None:
        runs = self.selected_runs()
        item = self.tree.currentItem()
        path = Path(item.data(0, PATH_ROLE)) if item is not None and item.data(0, KIND_ROLE) == "run" else None
        if path is None or path not in runs:
            path = runs[0] if runs else None
        s = self.summaries.get(path) if path is not None else None
        if s is None:
            self.current = None
            self.watcher.stop()
            self.header.setText("Select a run to see its samples, checkpoints, curves and config." if not runs else "")
            self.samples.clear()
            self.checkpoints.clear()
            self.config_text.clear()
            self._set_samples([])
            self._clear_curves()
        elif self.current is None or self.current.path != s.path:
            self.current = None
            self.message.hide()
            self._update_details(s)
            try:
                self.config_text.setPlainText((s.path / "config.toml").read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                self.config_text.setPlainText(f"(no readable config.toml: {e})")
            self.extra_steps.setValue(max(1, s.total_steps or 1000))
            self._build_curve_plots(s.family)
            self.watcher.watch(s.path)
            if not self.isVisible():
                self.watcher.stop()  # read once; the timer runs while the browser shows
        self.compare_btn.setEnabled(len(runs) >= 2)
        self._sync_actions()

    def _update_details(self, s: RunSummary) -> None:
        old = self.current
        self.current = s
        color = STATE_COLORS.get(s.state, "#333")
        total = f" of {s.total_steps}" if s.total_steps else ""
        best = " · ".join(f"{metric_label(k)} {v:.3g} (step {st})".replace("-", "&#8209;")  # wrap between scores
                          for k, (v, st) in sorted(s.best.items()))
        lines = [f"<b>{html.escape(s.name)}</b> &nbsp; <span style='color:{color}'><b>{s.state}</b></span> at step "
                 f"{s.step}{total}" + (f" — {html.escape(s.message)}" if s.message and s.message != f"finished {s.total_steps} steps" else ""),
                 f"{html.escape(s.family)} · {html.escape(s.dataset)} · {len(s.checkpoints)} checkpoint{'s' if len(s.checkpoints) != 1 else ''}"
                 f" · {len(s.samples)} sample grid{'s' if len(s.samples) != 1 else ''}"]
        if best:
            lines.append(f"best: {best}")
        if s.state == "interrupted":
            lines.append("Its process is gone (killed, or the machine restarted): Resume continues from the last checkpoint.")
        self.header.setText("<br>".join(lines))
        self.header.setToolTip(str(s.path))
        if old is None or old.samples != s.samples:
            self._set_samples(s.samples, newest=old is None)
        if old is None or old.checkpoints != s.checkpoints or old.samples != s.samples:
            self._set_checkpoints(s)
        self._sync_actions()

    def _set_samples(self, samples: list[tuple[int, Path]], newest: bool = False) -> None:
        """The slider's range follows the grids; it stays on the newest one while it was there (and
        goes there for another run: newest)."""
        at_end = newest or self.slider.value() >= self.slider.maximum()
        keep = self._sample_steps[self.slider.value()] if self._sample_steps and not at_end else None
        self._sample_steps = [st for st, _ in samples]
        self._sample_paths = [str(p) for _, p in samples]
        with signals_blocked(self.slider):
            self.slider.setRange(0, max(0, len(samples) - 1))
            self.slider.setValue(self._sample_steps.index(keep) if keep in self._sample_steps else self.slider.maximum())
        self.slider.setEnabled(len(samples) > 1)
        self._show_sample(self.slider.value())

    def _show_sample(self, index: int) -> None:
        if not self._sample_paths:
            self.samples.clear()
            self.slider_label.setText("no samples")
            return
        n = len(self._sample_paths)
        index = min(max(index, 0), n - 1)
        if self.samples.path != self._sample_paths[index]:
            self.samples.set_path(self._sample_paths[index])
        self.slider_label.setText(f"step {self._sample_steps[index]}  ({index + 1}/{n})")
        for i in range(self.checkpoints.count()):  # the checkpoint of this step, if there is one
            it = self.checkpoints.item(i)
            if it.data(KIND_ROLE) == self._sample_steps[index]:
                with signals_blocked(self.checkpoints):
                    self.checkpoints.setCurrentItem(it)

    def _set_checkpoints(self, s: RunSummary) -> None:
        current = self.checkpoints.currentItem().data(PATH_ROLE) if self.checkpoints.currentItem() else None
        samples = dict(s.samples)
        with signals_blocked(self.checkpoints):
            self.checkpoints.clear()
            for step, path in s.checkpoints:
                grid = samples.get(step) or next((samples[k] for k in sorted(samples, reverse=True) if k <= step), None)
                it = QListWidgetItem(self._thumb(grid), f"step {step}")
                it.setData(PATH_ROLE, str(path))
                it.setData(KIND_ROLE, step)
                it.setToolTip(f"{path}\nclick: open it in the canvases")
                self.checkpoints.addItem(it)
                if str(path) == current:
                    self.checkpoints.setCurrentItem(it)
        self.checkpoints_label.setText(f"<b>checkpoints</b> ({len(s.checkpoints)}; click one to open it in the canvases)"
                                       if s.checkpoints else "<b>checkpoints</b>: none yet")
        if s.checkpoints:
            self.checkpoints.scrollToItem(self.checkpoints.currentItem() or self.checkpoints.item(self.checkpoints.count() - 1))

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

    def _on_checkpoint_clicked(self, item: QListWidgetItem) -> None:
        step = item.data(KIND_ROLE)
        if step in self._sample_steps:
            self.slider.setValue(self._sample_steps.index(step))
        self.open_checkpoint.emit(item.data(PATH_ROLE))

    def _on_double_click(self, item: QTreeWidgetItem, _col: int) -> None:
        if item.data(0, KIND_ROLE) == "run":
            self.open_run.emit(item.data(0, PATH_ROLE))

    # ---- curves --------------------------------------------------------------------------------
    def _build_curve_plots(self, family: str) -> None:
        """One plot per plot group of the run's family (the registry's), plus sample quality."""
        if family == self._curves_family:
            return
        self._curves_family = family
        for plot in self.curve_plots.values():
            plot.timer.stop()
            plot.hide()
            plot.setParent(None)
            plot.deleteLater()
        groups = FAMILIES.get(family).plots if family in FAMILIES else (LOSS_PLOT,)
        self.curve_plots = {g.key: LossPlot(keys=g.keys, title=g.title, log=g.log) for g in groups}
        for i, plot in enumerate(self.curve_plots.values()):
            self.curves_tab.insertWidget(i, plot)
            plot.setVisible(i == 0)
        self.curves_tab.addWidget(self.quality_plot)  # (moved to the end)
        self.quality_plot.hide()
        self._balance_curves()

    def _on_rows(self, rows: list[dict]) -> None:
        shown = [w.isVisibleTo(self.curves_tab) for w in (*self.curve_plots.values(), self.quality_plot)]
        for plot in self.curve_plots.values():
            plot.add_rows(rows)
            if plot.point_count():
                plot.show()
        self.quality_plot.add_rows(rows)
        self.quality_plot.setVisible(self.quality_plot.point_count() > 0)
        if shown != [w.isVisibleTo(self.curves_tab) for w in (*self.curve_plots.values(), self.quality_plot)]:
            self._balance_curves()

    def _balance_curves(self) -> None:
        """The loss plot gets 1.5 times the height of each other plot shown."""
        widgets = [self.curves_tab.widget(i) for i in range(self.curves_tab.count())]
        weights = [0 if not w.isVisibleTo(self.curves_tab) else 3 if i == 0 else 2 for i, w in enumerate(widgets)]
        total = max(self.curves_tab.height(), 400)
        self.curves_tab.setSizes([total * k // max(1, sum(weights)) for k in weights])

    def _clear_curves(self) -> None:
        for plot in self.curve_plots.values():
            plot.clear()
        self.quality_plot.clear()

    # ---- actions -------------------------------------------------------------------------------
    def _sync_actions(self) -> None:
        s = self.current
        has = s is not None
        live = has and s.live
        has_config = has and (s.path / "config.toml").is_file()
        self.open_btn.setEnabled(has)
        can_resume = has and not live and has_config and s.state != "finished" and (
            s.total_steps is None or s.step < s.total_steps)
        self.resume_btn.setEnabled(bool(can_resume))
        self.continue_btn.setEnabled(bool(has and not live and has_config))
        self.extra_steps.setEnabled(bool(has and not live and has_config))
        self.duplicate_btn.setEnabled(bool(has_config))
        self.export_cfg_btn.setEnabled(bool(has_config))
        self.export_ckpt_btn.setEnabled(bool(has and s.checkpoints))
        for b in (self.rename_btn, self.delete_btn):
            b.setEnabled(bool(has and not live))
            b.setToolTip("A live run cannot be renamed or deleted: stop it first" if live else
                         ("Rename the run's folder" if b is self.rename_btn
                          else "Move the run folder to the trash (it can be restored from there)"))
        if has and s.state == "finished":
            self.resume_btn.setToolTip("The run finished its steps: use Continue + to train it longer")
        else:
            self.resume_btn.setToolTip("Continue training from the last checkpoint up to the run's total steps")

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color:#c0392b" if error else "color:#1e8449")
        self.message.setText(("✖ " if error else "") + text)
        self.message.setVisible(bool(text))

    def resume(self) -> None:
        if self.current is not None and self.resume_btn.isEnabled():
            self.resume_run.emit(str(self.current.path), 0)

    def continue_longer(self) -> None:
        if self.current is not None and self.continue_btn.isEnabled():
            self.resume_run.emit(str(self.current.path), int(self.extra_steps.value()))

    def duplicate(self) -> None:
        if self.current is not None and (self.current.path / "config.toml").is_file():
            self.duplicate_config.emit(str(self.current.path / "config.toml"))

    def selected_checkpoint(self) -> Path | None:
        """The checkpoint picked in the strip, else the run's newest."""
        if self.current is None or not self.current.checkpoints:
            return None
        it = self.checkpoints.currentItem()
        return Path(it.data(PATH_ROLE)) if it is not None else self.current.checkpoints[-1][1]

    def export_checkpoint(self, dest: str | Path | None = None) -> Path | None:
        ck = self.selected_checkpoint()
        if ck is None:
            return None
        if dest is None:
            dest = self.ask_save("Export checkpoint", str(Path.home() / f"{self.current.name}-{ck.stem}.safetensors"),
                                 "Checkpoints (*.safetensors)")
            if not dest:
                return None
        try:
            out = export_checkpoint(ck, dest)
        except OSError as e:
            self._say(f"Could not export the checkpoint: {e}", error=True)
            return None
        self._say(f"Exported {ck.name} (and its .json) to {out}")
        return out

    def export_config(self, dest: str | Path | None = None) -> Path | None:
        if self.current is None:
            return None
        if dest is None:
            dest = self.ask_save("Export config", str(Path.home() / f"{self.current.name}.toml"), "Run configs (*.toml)")
            if not dest:
                return None
        try:
            out = export_config(self.current.path, dest)
        except OSError as e:
            self._say(f"Could not export the config: {e}", error=True)
            return None
        self._say(f"Exported the config to {out}; train it again with: python -m engine train --config {out}")
        return out

    def _ask_text(self, title: str, label: str, text: str) -> str | None:
        value, ok = QInputDialog.getText(self, title, label, text=text)
        return value if ok else None

    def rename(self, new_name: str | None = None) -> Path | None:
        s = self.current
        if s is None:
            return None
        if new_name is None:
            new_name = self.ask_text("Rename run", "New name of the run's folder:", s.name)
            if not new_name or new_name == s.name:
                return None
        self.watcher.stop()
        try:
            new = rename_run(s.path, new_name)
        except (OSError, ValueError) as e:
            self._say(str(e), error=True)
            if self.isVisible():
                self.watcher.timer.start()
            return None
        self.poll()
        self.select_run(new)
        self._say(f"Renamed to {new.name}")
        return new

    def delete(self) -> Path | None:
        """Move the current run to the trash, after asking."""
        s = self.current
        if s is None:
            return None
        if s.live:
            self._say(f"{s.name} is {s.state}: a live run cannot be deleted; stop it first", error=True)
            return None
        size = f"{len(s.checkpoints)} checkpoint(s), {len(s.samples)} sample grid(s)"
        if not self.confirm("Delete run", f"Move the run {s.name} ({size}) to the trash?\n\n{s.path}"):
            return None
        self.watcher.stop()
        try:
            where = trash(s.path, self.trash_dir)
        except (OSError, ValueError) as e:
            self._say(str(e), error=True)
            if self.isVisible():
                self.watcher.timer.start()
            return None
        self.current = None
        self.poll()
        self._on_selection()
        self._say(f"Moved {s.name} to the trash ({where.parent.parent})")
        return where

    def compare_selected(self) -> None:
        runs = self.selected_runs()
        self.compare.set_runs(runs)
        self.tabs.setCurrentWidget(self.compare)

    def compare_families(self, checkpoints=None) -> bool:
        """Measure the newest checkpoints of the selected runs (two or more), else checkpoints
        picked in a file dialog, in the Families tab."""
        if checkpoints is None:
            runs = [self.summaries.get(r) for r in self.selected_runs()]
            checkpoints = [s.checkpoints[-1][1] for s in runs if s is not None and s.checkpoints]
            if len(checkpoints) < 2:
                checkpoints = self.ask_open("Checkpoints to compare (two or more, trained on the same dataset)",
                                            str(self.runs_root), "Checkpoints (*.safetensors)")
                if not checkpoints:
                    return False
        self.tabs.setCurrentWidget(self.family_compare)
        return self.family_compare.start(checkpoints)

    def shutdown(self) -> None:
        self.timer.stop()
        self.watcher.stop()
        self.family_compare.shutdown()
