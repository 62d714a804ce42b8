"""The main window: Data and Model panels on the left; Train and Sample tabs in the middle.
Folders and checkpoints can be dropped anywhere on the window."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QLabel, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from app.canvases.interpolation import InterpolationCanvas
from app.canvases.sampling import SamplingCanvas
from app.canvases.style_mixing import StyleMixCanvas
from app.engine_client import WorkerClient
from app.panels.data_panel import DataPanel
from app.panels.model_panel import ModelPanel
from app.panels.plots_panel import LossPlot, MetricPlot
from app.panels.training_panel import TrainingPanel
from app.run_watcher import RunWatcher
from app.widgets.image_view import ImageView
from engine.config import ConfigError, RunConfig
from engine.rundir import RunDir


def default_runs_root() -> Path:
    home = os.environ.get("GENLAB_HOME")
    return Path(home) / "runs" if home else Path.home() / "GenLab" / "runs"


class MainWindow(QMainWindow):
    def __init__(self, runs_root: Path | None = None, preset: str = "ddpm-digits", settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("GenLab")
        self.setAcceptDrops(True)
        self.settings = settings
        self.runs_root = Path(runs_root or default_runs_root())

        self.data_panel = DataPanel()
        self.model_panel = ModelPanel()
        self.training = TrainingPanel(self.runs_root, self.build_config)
        self.loss_plot = LossPlot(prefix="loss", title="loss")
        # GANs: how D scores reals and fakes, and ADA's augmentation probability
        self.gan_plot = LossPlot(keys=("d_real", "d_fake", "ada_p"), title="D(real) / D(fake) / ADA p", log=False)
        self.gan_plot.hide()
        self.quality_plot = MetricPlot()
        self.samples = ImageView("Sample grids appear here while training (fixed seed, every N steps).")
        self.sample_caption = QLabel("")
        self.sample_caption.setAlignment(Qt.AlignCenter)
        # one engine worker serves every canvas: a checkpoint is loaded once
        self.worker = WorkerClient(self)
        self.sampling = SamplingCanvas(worker=self.worker)
        self.style_mix = StyleMixCanvas(self.worker)
        self.interpolation = InterpolationCanvas(self.worker)
        self.watcher = RunWatcher(parent=self)

        left = QSplitter(Qt.Vertical)
        left.addWidget(self.data_panel)
        left.addWidget(self.model_panel)
        left.setStretchFactor(1, 1)

        samples_box = QWidget()
        sl = QVBoxLayout(samples_box)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.samples, 1)
        sl.addWidget(self.sample_caption)
        plots = QSplitter(Qt.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.gan_plot)
        plots.addWidget(self.quality_plot)
        plots.setSizes([400, 260, 220])
        self.quality_plot.plot.setXLink(self.loss_plot.plot)  # one step axis for loss and quality
        live = QSplitter(Qt.Horizontal)
        live.addWidget(plots)
        live.addWidget(samples_box)
        live.setSizes([450, 450])
        train_tab = QWidget()
        tl = QVBoxLayout(train_tab)
        tl.addWidget(self.training)
        tl.addWidget(live, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(train_tab, "Train")
        self.tabs.addTab(self.sampling, "Sample")
        self.tabs.addTab(self.style_mix, "Style mixing")
        self.tabs.addTab(self.interpolation, "Interpolate")
        main = QSplitter(Qt.Horizontal)
        main.addWidget(left)
        main.addWidget(self.tabs)
        main.setSizes([380, 900])
        main.setStretchFactor(1, 1)
        self.setCentralWidget(main)
        self.status_label = QLabel(f"runs: {self.runs_root}")
        self.statusBar().addWidget(self.status_label, 1)

        self.model_panel.preset_loaded.connect(lambda cfg: self.data_panel.set_config(cfg.data))
        self.training.run_started.connect(self._on_run_started)
        self.training.checkpoint_saved.connect(lambda p: self.set_checkpoint(p, load=False))
        self.training.run_ended.connect(self._on_run_ended)
        self.watcher.metrics.connect(self.loss_plot.add_rows)
        self.watcher.metrics.connect(self.quality_plot.add_rows)
        self.watcher.metrics.connect(self._gan_rows)
        self.watcher.reset.connect(self.loss_plot.clear)
        self.watcher.reset.connect(self.gan_plot.clear)
        self.watcher.reset.connect(self.quality_plot.clear)
        self.training.job.event.connect(
            lambda ev: self.quality_plot.show_progress(ev) if ev.get("event") == "eval_progress" else None)
        self.watcher.sample.connect(self._on_sample)
        self.tabs.currentChanged.connect(self._on_tab)
        self.checkpoint = ""

        self.model_panel.load_preset(preset)
        self.resize(1360, 860)
        if settings is not None and settings.value("geometry"):
            self.restoreGeometry(settings.value("geometry"))

    def set_checkpoint(self, path: str, load: bool = True) -> None:
        """Every canvas works on this checkpoint (the shared worker loads it once). While a run
        trains, new checkpoints are only noted (load=False): the worker loads one when a canvas
        is opened or the run ends, so it never competes with training for the CPU."""
        self.checkpoint = path
        self.style_mix.set_checkpoint(path)
        self.interpolation.set_checkpoint(path)
        self.sampling.set_checkpoint(path, load=load)

    def _on_tab(self, _index: int) -> None:
        canvas = self.tabs.currentWidget()
        if canvas in (self.style_mix, self.interpolation) and self.checkpoint and \
                self.sampling.loaded_checkpoint != self.checkpoint:
            self.set_checkpoint(self.checkpoint, load=True)

    def _gan_rows(self, rows: list[dict]) -> None:
        self.gan_plot.add_rows(rows)
        if self.gan_plot.point_count() and self.gan_plot.isHidden():
            self.gan_plot.show()

    def build_config(self) -> RunConfig | None:
        return self.model_panel.build_config(self.data_panel.values())

    def open_run(self, run_dir: str) -> None:
        """Watch an existing run directory (plots and samples come from it); the panels show the
        config it was trained with."""
        try:
            cfg = RunConfig.load(Path(run_dir) / "config.toml")
            self.model_panel.set_config(cfg)
            self.data_panel.set_config(cfg.data)
        except (ConfigError, OSError):
            pass  # a run from a newer or broken config: its plots and samples still show
        self.watcher.watch(run_dir)
        self.status_label.setText(f"run: {run_dir}")
        ck = RunDir(run_dir).latest_checkpoint()
        if ck:
            self.set_checkpoint(str(ck), load=self.tabs.currentWidget() is not self.tabs.widget(0))

    def _on_run_started(self, run_dir: str) -> None:
        self.watcher.watch(run_dir)
        self.status_label.setText(f"run: {run_dir}")

    def _on_run_ended(self, state: str, message: str) -> None:
        self.watcher.poll()
        if self.checkpoint:  # training no longer needs the CPU: the canvases get the final model
            self.set_checkpoint(self.checkpoint, load=True)
        self.status_label.setText(f"run {state}: {self.training.run_dir}" + (f" — {message}" if message else ""))

    def _on_sample(self, path: str) -> None:
        self.samples.set_path(path)
        step = Path(path).stem.replace("step_", "")
        self.sample_caption.setText(f"samples at step {int(step)}" if step.isdigit() else Path(path).name)

    # ---- drag and drop anywhere ---------------------------------------------------------------
    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        path = Path(e.mimeData().urls()[0].toLocalFile())
        if path.suffix == ".safetensors":
            self.tabs.setCurrentWidget(self.sampling)
            self.set_checkpoint(str(path))
        elif (path / "config.toml").exists() and (path / "status.json").exists():
            self.open_run(str(path))
        elif path.is_dir():
            self.data_panel.set_folder(str(path))

    def closeEvent(self, e):
        if self.settings is not None:
            self.settings.setValue("geometry", self.saveGeometry())
        self.watcher.stop()
        self.training.shutdown()
        self.sampling.shutdown()
        self.worker.shutdown()
        self.data_panel.job.kill(wait_ms=3000)
        super().closeEvent(e)
