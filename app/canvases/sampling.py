"""Sampling canvas: open (or drop) a checkpoint, sample a batch with a seed, a class and the
family's own sample options (drawn from its options dataclass: steps, solver, eta and guidance for
diffusion, psi for a GAN, …), browse it as a gallery (each image with its own seed and class; click
to enlarge; use its seed, copy, save one or all), go back to recent batches, save the grid,
evaluate. Every PNG the engine writes carries its generation parameters (engine/core/pnginfo.py);
dropping such a PNG here restores them (restore_png_info). Requests go to the shared engine
worker; a newer one supersedes an older one, so clicking again never queues stale work."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSpinBox, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from app.canvases.base import Canvas
from app.canvases.common import class_text
from app.canvases.side_column import SideColumn, status_line, wrapping
from app.engine_client import EvalJob
from app.qt_util import human_duration
from app.widgets.gallery import Batch, Gallery, GalleryImage
from app.widgets.image_view import ImageView
from app.widgets.trajectory_strip import TrajectoryStrip
from app.worker_session import same_path
from engine.core import metrics
from engine.core.capabilities import Capabilities
from engine.core.pnginfo import read_png_info

CKPT_FILTER = "GenLab checkpoints (*.safetensors)"
SIDE_MAX, SIDE_SHARE = 330, 0.4   # the controls' column: about as wide as its form was before it scrolled


def eval_lines(r: dict) -> list[str]:
    """The scores of an evaluation result, one line each, as the metric registry titles them (FID or
    FD-domain, KID, precision, ...; spreads left out); a value scored on real images says which it used."""
    lines = []
    for m, v in metrics.values():
        for domain in m.variants():
            name = v.name(domain)
            if v.spread_of or name not in r:
                continue
            line = f"{v.label(domain)}: <b>{r[name]:.4g}</b>"
            if m.needs in metrics.HELDOUT:   # which real images: its extras name the split and the count
                split_key, images_key = m.extras
                line += f" on {r.get(images_key)} {r.get(split_key)} images"
            lines.append(line)
    return lines


def offered_measures(caps) -> list[str]:
    """Every measure a checkpoint with these Capabilities can be scored on: the sample measures,
    and those whose record it has (bpd: a likelihood; codebook: a tokenizer's codebook)."""
    return [m.key for m in metrics.measures() if m.needs == metrics.SAMPLING or (caps is not None and caps.has(m.needs))]


class SamplingCanvas(Canvas):
    sampled = Signal(str)

    def __init__(self, session, parent=None, settings=None):
        super().__init__(session, parent, settings)
        self.pending_id = 0
        self._pending_fields: dict = {}     # n, seed, cls of the request in flight (the batch's title)
        self._restore_pending: dict | None = None   # PNG parameters to apply once their checkpoint loads
        self._origin: dict | None = None    # the parameters of the last restored PNG whose checkpoint is here

        self.ckpt = QLineEdit()
        self.ckpt.setPlaceholderText("a checkpoint (.safetensors): open, drop, or train one")
        self.open_btn = QPushButton("Open…")
        self.n = QSpinBox(minimum=1, maximum=1024, value=50)
        self.n.setToolTip("How many images")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Image i of a batch has seed + i: the same seed gives the same images, and one "
                             "image's seed gives that image alone")
        self.cls = QComboBox()
        self.cls.addItem("all classes", None)
        # autoguidance (Karras et al. 2024): another checkpoint of this run guides the loaded one
        self.guide = QComboBox()
        self.guide.setToolTip("Autoguidance: guide with an earlier checkpoint of this run, "
                              "D_guide + w·(D_main − D_guide); works for unconditional models too")
        self.guide.addItem("off", "")
        self.guide_scale = QDoubleSpinBox(minimum=0.0, maximum=50.0, value=2.0, singleStep=0.25, decimals=2)
        self.guide_scale.setToolTip("Autoguidance weight w (1 = the loaded model alone)")
        self.guide_scale.setEnabled(False)
        self.options_hint = QLabel("<i>The model's sample options appear here once a checkpoint is loaded.</i>")
        self.options_hint.setWordWrap(True)
        self.options_box.addWidget(self.options_hint)
        self.sample_btn = QPushButton("Sample")
        self.save_btn = QPushButton("Save grid…")
        self.save_btn.setToolTip("Save the whole grid as a PNG (with the batch's parameters)")
        self.origin_btn = QPushButton("Open its checkpoint")
        self.origin_btn.setToolTip("Open the checkpoint a dropped PNG was made with, and restore its settings")
        self.origin_btn.hide()
        self.eval_n = QSpinBox(minimum=50, maximum=50000, value=1000, singleStep=500)
        self.eval_n.setToolTip("Generated images to score against the training data")
        self.eval_btn = QPushButton("Evaluate")
        self.eval_btn.setToolTip("FID (FD-domain without the Inception weights), KID, precision/recall, IS; "
                                 "runs in an engine process")
        self.eval_progress = QProgressBar()
        self.eval_progress.setFormat("")
        self.eval_progress.setMinimumWidth(160)   # "features 500 / 1000 · 1m 20s" fits; the tooltip has it all
        self.eval_cancel_btn = QPushButton("Cancel")
        self.eval_cancel_btn.setToolTip("Stop the evaluation (ends its engine process)")
        self.eval_cancel_btn.setEnabled(False)
        self.eval_result = QLabel("")
        self.eval_result.setWordWrap(True)
        self.eval_result.setTextInteractionFlags(self.eval_result.textInteractionFlags() | Qt.TextSelectableByMouse)
        self._eval_stage: tuple[str, float, int] = ("", 0.0, 0)   # stage, when and `done` at its first report
        self._eval_cancelled = False
        self.eval_job = EvalJob(self)
        self.eval_job.progressed.connect(self._on_eval_progress)
        self.eval_job.done.connect(self._on_eval_done)
        self.eval_job.failed.connect(self._on_eval_failed)
        self.view = ImageView("Samples appear here.")
        self.gallery = Gallery(self.settings)
        self.traj_id = 0
        self.trajectory = TrajectoryStrip()
        self.traj_btn = QPushButton("Compute")
        self.traj_btn.setToolTip("Sample the selected image's seed (or the Seed above) and show, for every "
                                 "step, x_t and the model's prediction of the clean image (x̂0)")
        self.traj_btn.setEnabled(False)
        self.traj_show = QComboBox()
        self.traj_show.addItem("view x_t", "x")
        self.traj_show.addItem("view x0 pred", "x0")
        self.traj_show.setToolTip("Which image of the picked step the large view shows")
        self.traj_note = QLabel("")
        self.traj_note.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.ckpt, 1)
        row.addWidget(self.open_btn)
        form = QFormLayout()
        form.addRow("Images", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Class", self.cls)
        form.addRow("Guide", self.guide)
        form.addRow("Guide weight", self.guide_scale)
        # the controls scroll and the run blocks (sample, score) stay pinned below them, so that the
        # page is never taller than the window (at 1024×640 a long options form once pushed the
        # trajectory's scrubber below the fold)
        self.side = SideColumn(SIDE_MAX, SIDE_SHARE)
        side = self.side.body
        side.addLayout(form)
        side.addLayout(self.options_box)
        side.addWidget(self.origin_btn)
        side.addStretch(1)
        ev_row = QHBoxLayout()
        ev_row.addWidget(QLabel("Score"))
        ev_row.addWidget(self.eval_n)
        ev_row.addWidget(self.eval_btn)
        ev_progress = QHBoxLayout()
        ev_progress.addWidget(self.eval_progress, 1)
        ev_progress.addWidget(self.eval_cancel_btn)
        foot = self.side.foot
        foot.addWidget(self.sample_btn)
        foot.addWidget(self.save_btn)
        foot.addWidget(self.progress_row)
        foot.addWidget(status_line(self.status))
        foot.addSpacing(12)
        foot.addLayout(ev_row)
        foot.addLayout(ev_progress)
        foot.addWidget(status_line(self.eval_result))
        traj_head = QHBoxLayout()
        traj_head.setContentsMargins(0, 0, 0, 0)
        traj_head.addWidget(self.traj_btn)
        traj_head.addWidget(self.traj_show)
        traj_head.addWidget(self.traj_note, 1)
        traj_box = QWidget()
        traj_lay = QVBoxLayout(traj_box)
        traj_lay.setContentsMargins(0, 0, 0, 0)
        traj_lay.addLayout(traj_head)
        traj_lay.addWidget(self.trajectory, 1)
        # the gallery and the trajectory share the room below the view: a tab each (the view follows both)
        self.lower = QTabWidget()
        self.lower.setDocumentMode(True)
        self.lower.addTab(self.gallery, "Gallery")
        self.traj_tab = self.lower.addTab(traj_box, "Trajectory")
        results = QSplitter(Qt.Vertical)    # the picked image (or the grid) above, the gallery or trajectory below
        results.addWidget(self.view)
        results.addWidget(self.lower)
        results.setStretchFactor(0, 3)
        results.setStretchFactor(1, 2)
        body = QHBoxLayout()
        body.addWidget(self.side)
        body.addWidget(results, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addLayout(body, 1)

        self.open_btn.clicked.connect(self._open)
        self.sample_btn.clicked.connect(self.sample)
        self.save_btn.clicked.connect(self._save)
        self.origin_btn.clicked.connect(lambda: self.open_origin())
        self.eval_btn.clicked.connect(self.evaluate)
        self.eval_cancel_btn.clicked.connect(self.cancel_evaluation)
        self.ckpt.editingFinished.connect(lambda: self.set_checkpoint(self.ckpt.text()))
        self.gallery.image_selected.connect(self._show_image)
        self.gallery.use_seed.connect(self.use_seed)
        self.gallery.message.connect(self.status.setText)
        self.gallery.failed.connect(self.show_error)
        self.save_btn.setEnabled(False)
        self.traj_btn.clicked.connect(self.request_trajectory)
        self.trajectory.step_changed.connect(self._show_step)
        self.traj_show.currentIndexChanged.connect(lambda _: self._show_step(self.trajectory.current()))
        self.guide.currentIndexChanged.connect(lambda _: self.guide_scale.setEnabled(bool(self.guide.currentData())))

    def resizeEvent(self, e):
        super().resizeEvent(e)
        self.side.follow(self.width())

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
            self.cls.addItem(class_text(i, name), i)
        if self.build_options(caps):
            self.options_hint.hide()
        self._apply_trajectory_caps(caps)
        self.status.setText(f"loaded {Path(self.session.loaded_checkpoint).name} (step {self.session.step}): "
                            f"{caps.family}, {caps.resolution}×{caps.resolution}")
        meta, self._restore_pending = self._restore_pending, None
        if meta is not None and same_path(meta.get("checkpoint", ""), self.session.loaded_checkpoint):
            self._apply_model_settings(meta)
            self.status.setText(f"restored the settings of {meta.get('_png', 'the PNG')} "
                                f"on {Path(self.session.loaded_checkpoint).name}")

    # ---- sampling ------------------------------------------------------------------------------
    def sample(self) -> int:
        if not self.checkpoint:
            self.status.setText("Open a checkpoint first.")
            return 0
        self.progress.setRange(0, 0)
        self.progress.setFormat("sampling…")
        self._pending_fields = {"n": self.n.value(), "seed": self.seed.value(), "cls": self.cls.currentData()}
        self.pending_id = self.request("sample", **self._pending_fields, options=self.option_values(),
                                       **self.guide_fields())
        return self.pending_id

    def clear_pending(self) -> None:
        self.pending_id = 0
        self.traj_id = 0

    def on_result(self, ev: dict) -> None:
        if ev.get("id") == self.traj_id and self.traj_id:
            self._on_trajectory(ev)
            return
        if ev.get("id") != self.pending_id:
            return
        images = [GalleryImage(p, s, c, self._class_label(c))
                  for p, s, c in zip(ev.get("images", []), ev.get("seeds", []), ev.get("classes", []))]
        asked = self._pending_fields
        cls = asked.get("cls")
        note = ", ".join(x for x in (f"class {self._class_text(cls)}" if cls is not None else "",
                                     f"step {self.session.step}" if self.session.step is not None else "") if x)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.status.setText(f"{ev.get('n')} images in {ev.get('elapsed_s', 0):.1f}s")
        self.lower.setCurrentIndex(0)   # the gallery tab
        self.gallery.add_batch(Batch(ev["path"], images, asked.get("seed", images[0].seed if images else 0),
                                     int(ev.get("n", len(images))), note))  # shows the grid in the view
        self.sampled.emit(ev["path"])

    # ---- autoguidance and the denoising trajectory ----------------------------------------------
    def guide_fields(self) -> dict:
        """The request fields of the chosen autoguidance (none when it is off)."""
        path = self.guide.currentData()
        return {"guide_checkpoint": path, "autoguidance_scale": self.guide_scale.value()} if path else {}

    def _apply_trajectory_caps(self, caps: Capabilities) -> None:
        """The trajectory and the guide picker are offered where the family samples through the
        denoising loop (caps.sampling.trajectory); otherwise they say why not."""
        able = bool(caps.sampling.trajectory)
        why = f"a {caps.family} model does not sample in denoising steps"
        self.traj_btn.setEnabled(able)
        self.traj_show.setEnabled(able)
        self.traj_note.setText("" if able else f"<i>{why}: no trajectory</i>")
        self.lower.setTabEnabled(self.traj_tab, able)
        self.lower.setTabToolTip(self.traj_tab, "x_t and x̂0 of every denoising step of one seed" if able
                                 else f"{why}: no trajectory")
        self.trajectory.clear()
        self.traj_id = 0
        self.guide.blockSignals(True)
        chosen = self.guide.currentData()
        self.guide.clear()
        self.guide.addItem("off", "")
        loaded = Path(self.session.loaded_checkpoint)
        for path in run_checkpoints(loaded) if able else []:
            self.guide.addItem(f"{path.stem} (earlier)" if path.stem < loaded.stem else path.stem, str(path))
        index = self.guide.findData(chosen) if chosen else 0
        self.guide.setCurrentIndex(max(index, 0))
        self.guide.blockSignals(False)
        self.guide.setEnabled(able)
        self.guide.setToolTip(self.guide.toolTip() if able else f"{why}: no autoguidance")
        self.guide_scale.setEnabled(able and bool(self.guide.currentData()))

    def trajectory_seed(self) -> tuple[int, int | None]:
        """The seed and class whose trajectory to show: the picked gallery image's, else the form's."""
        image = self.gallery.current_image()
        if image is not None:
            return image.seed, image.cls
        return self.seed.value(), self.cls.currentData()

    def request_trajectory(self) -> int:
        if not self.checkpoint:
            self.status.setText("Open a checkpoint first.")
            return 0
        seed, cls = self.trajectory_seed()
        self.progress.setRange(0, 0)
        self.progress.setFormat("trajectory…")
        self.traj_note.setText(f"seed {seed}" + (f", class {self._class_text(cls)}" if cls is not None else ""))
        self.lower.setCurrentIndex(self.traj_tab)
        self.traj_id = self.request("trajectory", seed=seed, cls=cls, options=self.option_values(),
                                    **self.guide_fields())
        return self.traj_id

    def _on_trajectory(self, ev: dict) -> None:
        self.traj_id = 0
        self.trajectory.set_steps(ev.get("x_images", []), ev.get("x0_images", []), ev.get("sigmas", []),
                                  ev.get("ts", []))
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.status.setText(f"trajectory of seed {ev.get('seed')}: {ev.get('steps')} steps "
                            f"in {ev.get('elapsed_s', 0):.1f}s")

    def _show_step(self, i: int) -> None:
        """The large view follows the strip's slider."""
        paths = self.trajectory.x_paths if self.traj_show.currentData() == "x" else self.trajectory.x0_paths
        if 0 <= i < len(paths):
            self.view.set_path(paths[i])

    def use_seed(self, image: GalleryImage) -> None:
        """Sample from this image's seed and class next. Images is left as it is: image 0 of the
        next batch is this very image (image i has seed + i), and a person who wants it alone, to
        try other options on it, sets Images to 1; a batch size they chose is not lost by a click."""
        self.seed.setValue(image.seed)
        self._select_class(image.cls)
        self.status.setText(f"seed {image.seed}" + (f", class {self._class_text(image.cls)}"
                                                     if image.cls is not None else "")
                            + ": the next batch starts with this image")

    def _show_image(self, path: str) -> None:
        if path:
            self.view.set_path(path)
        else:
            self.view.clear()
        self.save_btn.setEnabled(self.grid_path() != "")

    def grid_path(self) -> str:
        batch = self.gallery.current_batch()
        return batch.grid if batch is not None else ""

    def _class_label(self, cls: int | None) -> str:
        """How the loaded model names class `cls` ("" when it does not say)."""
        labels = self.capabilities.class_labels if self.capabilities is not None else []
        return labels[cls] if cls is not None and 0 <= cls < len(labels) else ""

    def _class_text(self, cls: int | None) -> str:
        """"3", or "3 (cat)" where the model names its classes."""
        label = self._class_label(cls)
        return f"{cls}" + (f" ({label})" if label and label != str(cls) else "")

    def _select_class(self, cls: int | None) -> bool:
        for i in range(self.cls.count()):
            if self.cls.itemData(i) == cls:
                self.cls.setCurrentIndex(i)
                return True
        return False

    # ---- generation parameters of a PNG (A1111's "PNG Info") -----------------------------------
    def restore_png_info(self, path: str) -> bool:
        """Set this canvas to what made a GenLab PNG: seed, images (1 for a single image), class and
        the family's options. The options and class apply only to a model of the PNG's family; for
        another one the status says where the PNG came from and origin_btn opens that checkpoint,
        whose settings are applied once it has loaded. False when the file carries no GenLab
        sampling parameters (the status says why)."""
        name = Path(path).name
        try:
            meta = read_png_info(path)
        except ValueError as e:
            self.show_error(str(e))
            return False
        if meta is None:
            self.status.setText(f"{name} carries no GenLab parameters (it was not written by GenLab's sampling)")
            return False
        if meta.get("kind") != "sample":
            what = "an inpainting result: its settings belong to the Inpainting canvas" \
                if meta.get("kind") == "inpaint" else f"a {meta.get('kind', 'GenLab')} image, not a sample"
            self.status.setText(f"{name} is {what}")
            return False
        meta = {**meta, "_png": name}
        self.seed.setValue(int(meta.get("seed", 0)))
        self.n.setValue(int(meta.get("n", 1)))
        origin = str(meta.get("checkpoint", ""))
        self._origin = meta if origin and Path(origin).is_file() else None
        self.origin_btn.hide()
        caps = self.capabilities
        if caps is not None and caps.family == meta.get("family"):
            self._apply_model_settings(meta)
            text = f"restored seed {meta.get('seed')}, {self.n.value()} image(s) and the options of {name}"
            if not same_path(origin, self.session.loaded_checkpoint):
                text += f"; it was made with {self._origin_text(meta)}"
                self.origin_btn.setVisible(self._origin is not None)
            self.status.setText(text)
        elif self._origin is not None and (not self.checkpoint or same_path(origin, self.checkpoint)):
            self.open_origin()   # nothing else is open, or its own checkpoint is not loaded yet: load it
        else:
            loaded = f"the loaded model is a {caps.family}" if caps is not None else "no model is loaded"
            text = f"{name} came from a {meta.get('family')} model, {self._origin_text(meta)}; {loaded}. " \
                   f"Seed and images are restored; its class and options apply to its own model"
            text += ": open its checkpoint to restore them" if self._origin is not None else \
                " (that checkpoint is not on this machine)"
            self.status.setText(text)
            self.origin_btn.setVisible(self._origin is not None)
        return True

    def open_origin(self) -> None:
        """Open the checkpoint the last restored PNG came from; its class and options are applied
        once it has loaded (apply_capabilities)."""
        if self._origin is None:
            return
        self._restore_pending = self._origin
        self.origin_btn.hide()
        ckpt = str(self._origin["checkpoint"])
        self.status.setText(f"opening {Path(ckpt).name}, where {self._origin['_png']} came from…")
        self.session.set_checkpoint(ckpt)

    def _apply_model_settings(self, meta: dict) -> None:
        """The class and the options of a PNG made by a model of the loaded family."""
        self._select_class(meta.get("cls"))
        if self.options is not None and isinstance(meta.get("options"), dict):
            self.options.set_values(meta["options"])

    @staticmethod
    def _origin_text(meta: dict) -> str:
        ckpt = Path(str(meta.get("checkpoint", "?")))
        return f"{ckpt.parent.parent.name}/{ckpt.name} (step {meta.get('step')})"

    # ---- evaluation (its own engine process: it may take minutes) ------------------------------
    def evaluate(self) -> None:
        if not self.checkpoint:
            self.eval_result.setText("Open a checkpoint first.")
            return
        self.eval_btn.setEnabled(False)
        self.eval_cancel_btn.setEnabled(True)
        self._eval_cancelled = False
        self._eval_stage = ("", 0.0, 0)
        self.eval_result.setText("")
        self.eval_progress.setRange(0, 0)
        self.eval_progress.setFormat("starting…")
        iterative = self.capabilities is not None and self.capabilities.sampling.steps
        steps = self.option_values().get("steps") if iterative else None  # IterativeSampler's option
        self.eval_job.evaluate(self.checkpoint, self.eval_n.value(), steps=steps,
                               metrics=",".join(offered_measures(self.capabilities)))

    def cancel_evaluation(self) -> None:
        """Stop the evaluation: its engine process is ended (it holds nothing worth saving)."""
        if not self.eval_job.is_running():
            return
        self._eval_cancelled = True
        self.eval_cancel_btn.setEnabled(False)
        self.eval_progress.setFormat("cancelling…")
        self.eval_job.kill()

    def _on_eval_progress(self, stage: str, done: int, total: int) -> None:
        if stage != self._eval_stage[0]:   # each stage (sampling, features, …) has its own pace
            self._eval_stage = (stage, time.monotonic(), done)
        _, since, done0 = self._eval_stage
        text = f"{stage} {done} / {total}"
        if done0 < done < total:   # the pace since this stage's first report (the process start is no part of it)
            left = (time.monotonic() - since) * (total - done) / (done - done0)
            text += f" · {human_duration(left)} left"
        self.eval_progress.setRange(0, max(total, 1))
        self.eval_progress.setValue(done)
        self.eval_progress.setFormat(text)
        self.eval_progress.setToolTip(text)   # the whole text, where the bar is too narrow

    def _on_eval_done(self, r: dict) -> None:
        self.eval_btn.setEnabled(True)
        self.eval_cancel_btn.setEnabled(False)
        self.eval_progress.setFormat(f"done in {r.get('seconds', 0):.0f}s")
        lines = eval_lines(r)
        note = "" if r.get("extractor") == "inception" else "<br><i>Inception weights not found: domain features</i>"
        self.eval_result.setText(f"{r.get('n')} samples at step {r.get('step')}:<br>" + "<br>".join(lines) + note)

    def _on_eval_failed(self, message: str) -> None:
        self.eval_btn.setEnabled(True)
        self.eval_cancel_btn.setEnabled(False)
        self.eval_progress.setRange(0, 1)
        self.eval_progress.setValue(0)
        if self._eval_cancelled:
            self.eval_progress.setFormat("cancelled")
            self.eval_result.setText("Evaluation cancelled.")
        else:
            self.eval_progress.setFormat("failed")
            self.eval_result.setText(f"<span style='color:#c0392b'>✖ {message}</span>")
        self._eval_cancelled = False

    # ---- files ---------------------------------------------------------------------------------
    def _open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a checkpoint", self.ckpt.text(), CKPT_FILTER)
        if path:
            self.set_checkpoint(path)

    def save_to(self, path: str) -> None:
        """The grid PNG as the engine wrote it, with the batch's parameters."""
        shutil.copyfile(self.grid_path(), path)
        self.status.setText(f"saved {path}")

    def _save(self) -> None:
        if not self.grid_path():
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the grid", "samples.png", "PNG (*.png)")
        if path:
            try:
                self.save_to(path)
            except OSError as e:
                self.show_error(f"cannot save {path}: {e.strerror or e}")

    @staticmethod
    def _dropped(e) -> str:
        urls = e.mimeData().urls() if e.mimeData().hasUrls() else []
        return urls[0].toLocalFile() if urls else ""

    def dragEnterEvent(self, e):
        path = self._dropped(e)
        if path.endswith(".safetensors") or (path.lower().endswith(".png") and _has_png_info(path)):
            e.acceptProposedAction()

    def dropEvent(self, e):
        path = self._dropped(e)
        if path.lower().endswith(".png"):
            self.restore_png_info(path)
        elif path:
            self.set_checkpoint(path)

    def shutdown(self) -> None:
        self.eval_job.kill(wait_ms=3000)


def run_checkpoints(loaded: Path) -> list[Path]:
    """The other checkpoints in the loaded one's folder (one run's), by name (= by step)."""
    try:
        return sorted(p for p in loaded.parent.glob("*.safetensors") if p.name != loaded.name)
    except OSError:
        return []


def _has_png_info(path: str) -> bool:
    """Whether a PNG carries GenLab parameters (a drop of one is accepted); unreadable: no."""
    try:
        return read_png_info(path) is not None
    except ValueError:
        return False
