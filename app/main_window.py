"""The main window: Data and Model panels on the left; the Train tab and the canvases (one tab per
entry of app.canvases.CANVASES) in the middle. Folders and checkpoints can be dropped anywhere.

The window knows no family: its plots come from the registry's plot groups, its tabs from the
canvas list, and which tabs a checkpoint enables from the capability records the worker reports."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, QSize, Qt, QTimer
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QSplitter, QTabWidget, QToolBar, QVBoxLayout,
                               QWidget)

from app.canvases import CANVASES, TAB_KEYS
from app.dialogs import KEY_INCEPTION, apply_config_defaults
from app.qt_util import AutoSplit, scrolled
from app.screen_fit import fit_to_screen, refit_shown
from app.menus import build_menus
from app.panels.data_panel import DataPanel
from app.panels.model_panel import ModelPanel
from app.panels.artifacts_pane import ArtifactsPane
from app.panels.plots_panel import BarPlot, LossPlot, MetricPlot
from app.panels.runs import RunsBrowser
from app.panels.training_panel import TrainingPanel
from app.run_watcher import RunWatcher
from app.widgets.checkpoint_bar import CheckpointBar
from app.widgets.image_io import carries_sample_parameters, is_image_file
from app.worker_session import WorkerSession
from engine.core.capabilities import Capabilities
from engine.core.config import ConfigError, RunConfig
from engine.core.detector_file import is_detector_file
from engine.core.families import DEFAULT_PRESET, FAMILIES
from engine.core.reflow import reflow_child_config
from engine.metrics.weight_paths import candidate_paths as inception_candidates
from engine.runs.rundir import RunDir


def default_runs_root() -> Path:
    home = os.environ.get("GENLAB_HOME")
    return Path(home) / "runs" if home else Path.home() / "GenLab" / "runs"


# The left column's width: what the tabs leave (their pages need about TABS_WIDTH px: the Sample
# canvas's 707, its scroll bar and the tab frame), within [LEFT_MIN, LEFT_MAX] px: 270 px at a
# width of 1024, 430 px from about 1185 up. Its height: the Model panel keeps MODEL_HEIGHT px
# (about 6 rows of its form under family, preset and run name) or 60 % of it, whichever is less;
# the Data panel gets the rest, at most what it needs.
TABS_WIDTH, LEFT_MIN, LEFT_MAX = 750, 270, 430
PREFERRED_SIZE = (1360, 860)   # the first window's size where the screen has room for it
MODEL_HEIGHT, MODEL_SHARE = 330, 0.6


def plot_groups() -> dict:
    """Every plot group any registered family declares, by key (the loss plot first)."""
    out = {}
    for name in FAMILIES:
        for g in FAMILIES.get(name).plots:
            out.setdefault(g.key, g)
    return out


class MainWindow(QMainWindow):
    def __init__(self, runs_root: Path | None = None, preset: str = DEFAULT_PRESET,
                 settings: QSettings | None = None, session: WorkerSession | None = None):
        super().__init__()
        self.setWindowTitle("GenLab")
        self.setAcceptDrops(True)
        self.settings = settings
        self.runs_root = Path(runs_root or default_runs_root())

        self.data_panel = DataPanel()
        self.model_panel = ModelPanel()
        self.training = TrainingPanel(self.runs_root, self.build_config)
        # one plot per plot group of the registry; a group shows once a run logs one of its values.
        # The plots stack under the loss plot, whose axis says "step" for them all
        self.plots = {key: BarPlot(g.keys, g.title) if g.bars else
                      LossPlot(keys=g.keys, title=g.title, log=g.log, step_label=key == "loss")
                      for key, g in plot_groups().items()}
        self.loss_plot = self.plots["loss"]
        for key, plot in self.plots.items():
            if key != "loss":
                plot.hide()
        self.quality_plot = MetricPlot(sweep=True)   # its "FD vs NFE…" opens the solver sweep
        # the images the watched run declares (sample grids; reconstructions for a VAE; ...)
        self.artifacts = ArtifactsPane()
        # one engine worker serves every canvas: the window's checkpoint is loaded once
        self.session = session or WorkerSession(parent=self)
        self.canvases = {spec.key: spec.canvas_class()(self.session, settings=settings) for spec in CANVASES}
        self.watcher = RunWatcher(parent=self)

        # the Data panel scrolls inside its pane, so a tall preview or warning never squeezes the
        # model form: the panes share the column by _data_height until the handle is dragged
        left = QSplitter(Qt.Vertical)
        left.setChildrenCollapsible(False)
        left.addWidget(scrolled(self.data_panel))
        left.addWidget(self.model_panel)
        self.left_split = AutoSplit(left, self._data_height)

        plots = QSplitter(Qt.Vertical)
        for plot in self.plots.values():
            plots.addWidget(plot)
        plots.addWidget(self.quality_plot)
        plots.setSizes([400] + [260] * (len(self.plots) - 1) + [220])
        self.quality_plot.link_x(self.loss_plot.plot)  # one step axis for loss and quality
        self.quality_plot.sweep_requested.connect(self.show_sweep)
        self.sweep_dialog = None   # made on first use
        live = QSplitter(Qt.Horizontal)
        live.addWidget(plots)
        live.addWidget(self.artifacts)
        live.setSizes([450, 450])
        train_tab = QWidget()
        tl = QVBoxLayout(train_tab)
        tl.addWidget(self.training)
        tl.addWidget(live, 1)

        self.runs = RunsBrowser(self.runs_root, settings)
        self.tabs = QTabWidget()
        # every page and the left column scroll below their minimum size: the window fits 1024×640
        self.tabs.addTab(scrolled(train_tab), "Train")
        self.tabs.addTab(scrolled(self.runs), "Runs")
        for spec in CANVASES:
            self.tabs.addTab(scrolled(self.canvases[spec.key]), spec.title)
        main = QSplitter(Qt.Horizontal)
        main.addWidget(scrolled(left))
        main.addWidget(self.tabs)
        main.setChildrenCollapsible(False)
        main.setStretchFactor(1, 1)
        self.main_split = AutoSplit(main, self._left_width)
        self.setCentralWidget(main)
        self.status_label = QLabel(f"runs: {self.runs_root}")
        self.statusBar().addWidget(self.status_label, 1)

        self.model_panel.preset_loaded.connect(lambda cfg: self.data_panel.set_config(cfg.data))
        self.data_panel.previewed.connect(lambda _info: self.left_split.refresh())   # its height changed
        self.training.run_started.connect(self._on_run_started)
        self.training.checkpoint_saved.connect(lambda p: self.set_checkpoint(p, load=False))
        self.training.run_ended.connect(self._on_run_ended)
        self.watcher.metrics.connect(self._on_rows)
        self.watcher.reset.connect(self._on_watch_reset)
        self.watcher.status.connect(self._on_watched_status)
        self.training.job.event.connect(
            lambda ev: self.quality_plot.show_progress(ev) if ev.get("event") == "eval_progress" else None)
        self.watcher.artifacts.connect(self.artifacts.set_specs)
        self.watcher.artifact.connect(self.artifacts.show_image)
        self.session.loaded.connect(self._enable_tabs)
        self.session.load_failed.connect(lambda _m: self._enable_tabs(None))
        self.session.reset.connect(lambda _m: self._enable_tabs(None))
        self.tabs.currentChanged.connect(self._on_tab)
        self.tabs.tabBar().installEventFilter(self)
        self.runs.open_run.connect(lambda d: (self.open_run(d), self.show_tab("train")))
        self.runs.open_checkpoint.connect(self._open_checkpoint)
        self.runs.open_detector.connect(self.open_detector)
        self.canvases["detection"].detectors_folder = self.runs_root   # new detectors are listed with the runs
        self.runs.resume_run.connect(self.continue_run)
        self.runs.duplicate_config.connect(self.duplicate_config)
        self.runs.reflow_run.connect(self.reflow_config)
        self.runs.config_provider = self.build_config   # the data "Compare families on this data…" trains on
        self.training.queued.connect(lambda _id: self.runs.queue_view.refresh())
        self.menus = build_menus(self)
        # the one checkpoint every canvas works on, with a recent list, in the toolbar
        self.checkpoint_bar = CheckpointBar(self.session, recent=self.menus.recent_checkpoints)
        self.checkpoint_bar.picked.connect(lambda p: self._open_checkpoint(p, switch_tab=False))
        self.checkpoint_bar.open_requested.connect(self._ask_checkpoint)
        toolbar = QToolBar("Checkpoint")
        toolbar.setObjectName("checkpoint_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.checkpoint_bar)
        self.addToolBar(toolbar)
        self.data_panel.run_dropped.connect(lambda d: (self.open_run(d), self.show_tab("train")))
        self.model_panel.changed.connect(self._hint_data_panel)
        self.model_panel.preset_loaded.connect(lambda _cfg: self._hint_data_panel())
        # before any run is shown, the quality plot tells the plan of the run Start would train
        self.model_panel.preset_loaded.connect(lambda _cfg: self._show_planned_schedule())
        self.model_panel.changed.connect(self._show_planned_schedule)
        self.training.run_started.connect(lambda _d: self._lock_panels(True))
        self.training.job.ended.connect(lambda *_a: self._lock_panels(False))

        self.model_panel.load_preset(preset)
        # the size the layout was made for, or the screen's available area where that is smaller;
        # a geometry remembered from a larger screen is fitted onto this one
        fit_to_screen(self, QSize(*PREFERRED_SIZE))
        if settings is not None and settings.value("geometry"):
            self.restoreGeometry(settings.value("geometry"))
            fit_to_screen(self, move=True)
        self._refitted = False

    def showEvent(self, e):
        super().showEvent(e)
        if not self._refitted:   # the window manager's real frame is known once the window is shown
            self._refitted = True
            QTimer.singleShot(0, self, lambda: refit_shown(self))

    # ---- the left column's share -----------------------------------------------------------------
    @staticmethod
    def _left_width(length: int) -> int:
        return min(max(length - TABS_WIDTH, LEFT_MIN), LEFT_MAX)

    def _data_height(self, length: int) -> int:
        model = min(MODEL_HEIGHT, int(MODEL_SHARE * length))
        return min(self.data_panel.minimumSizeHint().height(), length - model)

    # ---- checkpoint and tabs -------------------------------------------------------------------
    @property
    def checkpoint(self) -> str:
        return self.session.checkpoint

    def set_checkpoint(self, path: str, load: bool = True) -> None:
        """Every canvas works on this checkpoint (the shared worker loads it once). While a run
        trains, new checkpoints are only noted (load=False): the worker loads one when a canvas
        is shown or the run ends, so it never competes with training for the CPU."""
        self.session.set_checkpoint(path, load=load)

    def show_tab(self, key: str) -> None:
        self.tabs.setCurrentIndex(TAB_KEYS.index(key))

    def current_tab(self) -> str:
        return TAB_KEYS[self.tabs.currentIndex()]

    def _on_tab(self, index: int) -> None:
        if TAB_KEYS[index] in {c.key for c in CANVASES}:
            self.session.ensure_loaded()

    def _open_checkpoint(self, path: str, switch_tab: bool = True) -> None:
        """Make `path` the checkpoint of every canvas (from the runs browser, a drop, the toolbar)."""
        # File ▸ Recent checkpoints gets it once the worker has loaded it (menus), not if it is refused
        self.set_checkpoint(path, load=switch_tab or TAB_KEYS[self.tabs.currentIndex()] not in ("train", "runs"))
        self.checkpoint_bar.refresh()
        if switch_tab:
            self.show_tab("sample")

    def open_detector(self, path: str) -> None:
        """A trained detector into the Detection canvas (from the runs browser or a drop)."""
        self.show_tab("detection")
        if self.canvases["detection"].load_detector(path):
            self.status_label.setText(f"detector: {path}")

    def _ask_checkpoint(self) -> None:
        start = self.checkpoint or str(self.runs_root)
        path, _ = QFileDialog.getOpenFileName(self, "Open a checkpoint", start, "GenLab checkpoints (*.safetensors)")
        if path:
            self._open_checkpoint(path, switch_tab=False)

    def show_sweep(self) -> None:
        """FD against NFE of the window's checkpoint, in a window of its own (one, reused)."""
        if self.sweep_dialog is None:
            from app.panels.sweep_view import SweepDialog
            self.sweep_dialog = SweepDialog(self.session, self, settings=self.settings)
        self.sweep_dialog.show()
        self.sweep_dialog.raise_()

    # ---- panels --------------------------------------------------------------------------------
    def _hint_data_panel(self) -> None:
        """The Data panel warns about a dataset far too small for the chosen batch size."""
        batch = self.model_panel.training_form.values().get("batch_size")
        self.data_panel.set_model_hint(batch if isinstance(batch, int) else None)

    def _lock_panels(self, on: bool) -> None:
        """The Data and Model panels describe the run that trains: read-only until it ends."""
        self.data_panel.set_read_only(on)
        self.model_panel.set_read_only(on)

    def _enable_tabs(self, caps: Capabilities | None) -> None:
        """A tab whose canvas needs a capability the loaded model lacks is disabled, with the
        reason as its tooltip (with no model loaded, every canvas stays reachable)."""
        for spec in CANVASES:
            i = TAB_KEYS.index(spec.key)
            ok = caps is None or not spec.needs or caps.has(spec.needs)
            self.tabs.setTabEnabled(i, ok)
            self.tabs.setTabToolTip(i, "" if ok else f"{spec.title} {spec.why}: the loaded {caps.family} model "
                                                     f"cannot be used there.")

    def eventFilter(self, obj, e):
        # a click on a disabled tab says why it is closed (as its View shortcut does), never nothing
        if obj is self.tabs.tabBar() and e.type() == QEvent.MouseButtonPress:
            i = self.tabs.tabBar().tabAt(e.position().toPoint())
            if i >= 0 and not self.tabs.isTabEnabled(i):
                self.statusBar().showMessage(self.tabs.tabToolTip(i) or f"{self.tabs.tabText(i)} is not available "
                                                                        f"for this model", 10000)
        return super().eventFilter(obj, e)

    # ---- runs ----------------------------------------------------------------------------------
    def build_config(self) -> RunConfig | None:
        return apply_config_defaults(self.model_panel.build_config(self.data_panel.values()), self.settings)

    def continue_run(self, run_dir: str, more_steps: int = 0) -> None:
        """Open a run and continue it from its last checkpoint (for more steps than planned)."""
        self.open_run(run_dir)
        self.show_tab("train")
        self.training.continue_run(more_steps)

    def duplicate_config(self, config_path: str) -> None:
        """A run's config into the Model and Data panels, to train a variant of it."""
        try:
            cfg = RunConfig.load(config_path, stored=True)
        except (ConfigError, OSError) as e:
            self.status_label.setText(f"cannot read {config_path}: {e}")
            return
        self.model_panel.set_config(cfg)
        self.data_panel.set_config(cfg.data)
        self.show_tab("train")
        self.status_label.setText(f"config of {Path(config_path).parent.name} copied into the panels: press Start")

    def reflow_config(self, run_dir: str, checkpoint: str) -> None:
        """A reflow child of a run (its config with model.reflow on and the checkpoint as parent)
        into the Model and Data panels, ready to start."""
        try:
            cfg = reflow_child_config(RunConfig.load(Path(run_dir) / "config.toml", stored=True), checkpoint)
        except (ConfigError, OSError, ValueError) as e:
            self.status_label.setText(f"cannot reflow {Path(run_dir).name}: {e}")
            return
        self.model_panel.set_config(cfg)
        self.data_panel.set_config(cfg.data)
        self.show_tab("train")
        self.status_label.setText(f"reflow child of {Path(run_dir).name} ({Path(checkpoint).name}) set up in the "
                                  f"panels: press Start")

    def open_run(self, run_dir: str) -> None:
        """Watch an existing run directory (plots and samples come from it); the panels show the
        config it was trained with."""
        try:
            cfg = RunConfig.load(Path(run_dir) / "config.toml", stored=True)
            self.model_panel.set_config(cfg)
            self.data_panel.set_config(cfg.data)
        except (ConfigError, OSError):
            pass  # a run from a newer or broken config: its plots and samples still show
        self.watcher.watch(run_dir)
        self.status_label.setText(f"run: {run_dir}")
        self._show_schedule(run_dir)
        ck = RunDir(run_dir).latest_checkpoint()
        if ck:
            self.set_checkpoint(str(ck), load=self.tabs.currentIndex() != 0)
        self.menus.remember_run(run_dir)

    def _on_run_started(self, run_dir: str) -> None:
        self.watcher.watch(run_dir)
        self.status_label.setText(f"run: {run_dir}")
        cfg = self.build_config() if not (Path(run_dir) / "config.toml").exists() else None
        self._show_schedule(run_dir, cfg)

    def _show_schedule(self, run_dir: str, cfg: RunConfig | None = None) -> None:
        """The quality plot says what the run's evaluation passes show and when the next comes."""
        try:
            cfg = cfg or RunConfig.load(Path(run_dir) / "config.toml", stored=True)
        except (ConfigError, OSError):
            self.quality_plot.setVisible(True)   # a run without a readable config: its rows say it
            return
        self._schedule_of(cfg.metrics.every, list(cfg.metrics.metrics), cfg.metrics.inception_weights)

    def _show_planned_schedule(self) -> None:
        """Before a run is shown: the plan of the Model panel's metrics, which Start would train."""
        if self.watcher.run_dir is not None:
            return   # the Train tab shows a run: its own plan
        v = self.model_panel.metrics_form.values()
        every, measures = v.get("every"), v.get("metrics")
        if isinstance(every, int) and isinstance(measures, list):
            self._schedule_of(every, [str(m) for m in measures], str(v.get("inception_weights") or ""))

    def _schedule_of(self, every: int, measures: list[str], inception_weights: str) -> None:
        # without the Inception weights the passes score GenLab's domain features (FD-domain, ...)
        weights = inception_weights or (self.settings.value(KEY_INCEPTION, "") if self.settings is not None else "")
        found = any(p.is_file() for p in inception_candidates(str(weights or "") or None))
        self.quality_plot.set_schedule(every, measures, domain=not found)
        # bits/dim has its own plot: a run that scores nothing else needs no sample-quality plot
        self.quality_plot.setVisible(not every or set(measures) != {"bpd"})

    def _on_run_ended(self, state: str, message: str) -> None:
        self.watcher.poll()
        if self.checkpoint:  # training no longer needs the CPU: the canvases get the final model
            self.set_checkpoint(self.checkpoint, load=True)
        self.status_label.setText(f"run {state}: {self.training.run_dir}" + (f" — {message}" if message else ""))

    def _on_watched_status(self, st: dict) -> None:
        """status.json of the watched run changed. For a run this window does not drive (started
        from a shell, another machine, an earlier session, or opened again after it ended here)
        that is the news of its state."""
        if self.training.speaks_for(self.watcher.run_dir):
            return  # a run this panel trains (or saw end): the engine's events and its exit say it
        self.training.show_status(st, self.watcher.run_dir)
        self.status_label.setText(f"run {st.get('state', '?')} at step {st.get('step', '?')}: {self.watcher.run_dir}")

    def _on_rows(self, rows: list[dict]) -> None:
        for plot in self.plots.values():
            plot.add_rows(rows)
            if plot.isHidden() and plot.point_count():
                plot.show()
        self.quality_plot.add_rows(rows)
        self.training.show_rows(rows)

    def _on_watch_reset(self) -> None:
        """Another run is watched (or the watched one's curve was cut by a resume): nothing of the
        run shown before stays on the Train tab: its curves, legends, readouts, plots of other
        groups (a GAN's D(real)/D(fake) under a DDPM run), images, losses, speed and state."""
        self._clear_plots()
        if self.watcher.run_dir is None:
            return
        self._show_schedule(str(self.watcher.run_dir))   # its plan (a new run's comes with run_started)
        if self.watcher.run_dir != self.training.shown:
            self.training.show_run(self.watcher.run_dir)

    def _clear_plots(self) -> None:
        for key, plot in self.plots.items():
            plot.clear()
            plot.setVisible(key == "loss")   # a group shows again once the run logs one of its values
        self.quality_plot.clear()
        self.artifacts.clear()   # another run's images never stay on screen

    # ---- drag and drop anywhere ---------------------------------------------------------------
    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        self.open_dropped(e.mimeData().urls()[0].toLocalFile())

    def open_dropped(self, path: str) -> None:
        """A file or folder dropped on the window: a checkpoint opens for every canvas, a run folder
        opens as a run, a sample PNG GenLab wrote restores its settings in the Sample tab (PNG Info),
        any other image opens in Inpainting, any other folder becomes the dataset."""
        path = Path(path)
        if path.suffix in (".safetensors", ".json") and is_detector_file(path):
            self.open_detector(str(path))
        elif path.suffix == ".safetensors":
            self._open_checkpoint(str(path))
        elif (path / "config.toml").exists() and (path / "status.json").exists():
            self.open_run(str(path))
            self.show_tab("train")
        elif carries_sample_parameters(path):
            self.show_tab("sample")
            self.canvases["sample"].restore_png_info(str(path))
        elif path.is_file() and is_image_file(path):
            self.show_tab("inpaint")
            problem = self.canvases["inpaint"].open_image(str(path))
            self.status_label.setText(problem or f"opened {path.name} in Inpainting (it carries no GenLab "
                                                 "sampling parameters to restore in Sample)")
        elif path.is_dir():
            self.data_panel.set_folder(str(path))
        else:
            self.status_label.setText(f"cannot open {path.name}: drop a checkpoint (.safetensors), a run or "
                                      "dataset folder, or an image")

    def closeEvent(self, e):
        if self.training.job.is_running():
            choice = self.training.ask(
                "Close GenLab", f"The run {self.training.run_dir.name} is training. Keep it training in the "
                                "background (a process of its own: open the run again to follow it), stop it "
                                "(a checkpoint is saved), or cancel?",
                ["Keep training in the background", "Stop and save", "Cancel"])
            if choice not in ("Keep training in the background", "Stop and save"):
                e.ignore()
                return
            if choice == "Keep training in the background":
                pid = self.training.keep_in_background()
                self.status_label.setText(f"run continues in process {pid}" if pid else "the run was stopped")
        if self.settings is not None:
            self.settings.setValue("geometry", self.saveGeometry())
        self.watcher.stop()
        self.runs.shutdown()
        self.training.shutdown()
        for canvas in self.canvases.values():
            if hasattr(canvas, "shutdown"):
                canvas.shutdown()
        self.session.shutdown()
        self.data_panel.job.kill(wait_ms=3000)
        super().closeEvent(e)
