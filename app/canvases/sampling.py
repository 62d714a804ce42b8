"""Sampling canvas: open (or drop) a checkpoint, sample a grid with a seed, a class and the
family's own sample options (drawn from its options dataclass: steps, solver, eta and guidance for
diffusion, psi for a GAN, …), save the PNG, evaluate. Requests go to the shared engine worker; a
newer one supersedes an older one, so clicking again never queues stale work."""
from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout)

from app.canvases.base import Canvas
from app.engine_client import EvalJob
from app.widgets.image_view import ImageView
from engine.capabilities import Capabilities

CKPT_FILTER = "GenLab checkpoints (*.safetensors)"
EVAL_NAMES = [("fid", "FID"), ("fd_domain", "FD-domain"), ("kid", "KID"), ("kid_domain", "KID-domain"),
              ("precision", "precision"), ("precision_domain", "precision-domain"), ("recall", "recall"),
              ("recall_domain", "recall-domain"), ("is", "IS"), ("is_domain", "IS-domain"),
              ("bits_per_dim", "bits/dim")]


class SamplingCanvas(Canvas):
    sampled = Signal(str)

    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.pending_id = 0

        self.ckpt = QLineEdit()
        self.ckpt.setPlaceholderText("a checkpoint (.safetensors): open, drop, or train one")
        self.open_btn = QPushButton("Open…")
        self.n = QSpinBox(minimum=1, maximum=1024, value=50)
        self.n.setToolTip("How many images")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Same seed, same images")
        self.cls = QComboBox()
        self.cls.addItem("all classes", None)
        self.options_hint = QLabel("<i>The model's sample options appear here once a checkpoint is loaded.</i>")
        self.options_hint.setWordWrap(True)
        self.options_box.addWidget(self.options_hint)
        self.sample_btn = QPushButton("Sample")
        self.save_btn = QPushButton("Save PNG…")
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
        self.view = ImageView("Samples appear here.")

        row = QHBoxLayout()
        row.addWidget(self.ckpt, 1)
        row.addWidget(self.open_btn)
        form = QFormLayout()
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Class", self.cls)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addLayout(self.options_box)
        side.addWidget(self.sample_btn)
        side.addWidget(self.save_btn)
        side.addWidget(self.progress_row)
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

    # ---- checkpoint ----------------------------------------------------------------------------
    def set_checkpoint(self, path: str, load: bool = True) -> None:
        """Open a checkpoint for the whole window (every canvas works on it)."""
        path = path.strip()
        if path:
            self.session.set_checkpoint(path, load=load)

    def on_checkpoint_changed(self, path: str) -> None:
        self.ckpt.setText(path)

    def apply_capabilities(self, caps: Capabilities) -> None:
        labels = caps.class_labels
        self.cls.clear()
        self.cls.addItem("all classes" if labels else "unconditional", None)
        for i, name in enumerate(labels):
            self.cls.addItem(f"{i}: {name}", i)
        if self.build_options(caps):
            self.options_hint.hide()
        self.status.setText(f"loaded {Path(self.session.loaded_checkpoint).name} (step {self.session.step}): "
                            f"{caps.family}, {caps.resolution}×{caps.resolution}")

    # ---- sampling ------------------------------------------------------------------------------
    def sample(self) -> int:
        if not self.checkpoint:
            self.status.setText("Open a checkpoint first.")
            return 0
        self.progress.setRange(0, 0)
        self.progress.setFormat("sampling…")
        self.pending_id = self.request("sample", n=self.n.value(), seed=self.seed.value(), cls=self.cls.currentData(),
                                       options=self.option_values())
        return self.pending_id

    def clear_pending(self) -> None:
        self.pending_id = 0

    def on_result(self, ev: dict) -> None:
        if ev.get("id") != self.pending_id:
            return
        self.view.set_path(ev["path"])
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.status.setText(f"{ev.get('n')} images in {ev.get('elapsed_s', 0):.1f}s")
        self.save_btn.setEnabled(True)
        self.sampled.emit(ev["path"])

    # ---- evaluation (its own engine process: it may take minutes) ------------------------------
    def evaluate(self) -> None:
        if not self.checkpoint:
            self.eval_result.setText("Open a checkpoint first.")
            return
        self.eval_btn.setEnabled(False)
        self.eval_result.setText("")
        self.eval_progress.setFormat("starting…")
        iterative = self.capabilities is not None and self.capabilities.sampling.steps
        steps = self.option_values().get("steps") if iterative else None  # IterativeSampler's option
        likelihood = self.capabilities is not None and self.capabilities.has("likelihood")
        self.eval_job.evaluate(self.checkpoint, self.eval_n.value(), steps=steps,
                               metrics="fid,kid,pr,is" + (",bpd" if likelihood else ""))

    def _on_eval_progress(self, stage: str, done: int, total: int) -> None:
        self.eval_progress.setRange(0, total)
        self.eval_progress.setValue(done)
        self.eval_progress.setFormat(f"{stage} %v / %m")

    def _on_eval_done(self, r: dict) -> None:
        self.eval_btn.setEnabled(True)
        self.eval_progress.setFormat(f"done in {r.get('seconds', 0):.0f}s")
        lines = [f"{label}: <b>{r[k]:.4g}</b>" for k, label in EVAL_NAMES if k in r]
        note = "" if r.get("extractor") == "inception" else "<br><i>Inception weights not found: domain features</i>"
        if "bits_per_dim" in r:
            lines[-1] += f" on {r.get('bpd_images')} {r.get('bpd_split')} images"
        self.eval_result.setText(f"{r.get('n')} samples at step {r.get('step')}:<br>" + "<br>".join(lines) + note)

    # ---- files ---------------------------------------------------------------------------------
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
        self.eval_job.kill(wait_ms=3000)
