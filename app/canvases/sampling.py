"""Sampling canvas: open (or drop) a checkpoint, sample a grid with seed, steps, sampler, eta,
guidance and class, save the PNG. Requests go to the engine worker; a newer one supersedes an
older one, so clicking again never queues stale work."""
from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.engine_client import EvalJob, WorkerClient
from app.widgets.image_view import ImageView

CKPT_FILTER = "GenLab checkpoints (*.safetensors)"


class SamplingCanvas(QWidget):
    sampled = Signal(str)

    def __init__(self, parent=None, worker: WorkerClient | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.worker = worker or WorkerClient(self)
        self.worker.ready.connect(self._on_ready)
        self.worker.result.connect(self._on_result)
        self.worker.progress.connect(self._on_progress)
        self.worker.failed.connect(self._on_failed)
        self.pending_id = 0
        self.capabilities: dict = {}
        self.loaded_checkpoint = ""  # what the worker has loaded (its last ready event)

        self.ckpt = QLineEdit()
        self.ckpt.setPlaceholderText("a checkpoint (.safetensors): open, drop, or train one")
        self.open_btn = QPushButton("Open…")
        self.n = QSpinBox(minimum=1, maximum=1024, value=50)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.steps = QSpinBox(minimum=1, maximum=1000, value=25)
        self.sampler = QComboBox()
        self.sampler.addItems(["ddim", "ddpm"])
        self.eta = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.1, value=0.0)
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=20.0, singleStep=0.5, value=2.0)
        self.psi = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.05, value=1.0)
        self.psi.setToolTip("GANs: truncation psi (1 = off; lower = more typical, less varied)")
        self.psi.setEnabled(False)
        self.cls = QComboBox()
        self.cls.addItem("all classes", None)
        self.sample_btn = QPushButton("Sample")
        self.save_btn = QPushButton("Save PNG…")
        self.progress = QProgressBar()
        self.progress.setFormat("")
        self.eval_n = QSpinBox(minimum=50, maximum=50000, value=1000, singleStep=500)
        self.eval_n.setToolTip("Generated images to score against the training data")
        self.eval_btn = QPushButton("Evaluate")
        self.eval_btn.setToolTip("FID (FD-domain without the Inception weights), KID, precision/recall, IS; "
                                 "runs in an engine process")
        self.eval_progress = QProgressBar()
        self.eval_progress.setFormat("")
        self.eval_result = QLabel("")
        self.eval_result.setWordWrap(True)
        self.eval_result.setTextInteractionFlags(self.eval_result.textInteractionFlags() | Qt.TextSelectableByMouse)
        self.eval_job = EvalJob(self)
        self.eval_job.progressed.connect(self._on_eval_progress)
        self.eval_job.done.connect(self._on_eval_done)
        self.eval_job.failed.connect(lambda m: (self.eval_progress.setFormat("failed"),
                                                self.eval_result.setText(f"<span style='color:#c0392b'>✖ {m}</span>"),
                                                self.eval_btn.setEnabled(True)))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.view = ImageView("Samples appear here.")
        for w, tip in ((self.n, "How many images"), (self.seed, "Same seed, same images"),
                       (self.steps, "Denoising steps"), (self.eta, "DDIM noise (0 = deterministic)"),
                       (self.guidance, "Classifier-free guidance scale (1 = off)")):
            w.setToolTip(tip)

        row = QHBoxLayout()
        row.addWidget(self.ckpt, 1)
        row.addWidget(self.open_btn)
        form = QFormLayout()
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Sampler", self.sampler)
        form.addRow("Steps", self.steps)
        form.addRow("Eta", self.eta)
        form.addRow("Guidance", self.guidance)
        form.addRow("Truncation ψ", self.psi)
        form.addRow("Class", self.cls)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.sample_btn)
        side.addWidget(self.save_btn)
        side.addWidget(self.progress)
        side.addWidget(self.status)
        ev_row = QHBoxLayout()
        ev_row.addWidget(QLabel("Score"))
        ev_row.addWidget(self.eval_n)
        ev_row.addWidget(self.eval_btn)
        side.addSpacing(12)
        side.addLayout(ev_row)
        side.addWidget(self.eval_progress)
        side.addWidget(self.eval_result)
        side.addStretch(1)
        body = QHBoxLayout()
        body.addLayout(side)
        body.addWidget(self.view, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addLayout(body, 1)

        self.open_btn.clicked.connect(self._open)
        self.sample_btn.clicked.connect(self.sample)
        self.save_btn.clicked.connect(self._save)
        self.eval_btn.clicked.connect(self.evaluate)
        self.ckpt.editingFinished.connect(lambda: self.set_checkpoint(self.ckpt.text()))
        self.save_btn.setEnabled(False)

    def set_checkpoint(self, path: str, load: bool = True) -> None:
        self.ckpt.setText(path)
        if load and path:
            self.status.setText("loading checkpoint…")
            self.worker.request("load", checkpoint=path)

    def sample(self) -> int:
        path = self.ckpt.text().strip()
        if not path:
            self.status.setText("Open a checkpoint first.")
            return 0
        self.progress.setRange(0, self.steps.value())
        self.progress.setValue(0)
        self.progress.setFormat("sampling %v / %m")
        self.pending_id = self.worker.request(
            "sample", checkpoint=path, n=self.n.value(), seed=self.seed.value(), steps=self.steps.value(),
            sampler=self.sampler.currentText(), eta=self.eta.value(), guidance_scale=self.guidance.value(),
            psi=self.psi.value(), **{"class": self.cls.currentData()})
        return self.pending_id

    def evaluate(self) -> None:
        path = self.ckpt.text().strip()
        if not path:
            self.eval_result.setText("Open a checkpoint first.")
            return
        self.eval_btn.setEnabled(False)
        self.eval_result.setText("")
        self.eval_progress.setFormat("starting…")
        self.eval_job.evaluate(path, self.eval_n.value(), steps=self.steps.value())

    def _on_eval_progress(self, stage: str, done: int, total: int) -> None:
        self.eval_progress.setRange(0, total)
        self.eval_progress.setValue(done)
        self.eval_progress.setFormat(f"{stage} %v / %m")

    def _on_eval_done(self, r: dict) -> None:
        self.eval_btn.setEnabled(True)
        self.eval_progress.setFormat(f"done in {r.get('seconds', 0):.0f}s")
        names = [("fid", "FID"), ("fd_domain", "FD-domain"), ("kid", "KID"), ("kid_domain", "KID-domain"),
                 ("precision", "precision"), ("precision_domain", "precision-domain"), ("recall", "recall"),
                 ("recall_domain", "recall-domain"), ("is", "IS"), ("is_domain", "IS-domain")]
        lines = [f"{label}: <b>{r[k]:.4g}</b>" for k, label in names if k in r]
        note = "" if r.get("extractor") == "inception" else "<br><i>Inception weights not found: domain features</i>"
        self.eval_result.setText(f"{r.get('n')} samples at step {r.get('step')}:<br>" + "<br>".join(lines) + note)

    def _on_ready(self, ev: dict) -> None:
        self.loaded_checkpoint = ev.get("checkpoint", "")
        caps = ev.get("capabilities", {})
        self.capabilities = caps
        self.cls.clear()
        self.cls.addItem("all classes" if caps.get("class_labels") else "unconditional", None)
        for i, name in enumerate(caps.get("class_labels", [])):
            self.cls.addItem(f"{i}: {name}", i)
        self.guidance.setEnabled(bool(caps.get("guidance")))
        self.psi.setEnabled(bool(caps.get("truncation")))
        for w in (self.steps, self.eta, self.sampler):
            w.setEnabled(bool(caps.get("samplers")))  # a GAN samples in one pass: no steps
        samplers = caps.get("samplers") or ["ddim"]
        current = self.sampler.currentText()
        self.sampler.clear()
        self.sampler.addItems(samplers)
        if current in samplers:
            self.sampler.setCurrentText(current)
        self.status.setText(f"loaded {Path(ev['checkpoint']).name} (step {ev.get('step')}): {caps.get('family')}, "
                            f"{caps.get('resolution')}×{caps.get('resolution')}")

    def _on_progress(self, rid: int, done: int, total: int) -> None:
        if rid == self.pending_id:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _on_result(self, rid: int, path: str, seconds: float) -> None:
        if rid != self.pending_id:
            return
        self.view.set_path(path)
        self.progress.setFormat("done")
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"{self.n.value()} images in {seconds:.1f}s")
        self.save_btn.setEnabled(True)
        self.sampled.emit(path)

    def _on_failed(self, rid: int, message: str) -> None:
        self.progress.setFormat("failed")
        self.status.setText(f"<span style='color:#c0392b'>✖ {message}</span>")

    def _open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a checkpoint", self.ckpt.text(), CKPT_FILTER)
        if path:
            self.set_checkpoint(path)

    def save_to(self, path: str) -> None:
        shutil.copyfile(self.view.path, path)
        self.status.setText(f"saved {path}")

    def _save(self) -> None:
        if not self.view.path:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save samples", "samples.png", "PNG (*.png)")
        if path:
            self.save_to(path)

    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls() and e.mimeData().urls()[0].toLocalFile().endswith(".safetensors"):
            e.acceptProposedAction()

    def dropEvent(self, e):
        self.set_checkpoint(e.mimeData().urls()[0].toLocalFile())

    def shutdown(self) -> None:
        if self.worker.parent() is self:
            self.worker.shutdown()
        self.eval_job.kill(wait_ms=3000)
