"""The Detection canvas's detector dialog: train an NPR or CNN detector ("Train a detector…") or
evaluate a saved one on new images ("Evaluate detector…"). The job runs in the engine worker (the
`detector-train` / `detector-eval` ops, engine/ops/): the dialog shows each stage's progress with
the time it has left, and Cancel stops the engine between sampling batches and training steps
(nothing is written then). When the job answers, its evaluation view shows per generator accuracy
at 0.5, AP and AUC, the ROC curves, the leave-one-generator-out heat map and the format-bias
control; a trained detector is handed to the canvas (detector_ready) for its npr-cnn / cnn checks.

The sources: real images from a built-in dataset or a folder; checkpoints trained against, and
held-out ones only tested on (a leave-one-generator-out test of the detector on what it never saw)."""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout,
                               QGridLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QProgressBar, QPushButton, QScrollArea, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from app.canvases.detector_eval_view import DetectorEvalView, short_name, short_names
from app.canvases.side_column import wrapping
from app.qt_util import human_duration, scratch_settings
from app.screen_fit import fit_to_screen
from engine.core.config import DATASETS
from engine.core.detector_file import FOLDER_FILE, read_detector_meta

KEY = "detection/detector_"
ARCHS = (("npr", "NPR: a small CNN on the neighbouring-pixel residual (Tan et al. 2024)"),
         ("cnn", "CNN on the image, Wang et al. 2020"))
ERROR = "<span style='color:#c0392b'>✖ {}</span>"
BUILT_IN = [d for d in DATASETS if d != "folder"]


def default_detector_path(folder: str | Path, arch: str, now: datetime | None = None) -> str:
    """<folder>/<yyyymmdd-hhmmss>-detector-<arch>/detector.safetensors: a folder of its own, which
    the runs browser lists beside the runs (engine/runs/index.py)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return str(Path(folder) / f"{stamp}-detector-{arch}" / Path(FOLDER_FILE).with_suffix(".safetensors"))


def reports_of(meta: dict) -> list[tuple[str, dict]]:
    """A detector description's reports, newest last: its training test, then each evaluation."""
    arch = str(meta.get("arch", "?"))
    trained = sorted((meta.get("training") or {}).get("trained_on", {}))
    data, report = meta.get("data") or {}, meta.get("report") or {}
    out = []
    if report.get("test"):
        out.append(("test after training", {
            "title": f"{arch.upper()} detector trained against {short_names(trained)}",
            "statement": data.get("statement", ""), "results": report["test"],
            "format_bias_control": report.get("format_bias_control"), "leave_one_out": report.get("leave_one_out")}))
    for k, ev in enumerate(meta.get("evaluations") or [], 1):
        lo, hi = (ev.get("real_indices") or [0, 0])[:2]
        out.append((f"evaluation {k}", {
            "title": f"Evaluation {k} of the {arch.upper()} detector: real images {lo}..{hi - 1} of {ev.get('real', '?')}",
            "statement": data.get("statement", ""), "results": ev.get("results") or {}}))
    return out


class HintedList(QListWidget):
    """A list that, while empty, says in grey what goes into it (an empty white box beside "Train
    against" did not say that it wants checkpoint files)."""

    def __init__(self, hint: str, parent=None):
        super().__init__(parent)
        self.hint = hint

    def paintEvent(self, e):
        super().paintEvent(e)
        if self.count() == 0:
            p = QPainter(self.viewport())
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.viewport().rect().adjusted(6, 4, -6, -4), Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap,
                       self.hint)


class CheckpointList(QWidget):
    """Checkpoint files, added with a file dialog or dropped; removed with the button or Delete."""

    changed = Signal()

    def __init__(self, what: str, parent=None):
        super().__init__(parent)
        self.what = what
        self.setAcceptDrops(True)
        self.list = HintedList(f"Drop or add {what}: GenLab .safetensors files of any family")
        self.list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.list.setTextElideMode(Qt.ElideLeft)     # the run folder and the step tell them apart
        rows = self.list.fontMetrics().height() + 4
        self.list.setMinimumHeight(2 * rows + 6)
        self.list.setMaximumHeight(4 * rows + 6)
        self.add_btn = QPushButton("Add…")
        self.add_btn.setToolTip(f"Add {what} (GenLab checkpoints, any family)")
        self.add_btn.clicked.connect(self._ask)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.clicked.connect(self.remove_selected)
        # a file dialog, replaceable (tests): ask() -> [paths]
        self.ask = lambda: QFileDialog.getOpenFileNames(self, f"Add {self.what}", "",
                                                        "GenLab checkpoints (*.safetensors)")[0]
        buttons = QVBoxLayout()
        buttons.addWidget(self.add_btn)
        buttons.addWidget(self.remove_btn)
        buttons.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]

    def add(self, *paths: str) -> None:
        have = set(self.paths())
        for p in paths:
            if p and p not in have:
                item = QListWidgetItem(f"{Path(p).parent.parent.name}/{Path(p).name}"
                                       if Path(p).parent.name == "checkpoints" else Path(p).name)
                item.setData(Qt.UserRole, p)
                item.setToolTip(p)
                self.list.addItem(item)
                have.add(p)
        self.changed.emit()

    def set_paths(self, paths) -> None:
        self.list.clear()
        self.add(*paths)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()

    def _ask(self) -> None:
        paths = self.ask()
        if paths:
            self.add(*paths)

    def keyPressEvent(self, e):
        if e.key() == Qt.Key_Delete:
            self.remove_selected()
        else:
            super().keyPressEvent(e)

    def dragEnterEvent(self, e):
        if any(u.toLocalFile().endswith(".safetensors") for u in e.mimeData().urls()):
            e.acceptProposedAction()

    def dropEvent(self, e):
        self.add(*[u.toLocalFile() for u in e.mimeData().urls() if u.toLocalFile().endswith(".safetensors")])
        e.acceptProposedAction()


class DetectorDialog(QDialog):
    """mode "train": the form of a new detector; mode "eval": a saved detector (its stored reports
    shown at once) to evaluate on new images. One job at a time; the worker runs it, and closing the
    dialog only hides it (the canvas keeps it: shown again, it has the job's progress)."""

    detector_ready = Signal(str)      # a detector trained (DET.safetensors)

    def __init__(self, session, mode: str = "train", parent=None, settings: QSettings | None = None, *,
                 out_folder: str | Path = "runs", detector: str = "", checkpoints: list[str] | None = None):
        super().__init__(parent)
        assert mode in ("train", "eval"), mode
        self.session, self.mode = session, mode
        self.settings = settings if settings is not None else scratch_settings()
        self.out_folder = Path(out_folder)
        self.rid = 0                       # the job in flight (0: none)
        self._stage, self._stage_t0 = "", 0.0
        self.result: dict | None = None
        self.reports: list[tuple[str, dict]] = []
        self.setWindowTitle("Train a detector" if mode == "train" else "Evaluate a detector")

        self.view = DetectorEvalView()
        self.report_pick = QComboBox()
        self.report_pick.setToolTip("The detector's test after training, or one of its later evaluations")
        self.report_pick.currentIndexChanged.connect(self._show_picked)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._settings_page(checkpoints or [], detector), "Settings")
        report_page = QWidget()
        rl = QVBoxLayout(report_page)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.report_pick, 1)
        rl.addLayout(top)
        rl.addWidget(self.view, 1)
        self.tabs.addTab(report_page, "Evaluation")

        self.progress = QProgressBar()
        self.progress.setFormat("")
        self.progress.setValue(0)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the job in the engine (between sampling batches and training steps); "
                                   "nothing is written")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.start_btn = QPushButton("Train" if mode == "train" else "Evaluate")
        self.start_btn.setDefault(True)
        self.start_btn.clicked.connect(self.start)
        self.close_btn = QPushButton("Close")
        self.close_btn.setAutoDefault(False)
        self.close_btn.clicked.connect(self.close)
        self.status = wrapping(QLabel(""))
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        run_row = QHBoxLayout()
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_btn)
        run_row.addWidget(self.start_btn)
        run_row.addWidget(self.close_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.status)
        lay.addLayout(run_row)
        fit_to_screen(self, QSize(880, 600))    # within a 1024×640 screen, frame included
        session.reset.connect(self._on_reset)
        if mode == "eval" and detector:
            self.load_detector_reports(detector)

    # ---- the form ------------------------------------------------------------------------------
    def _settings_page(self, checkpoints: list[str], detector: str) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.detector_edit = QLineEdit(detector)
        self.detector_edit.setToolTip("DET.safetensors or DET.json of a trained NPR or CNN detector")
        self.detector_edit.editingFinished.connect(lambda: self.load_detector_reports(self.detector_edit.text()))
        if self.mode == "eval":
            form.addRow("Detector", self._with_button(self.detector_edit, "Choose…", self._pick_detector))
        self.real = QComboBox()
        self.real.setEditable(True)
        self.real.addItems(BUILT_IN)
        self.real.setCurrentText(self.settings.value(KEY + "real", "digits"))
        self.real.setToolTip("A built-in dataset (" + ", ".join(BUILT_IN) + ") or a folder of real images; real and "
                             "generated images go through the same pipeline (size, colour, encoding)")
        form.addRow("Real images", self._with_button(self.real, "Folder…", self._pick_real_folder))
        self.fakes = CheckpointList("checkpoints to train against" if self.mode == "train" else "checkpoints to test on")
        self.fakes.add(*checkpoints)
        form.addRow("Train against" if self.mode == "train" else "Test on", self.fakes)
        self.holdout = CheckpointList("held-out checkpoints (tested on, never trained on)")
        self.arch = QComboBox()
        for key, title in ARCHS:
            self.arch.addItem(title, key)
        self.augment = QCheckBox("Blur + JPEG augmentation (Wang et al.: each with probability 0.5)")
        self.arch.currentIndexChanged.connect(lambda: self.augment.setChecked(self.arch.currentData() == "cnn"))
        self.bias_control = QCheckBox("Format-bias control (a second detector, real JPEG 75 against PNG fakes)")
        self.bias_control.setChecked(True)
        self.logo = QCheckBox("Leave-one-generator-out matrix (one more detector per generator)")
        self.logo.setToolTip("Train on all generators but one, test on every one, for each generator: "
                             "the train × test heat map")
        self._default_out = default_detector_path(self.out_folder, "npr")
        self.out_edit = QLineEdit(self._default_out)
        self.out_edit.setToolTip("DET.safetensors and DET.json are written there once training finished")
        self.arch.currentIndexChanged.connect(self._follow_arch)
        self.real_count = self._spin(2, 100_000, 256, "real_count")
        self.fake_count = self._spin(2, 100_000, 256, "fake_count")
        self.steps = self._spin(1, 1_000_000, 300, "steps")
        self.batch_size = self._spin(2, 4096, 32, "batch_size")
        self.width = self._spin(1, 256, 16, "width")
        counts = QGridLayout()
        counts.setContentsMargins(0, 0, 0, 0)
        pairs = [("real", self.real_count), ("per checkpoint", self.fake_count)]
        if self.mode == "train":
            pairs += [("steps", self.steps), ("batch", self.batch_size), ("width", self.width)]
        for k, (label, spin) in enumerate(pairs):
            counts.addWidget(QLabel(label), k // 3, 2 * (k % 3), Qt.AlignRight)
            counts.addWidget(spin, k // 3, 2 * (k % 3) + 1)
        if self.mode == "train":
            form.addRow("Held out", self.holdout)
            form.addRow("Architecture", self.arch)
            form.addRow("", self.augment)
        form.addRow("Images" if self.mode == "eval" else "Counts", counts)
        if self.mode == "train":
            form.addRow("", self.bias_control)
            form.addRow("", self.logo)
            form.addRow("Save as", self._with_button(self.out_edit, "Choose…", self._pick_out))
        note = wrapping(QLabel("<small>Generated images are sampled from each checkpoint once and cached. " + (
            "The held-out checkpoints are only tested on: how the detector does on generators it never saw."
            if self.mode == "train" else
            "For the detector's own real data, the real images after the ones it trained on are used; the "
            "checkpoints are sampled from seed 1000 on (training used seed 0).") + "</small>"))
        form.addRow(note)
        area = QScrollArea()     # the form scrolls in a short window (1024×640) instead of squeezing
        area.setWidget(page)
        area.setWidgetResizable(True)
        return area

    def _spin(self, lo: int, hi: int, default: int, name: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setValue(int(self.settings.value(KEY + name, default)))
        spin.valueChanged.connect(lambda v, n=name: self.settings.setValue(KEY + n, v))
        return spin

    @staticmethod
    def _with_button(editor: QWidget, text: str, slot) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(editor, 1)
        button = QPushButton(text)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        lay.addWidget(button)
        return row

    def _follow_arch(self) -> None:
        """A default output path names the architecture: it follows the choice (an edited one stays)."""
        text = self.out_edit.text()
        other = "npr" if self.arch.currentData() == "cnn" else "cnn"
        if text.endswith(f"-detector-{other}/{Path(FOLDER_FILE).with_suffix('.safetensors')}"):
            self._default_out = text.replace(f"-detector-{other}/", f"-detector-{self.arch.currentData()}/")
            self.out_edit.setText(self._default_out)

    def _pick_real_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A folder of real images")
        if path:
            self.real.setCurrentText(path)

    def _pick_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the detector as", self.out_edit.text(),
                                              "Detector (*.safetensors)")
        if path:
            self.out_edit.setText(path)

    def _pick_detector(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a trained detector", str(self.out_folder),
                                              "Detector (*.json *.safetensors)")
        if path:
            self.detector_edit.setText(path)
            self.load_detector_reports(path)

    # ---- the job -------------------------------------------------------------------------------
    def fields(self) -> dict:
        """The request's fields from the form."""
        common = {"real": self.real.currentText().strip(), "fakes": self.fakes.paths(),
                  "real_count": self.real_count.value(), "fake_count": self.fake_count.value()}
        if self.mode == "eval":
            return {**common, "detector": self.detector_edit.text().strip()}
        return {**common, "holdout": self.holdout.paths(), "arch": self.arch.currentData(),
                "augment": self.augment.isChecked(), "steps": self.steps.value(),
                "batch_size": self.batch_size.value(), "width": self.width.value(),
                "bias_control": self.bias_control.isChecked(), "leave_one_out": self.logo.isChecked(),
                "out": self.out_edit.text().strip()}

    def problem(self, f: dict) -> str:
        """What stops the form from starting, in one line ('' when nothing does)."""
        if not f["real"]:
            return "Choose the real images: a built-in dataset or a folder"
        if f["real"] not in BUILT_IN and not Path(f["real"]).is_dir():
            return f"{f['real']}: neither a built-in dataset ({', '.join(BUILT_IN)}) nor a folder"
        if not f["fakes"]:
            return "Add at least one checkpoint to " + ("train against" if self.mode == "train" else "test on")
        if self.mode == "eval" and not f["detector"]:
            return "Choose the detector to evaluate"
        if self.mode == "train":
            if not f["out"]:
                return "Choose where to save the detector"
            if self.logo.isChecked() and len(f["fakes"]) + len(f["holdout"]) < 2:
                return "The leave-one-generator-out matrix needs two checkpoints or more"
        return ""

    def start(self) -> int:
        """Send the job to the worker; the request id (0: the form is not ready, or a job runs)."""
        if self.rid:
            return 0
        f = self.fields()
        problem = self.problem(f)
        if problem:
            self.status.setText(ERROR.format(problem))
            return 0
        self.settings.setValue(KEY + "real", f["real"])
        op = "detector-train" if self.mode == "train" else "detector-eval"
        # checkpoint "": the job loads the checkpoints it samples from itself; the window's model stays
        self.rid = self.session.request(self, op, checkpoint="", **f)
        self._stage, self._stage_t0 = "", time.monotonic()
        self.progress.setRange(0, 0)     # busy until the first progress
        self.progress.setFormat("starting…")
        self.status.setText("training…" if self.mode == "train" else "evaluating…")
        self.cancel_btn.setEnabled(True)
        self.start_btn.setEnabled(False)
        return self.rid

    def cancel(self) -> None:
        if self.rid:
            self.session.cancel(self.rid)
            self.progress.setFormat("cancelling…")
            self.cancel_btn.setEnabled(False)

    def is_running(self) -> bool:
        return bool(self.rid)

    # ---- replies (app/worker_session.py RequestOwner) --------------------------------------------
    def on_progress(self, rid: int, stage: str, done: int, total: int) -> None:
        if rid != self.rid:
            return
        now = time.monotonic()
        if stage != self._stage:        # each stage its own clock: sampling and training differ in pace
            self._stage, self._stage_t0 = stage, now
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total))
        text = f"{stage} %v / %m"
        if 0 < done < total:
            text += f" · {human_duration((now - self._stage_t0) * (total - done) / done)} left"
        self.progress.setFormat(text)
        self.progress.setToolTip(text.replace("%v", str(done)).replace("%m", str(total)))

    def on_result(self, ev: dict) -> None:
        self.result = ev
        if self.mode == "train":
            self.load_detector_reports(ev["detector"], select_last=False)
            self.status.setText(f"saved {ev['detector']} (and its .json); the Detection canvas uses it now")
            if self.out_edit.text() == self._default_out:    # the next one gets a folder of its own
                self._default_out = default_detector_path(self.out_folder, self.arch.currentData())
                self.out_edit.setText(self._default_out)
            self.detector_ready.emit(ev["detector"])
        else:
            self.load_detector_reports(self.detector_edit.text(), select_last=True)
            self.status.setText(f"evaluated on real images {ev['real_indices'][0]}..{ev['real_indices'][1] - 1}; "
                                f"added to {Path(ev['detector']).with_suffix('.json').name}")
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.tabs.setCurrentIndex(1)

    def on_failed(self, rid: int, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed")
        self.status.setText(ERROR.format(message))

    def on_cancelled(self, rid: int) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self.status.setText("cancelled: nothing was written")

    def _on_reset(self, message: str) -> None:
        """The worker process ended: a job in flight is lost (its reply will never come)."""
        if self.rid:
            self.on_failed(self.rid, message)
            self.on_done(self.rid, "error")

    def on_done(self, rid: int, kind: str) -> None:
        if rid == self.rid:
            self.rid = 0
            self.cancel_btn.setEnabled(False)
            self.start_btn.setEnabled(True)

    # ---- reports -------------------------------------------------------------------------------
    def load_detector_reports(self, path: str, select_last: bool = True) -> bool:
        """Show a saved detector's reports (its test after training, its evaluations) from DET.json."""
        if not path:
            return False
        try:
            meta = read_detector_meta(path)
        except ValueError as e:
            self.status.setText(ERROR.format(str(e)))
            return False
        self.show_reports(reports_of(meta), select_last)
        return True

    def show_reports(self, reports: list[tuple[str, dict]], select_last: bool = True) -> None:
        self.reports = reports
        self.report_pick.blockSignals(True)
        self.report_pick.clear()
        for label, _ in reports:
            self.report_pick.addItem(label)
        self.report_pick.blockSignals(False)
        if reports:
            self.report_pick.setCurrentIndex(len(reports) - 1 if select_last else 0)
            self._show_picked()

    def _show_picked(self) -> None:
        i = self.report_pick.currentIndex()
        if 0 <= i < len(self.reports):
            self.view.show_report(self.reports[i][1])
