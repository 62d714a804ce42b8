"""The Detection canvas's trained-detector group (a mixin of app/canvases/detection.py's
DetectionCanvas): train an NPR or CNN detector against checkpoints or evaluate one (the dialogs of
app/canvases/detector_dialog.py, their jobs in a worker of their own), open a saved one; the loaded
detector runs as its check (npr-cnn or cnn), which is switched on. It uses the canvas's settings,
session, check boxes, _show_need, show_error and status."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from app.canvases.detection_watermark import KEY
from app.canvases.detector_dialog import DetectorDialog
from app.canvases.detector_eval_view import short_names
from app.canvases.side_column import wrapping
from engine.core.detector_file import FOLDER_FILE, read_detector_meta

ARCH_CHECK = {"npr": "npr-cnn", "cnn": "cnn"}     # a trained detector's architecture -> the check it serves


def detector_name(path) -> str:
    """A detector's name as a person knows it: its folder's for one saved as a folder of its own
    (…/20261207-234946-detector-npr/detector.safetensors), else its file's."""
    p = Path(path)
    return p.parent.name if p.stem == Path(FOLDER_FILE).stem else p.name


class DetectorGroup:
    """The Trained detector group box, loading a detector and its dialogs (see the module)."""

    def _detector_group(self) -> QGroupBox:
        g = QGroupBox("Trained detector")
        lay = QVBoxLayout(g)
        self.detector_label = wrapping(QLabel(""))
        lay.addWidget(self.detector_label)
        self.train_btn = QPushButton("Train…")
        self.train_btn.setToolTip("Train an NPR or CNN detector on real images against checkpoints of any family, "
                                  "test it on held-out ones")
        self.train_btn.clicked.connect(lambda: self.open_detector_dialog("train"))
        self.open_detector_btn = QPushButton("Open…")
        self.open_detector_btn.setToolTip("Use a saved detector (DET.safetensors or DET.json)")
        self.open_detector_btn.clicked.connect(self._pick_detector)
        self.evaluate_btn = QPushButton("Evaluate…")
        self.evaluate_btn.setToolTip("The loaded detector's report (per generator: accuracy, AP, AUC, ROC), and its "
                                     "evaluation on new images")
        self.evaluate_btn.clicked.connect(lambda: self.open_detector_dialog("eval"))
        row = QHBoxLayout()
        for b in (self.train_btn, self.open_detector_btn, self.evaluate_btn):
            row.addWidget(b)
        lay.addLayout(row)
        self._show_detector()
        return g

    def _show_detector(self) -> None:
        if not self.detector:
            self.detector_label.setText("<small><i>None yet: train one against your checkpoints, or open one. "
                                        "It runs as the NPR detector or CNN detector check.</i></small>")
            self.detector_label.setToolTip("")
        else:
            self.detector_label.setText(f"<small><b>{self.detector_arch.upper()}</b> · {detector_name(self.detector)} · "
                                        f"trained against {short_names(self._detector_trained_on)}</small>")
            self.detector_label.setToolTip(self.detector)
        self.evaluate_btn.setEnabled(bool(self.detector))

    def load_detector(self, path: str, quiet: bool = False) -> bool:
        """Use a trained NPR or CNN detector (DET, DET.json or DET.safetensors) for its check, which
        is switched on. False (and one line in the status) when it is not one."""
        try:
            meta = read_detector_meta(path)
        except ValueError as e:
            if not quiet:
                self.show_error(str(e))
            return False
        arch = str(meta.get("arch", ""))
        if arch not in ARCH_CHECK:
            self.show_error(f"{path}: a detector of an unknown architecture {arch!r}")
            return False
        weights = Path(path).with_suffix(".safetensors") if Path(path).suffix in (".json", ".safetensors") \
            else Path(str(path) + ".safetensors")
        self.detector, self.detector_arch = str(weights), arch
        self._detector_trained_on = sorted((meta.get("training") or {}).get("trained_on", {}))
        self.settings.setValue(KEY + "detector", self.detector)
        for key in ARCH_CHECK.values():
            self._show_need(key)
        self.check_boxes[ARCH_CHECK[arch]].setChecked(True)
        self._show_detector()
        if not quiet:
            self.status.setText(f"{arch.upper()} detector {detector_name(weights)} loaded: its check runs on the images")
        return True

    def _pick_detector(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a trained detector", str(self.detectors_folder),
                                              "Detector (*.json *.safetensors)")
        if path:
            self.load_detector(path)

    def open_detector_dialog(self, mode: str) -> DetectorDialog:
        """The train or evaluate dialog (one each, kept: its job goes on while it is closed)."""
        dlg = self.dialogs.get(mode)
        if dlg is None:
            checkpoint = self.session.checkpoint
            if self.job_session is None:
                self.job_session = self.make_job_session()
            dlg = DetectorDialog(self.job_session, mode, self, self.settings, out_folder=self.detectors_folder,
                                 detector=self.detector, checkpoints=[checkpoint] if checkpoint else [])
            dlg.detector_ready.connect(self.load_detector)
            self.dialogs[mode] = dlg
        elif mode == "eval" and self.detector and not dlg.is_running() and dlg.detector_edit.text() != self.detector:
            dlg.detector_edit.setText(self.detector)
            dlg.load_detector_reports(self.detector)
        dlg.show()
        dlg.raise_()
        return dlg
