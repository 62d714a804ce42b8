"""Runs browser: the runs under the runs folder (and any folder added, such as one a cluster writes
to), each with its state, family, dataset, step, best quality score and a loss sparkline. A timer
rescans every few seconds (stat calls, plus the metrics lines appended since), so a live run moves
and a run started from a shell appears by itself.

The selected run shows the images it writes while training with a step slider (a flip-book of
training), its checkpoints as thumbnails (a click opens one in the canvases), its config and,
under the list, its curves. Actions: open, resume, continue longer, duplicate the config, export,
rename, delete to the trash, add to the training queue (continue it later), reconstruct a post-hoc
EMA (run_ema.py; its checkpoints join the strip); several selected
runs can be compared (app/panels/run_compare.py), or their families (app/panels/family_compare.py).
The Queue view (app/panels/run_queue.py) shows and runs the training queue of the runs folder.

This widget composes the parts, each a module of its own: the list (run_tree.py), the flip-book
and checkpoint strip (run_flipbook.py), the curves (run_curves.py) and the buttons (run_actions.py);
it scans the folders, keeps the selection and routes the signals. Everything is read from the run
directories (engine/runs/index.py); the window connects the signals to the panels that train and
sample."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QDialog, QFileDialog, QLabel, QPlainTextEdit, QPushButton, QSplitter, QTabWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from app.compare_dialog import CompareFamiliesDialog
from app.dialogs import apply_config_defaults
from app.panels.family_compare import FamilyCompare
from app.panels.run_actions import RunActions
from app.panels.run_compare import RunCompare
from app.panels.run_curves import RunCurves
from app.panels.run_flipbook import RunFlipbook
from app.panels.run_queue import QueueView, position_of
from app.panels.run_tree import PARENT_LINK, RunTree, header_html, is_run, item_path
from app.qt_util import FlowLayout, scratch_settings
from app.run_watcher import RunWatcher
from engine.runs.index import RunsIndex, RunSummary, detector_meta_path
from engine.runs.queue import comparison_path

FOLDERS_KEY = "runs_browser/folders"
POLL_MS = 2000
PROMPT = "Select a run to see its samples, checkpoints, curves and config."


class RunsBrowser(QWidget):
    open_run = Signal(str)           # a run directory to watch and load (the Open button, a double click)
    open_checkpoint = Signal(str)    # a checkpoint (.safetensors) to open in the canvases
    open_detector = Signal(str)      # a trained detector (DET.safetensors) to use in the Detection canvas
    resume_run = Signal(str, int)    # run directory, extra steps (0: resume to its total)
    duplicate_config = Signal(str)   # a config.toml to load into the Model panel
    reflow_run = Signal(str, str)    # run directory, the checkpoint a reflow child of it trains on

    def __init__(self, runs_root: str | Path, settings: QSettings | None = None, *,
                 trash_dir: str | Path | None = None, poll_ms: int = POLL_MS, parent=None):
        super().__init__(parent)
        self.runs_root = Path(runs_root)
        self.settings = settings if settings is not None else scratch_settings()
        self.index = RunsIndex()
        self.summaries: dict[Path, RunSummary] = {}
        self.current: RunSummary | None = None
        # config_provider() -> RunConfig | None: the panels' current settings (the window sets it); the
        # data section of "Compare families on this data…" comes from it
        self.config_provider = lambda: None
        # dialogs, replaceable (tests): ask_folder(title) -> str | None; ask_open(title, folder, filter) -> [paths];
        # exec_dialog(dialog) -> bool (accepted)
        self.exec_dialog = lambda dlg: dlg.exec() == QDialog.Accepted
        self.ask_folder = lambda title: QFileDialog.getExistingDirectory(self, title, str(self.runs_root)) or None
        self.ask_open = lambda title, folder, flt: QFileDialog.getOpenFileNames(self, title, folder, flt)[0]

        # ---- the list ----
        self.tree = RunTree()
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
        self.header = QLabel(PROMPT)
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse)
        self.header.setOpenExternalLinks(False)
        self.header.linkActivated.connect(self._on_header_link)
        self.flipbook = RunFlipbook()
        self.actions = RunActions(checkpoint_of=self.flipbook.selected_checkpoint, trash_dir=trash_dir)
        self.curves = RunCurves()
        self.watcher = RunWatcher(interval_ms=1000, parent=self)
        self.watcher.metrics.connect(self.curves.add_rows)
        self.watcher.reset.connect(self.curves.clear)
        self.config_text = QPlainTextEdit()
        self.config_text.setReadOnly(True)
        self.config_text.setFont(QFont("monospace"))
        self.compare = RunCompare()
        self.family_compare = FamilyCompare()
        self.family_compare.open_folder = str(self.runs_root / "comparisons")
        self.queue_view = QueueView(self.runs_root, poll_ms=poll_ms)
        # the selected run's samples and config, and the selected runs compared, in one tab widget:
        # the comparisons' pages are about 500 px wide, and beside the run's they would not fit the
        # page at a window width of 1024 (the run's curves stay in view under the list)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.flipbook, "Samples")
        self.tabs.addTab(self.config_text, "Config")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.family_compare, "Families")
        self.tabs.addTab(self.queue_view, "Queue")

        details = QWidget()
        dl = QVBoxLayout(details)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.header)
        dl.addWidget(self.actions)
        dl.addWidget(self.tabs, 1)

        left = QSplitter(Qt.Vertical)
        left.addWidget(list_box)
        left.addWidget(self.curves)
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
        self.flipbook.checkpoint_opened.connect(self.open_checkpoint)
        self.actions.open_run.connect(self.open_item)
        self.actions.resume_run.connect(self.resume_run)
        self.actions.duplicate_config.connect(self.duplicate_config)
        self.actions.reflow_run.connect(self.reflow_run)
        self.actions.ema_reconstructed.connect(lambda _path: self.poll())   # the strip shows the new checkpoint
        self.actions.renamed.connect(self._on_renamed)
        self.actions.trashed.connect(self._on_trashed)
        self.actions.queue_continue.connect(self.queue_continue)
        self.queue_view.open_run.connect(self.open_run)
        self.queue_view.show_comparison.connect(self.show_comparison)
        self.family_compare.plan_requested.connect(lambda: self.compare_families_on_data())
        self.add_folder_btn.clicked.connect(lambda: self.add_folder())
        self.remove_folder_btn.clicked.connect(self.remove_folder)
        self.compare_btn.clicked.connect(self.compare_selected)
        self.families_btn.clicked.connect(lambda: self.compare_families())

        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        for folder in self.folders():
            self._add_folder_item(folder)
        self.poll()

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
            self._add_folder_item(path)
        self.poll()
        return path

    def remove_folder(self) -> None:
        """Stop listing the selected added folder (the runs root stays; nothing is deleted)."""
        item = self.tree.current_folder_item()
        if item is None:
            return
        path = item_path(item)
        if path == self.runs_root:
            return
        self.settings.setValue(FOLDERS_KEY, [str(f) for f in self.folders()[1:] if f != path])
        for run in self.tree.remove_folder_item(item):
            self.summaries.pop(run, None)
        self._on_selection()

    def _add_folder_item(self, folder: Path) -> QTreeWidgetItem:
        return self.tree.folder_item(folder, "(the runs folder)" if folder == self.runs_root else "(added)")

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
        one's header, images and checkpoints too; a live one's images every time, since a new
        image of an artifact other than the samples changes nothing the index reads)."""
        for folder_item in self.tree.folder_items():
            runs = self.index.scan(item_path(folder_item))
            for gone in self.tree.show_folder(folder_item, runs, self.summaries):
                self.summaries.pop(gone, None)
            self.summaries.update((s.path, s) for s in runs)
        if self.current is not None:
            s = self.summaries.get(self.current.path)
            if s is None:  # renamed or deleted elsewhere
                self._on_selection()
            elif s != self.current:
                self._update_details(s)
            elif s.live:
                self.flipbook.refresh()
        if self.tabs.currentWidget() is self.compare and any(
                self.summaries.get(r) is not None and self.summaries[r].live for r in self.compare.runs):
            self.compare.reload()

    # ---- selection and details -----------------------------------------------------------------
    def run_item(self, path: str | Path) -> QTreeWidgetItem | None:
        return self.tree.run_item(path)

    def select_run(self, path: str | Path, *more: str | Path) -> None:
        """Select a run (and more runs, as a multi-selection); the first becomes the current one."""
        self.tree.select_runs((path, *more))
        self._on_selection()

    def selected_runs(self) -> list[Path]:
        return self.tree.selected_runs()

    def _on_selection(self) -> None:
        runs = self.tree.selected_runs()
        path = self.tree.current_run() or (runs[0] if runs else None)
        s = self.summaries.get(path) if path is not None else None
        if s is None:
            self._show_run(None, prompt=not runs)
        elif self.current is None or self.current.path != s.path:
            self._show_run(s)
        self.compare_btn.setEnabled(len(runs) >= 2)

    def _show_run(self, s: RunSummary | None, prompt: bool = True) -> None:
        """Another run (or none) is selected: nothing of the one before stays on screen."""
        self.current = s
        self.actions.set_run(s, new=True)
        self.flipbook.show_run(s, new=True)
        if s is None:
            self.watcher.stop()
            self.header.setText(PROMPT if prompt else "")
            self.header.setToolTip("")
            self.config_text.clear()
            self.curves.clear()
            return
        self._show_header(s)
        try:   # a detector's description where a run has its config
            described = detector_meta_path(s.path) if s.kind == "detector" else s.path / "config.toml"
            self.config_text.setPlainText(described.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            self.config_text.setPlainText(f"(no readable config.toml: {e})")
        if s.kind == "detector" and self.tabs.currentWidget() is self.flipbook:
            self.tabs.setCurrentWidget(self.config_text)   # a detector has no samples: its description
        self.curves.set_family(s.family)
        self.watcher.watch(s.path)   # clears the curves (reset), then reads the run's rows
        if not self.isVisible():
            self.watcher.stop()  # read once; the timer runs while the browser shows

    def _update_details(self, s: RunSummary) -> None:
        """The selected run changed on disk (a new step, grid, checkpoint or state)."""
        self.current = s
        self._show_header(s)
        self.flipbook.show_run(s)
        self.actions.set_run(s)

    def _show_header(self, s: RunSummary) -> None:
        self.header.setText(header_html(s))
        self.header.setToolTip(str(s.path))

    def _on_header_link(self, href: str) -> None:
        if href == PARENT_LINK:
            self.select_parent()

    def select_parent(self) -> bool:
        """Select the current run's parent run (a two-stage run's), listing its folder first when
        it is not listed yet. False when there is none to select."""
        s = self.current
        if s is None or s.parent_run is None:
            return False
        if self.run_item(s.parent_run) is None:
            if not s.parent_run.is_dir():
                self.actions.say(f"the parent run {s.parent_run} is not there any more", error=True)
                return False
            self.add_folder(s.parent_run.parent)
        self.select_run(s.parent_run)
        return True

    def _on_double_click(self, item: QTreeWidgetItem, _col: int) -> None:
        if is_run(item):
            self.open_item(str(item_path(item)))

    def open_item(self, path: str) -> None:
        """Open a listed folder: a run on the Train tab, a detector (a folder or a loose
        DET.safetensors) in the Detection canvas."""
        s = self.summaries.get(Path(path))
        if s is not None and s.kind == "detector":
            self.open_detector.emit(str(detector_meta_path(Path(path)).with_suffix(".safetensors")))
        else:
            self.open_run.emit(path)

    def _on_renamed(self, new: Path) -> None:
        self.poll()
        self.select_run(new)

    def _on_trashed(self, _path: Path) -> None:
        self.current = None
        self.poll()
        self._on_selection()

    # ---- comparisons ---------------------------------------------------------------------------
    def compare_selected(self) -> None:
        runs = self.selected_runs()
        self.compare.set_runs(runs)
        self.tabs.setCurrentWidget(self.compare)

    def compare_families(self, checkpoints=None) -> bool:
        """The newest checkpoints of the selected runs (two or more), else checkpoints picked in a
        file dialog, in the Families tab, ready to measure: Measure starts it, once the samples
        count is set."""
        if checkpoints is None:
            runs = [self.summaries.get(r) for r in self.selected_runs()]
            checkpoints = [s.checkpoints[-1][1] for s in runs if s is not None and s.checkpoints]
            if len(checkpoints) < 2:
                checkpoints = self.ask_open("Checkpoints to compare (two or more, trained on the same dataset)",
                                            str(self.runs_root), "Checkpoints (*.safetensors)")
                if not checkpoints:
                    return False
        self.tabs.setCurrentWidget(self.family_compare)
        self.family_compare.prepare(checkpoints)
        return True

    def compare_families_on_data(self) -> bool:
        """Compare families on this data…: presets trained in the queue on the current dataset,
        then compared; the Families view waits for the result and shows it by itself."""
        cfg = self.config_provider()
        if cfg is None:
            self.family_compare._say("No dataset to compare on: set up the Data panel first.", error=True)
            return False
        dlg = CompareFamiliesDialog(self.runs_root, cfg.to_dict()["data"],
                                    adjust=lambda c: apply_config_defaults(c, self.settings), parent=self)
        if not self.exec_dialog(dlg) or dlg.group is None:
            return False
        self.queue_view.refresh()
        self.tabs.setCurrentWidget(self.family_compare)
        self.watch_comparison(dlg.group.id)
        self.family_compare.header.setText(dlg.summary)
        return True

    def show_comparison(self, path: str, label: str = "") -> None:
        """A comparison written earlier (a queued group's result) in the Families view."""
        self.tabs.setCurrentWidget(self.family_compare)
        self.family_compare.load_file(path, source=f"the queued {label} ({path})" if label else "")

    def watch_comparison(self, group_id: str) -> None:
        """A comparison group just queued: the Families view shows its result once it is written."""
        self.family_compare.watch(comparison_path(self.runs_root, group_id), f"comparison {group_id}")

    # ---- the queue -----------------------------------------------------------------------------
    def show_queue(self) -> None:
        self.tabs.setCurrentWidget(self.queue_view)

    def queue_continue(self, run_dir: str, more_steps: int) -> None:
        """Run actions' Add to queue: continue the run for more_steps more steps when the queue gets to it."""
        e = self.queue_view.add_continue(run_dir, more_steps)
        if e is not None:
            self.actions.say(f"queued as #{position_of(self.queue_view.queue, e.id)}: {e.name} for "
                             f"{more_steps} more steps — see the Queue view")
        else:
            self.actions.say(self.queue_view.message.text().lstrip("✖ "), error=True)

    def shutdown(self) -> None:
        self.timer.stop()
        self.watcher.stop()
        self.family_compare.shutdown()
        self.queue_view.shutdown()
