"""What can be done with the selected run in the runs browser: open it, resume it, continue it
for more steps, duplicate its config, reflow it (a child run trained on its (noise, sample) pairs,
for families whose [model] section can), reconstruct an EMA of any length from its post-hoc EMA
snapshots (run_ema.py), export a checkpoint or the config, rename it, move it to the
trash. Buttons, each enabled only where it can work (a live run is neither renamed nor deleted),
and a line that says what happened. The folder operations are engine/runs/fileops.py's; opening,
resuming and duplicating are signals the window connects."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMessageBox, QPushButton, QSpinBox, \
    QVBoxLayout, QWidget

from app.panels.run_ema import EmaReconstruction
from engine.core.reflow import can_reflow
from engine.runs.fileops import export_checkpoint, export_config, rename_run, trash
from engine.runs.index import RunSummary

OPEN_TIP = "Show this run's plots and samples on the Train tab and load its newest checkpoint"
OPEN_DETECTOR_TIP = "Use this trained detector in the Detection canvas (its check runs on the images there)"
RESUME_TIP = "Continue training from the last checkpoint up to the run's total steps"
RENAME_TIP = "Rename the run's folder"
DELETE_TIP = "Move the run folder to the trash (it can be restored from there)"
LOOSE_TIP = ("A detector saved as two files (DET.safetensors and DET.json) in this folder: rename or delete both "
             "in a file manager")
REFLOW_TIP = ("Load a reflow child of this run into the Model panel: trained on (noise, sample) pairs this "
              "run's ODE draws, from its weights, for straighter paths (Liu et al. 2022); press Start")


def _default_confirm(parent, title: str, text: str) -> bool:
    return QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.Cancel,
                                QMessageBox.Cancel) == QMessageBox.Yes


class RunActions(QWidget):
    open_run = Signal(str)           # a run directory to watch and load
    resume_run = Signal(str, int)    # run directory, extra steps (0: resume to its total)
    duplicate_config = Signal(str)   # a config.toml to load into the Model panel
    reflow_run = Signal(str, str)    # run directory, the checkpoint a reflow child of it trains on
    renamed = Signal(object)         # the run's new folder (a Path), before the message says so
    trashed = Signal(object)         # the run folder just moved to the trash (a Path)
    queue_continue = Signal(str, int)   # run directory, extra steps: continue it when the training queue gets to it
    ema_reconstructed = Signal(str)     # a post-hoc EMA checkpoint just written into the run (.safetensors)

    def __init__(self, checkpoint_of=None, trash_dir: str | Path | None = None, parent=None):
        """checkpoint_of(): the checkpoint to export (the one picked, else the newest); trash_dir:
        None for the system's trash."""
        super().__init__(parent)
        self.run: RunSummary | None = None
        self.checkpoint_of = checkpoint_of or self._newest_checkpoint
        self.trash_dir = Path(trash_dir) if trash_dir is not None else None
        # dialogs, replaceable (tests): confirm(title, text) -> bool; ask_text(title, label, text) -> str | None;
        # ask_save(title, suggested path, filter) -> str | None
        self.confirm = lambda title, text: _default_confirm(self, title, text)
        self.ask_text = self._ask_text
        self.ask_save = lambda title, path, flt: QFileDialog.getSaveFileName(self, title, path, flt)[0] or None

        self.open_btn = QPushButton("Open")
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setToolTip(RESUME_TIP)
        self.continue_btn = QPushButton("Continue +")
        self.continue_btn.setToolTip("Train this run for more steps than it was configured for (from its last checkpoint)")
        self.extra_steps = QSpinBox()
        self.extra_steps.setRange(1, 10_000_000)
        self.extra_steps.setSingleStep(100)
        self.extra_steps.setSuffix(" steps")
        self.queue_btn = QPushButton("Add to queue")
        self.queue_btn.setToolTip("Queue continuing this run for the steps set beside Continue + (Runs ▸ Queue "
                                  "trains it when its turn comes)")
        self.duplicate_btn = QPushButton("Duplicate config")
        self.duplicate_btn.setToolTip("Load this run's config into the Model panel, to start a new run from it")
        self.reflow_btn = QPushButton("Reflow this run…")
        self.reflow_btn.setToolTip(REFLOW_TIP)
        self.ema = EmaReconstruction(say=self.say)
        self.export_ckpt_btn = QPushButton("Export checkpoint…")
        self.export_ckpt_btn.setToolTip("Copy the checkpoint selected below (else the newest) with its metadata")
        self.export_cfg_btn = QPushButton("Export config…")
        self.export_cfg_btn.setToolTip("Save config.toml to train it again without the GUI: "
                                       "python -m engine train --config FILE")
        self.rename_btn = QPushButton("Rename…")
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.setToolTip(DELETE_TIP)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.hide()

        row1 = QHBoxLayout()
        for w in (self.open_btn, self.resume_btn, self.continue_btn, self.extra_steps, self.duplicate_btn):
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        for w in (self.queue_btn, self.reflow_btn, self.ema, self.export_ckpt_btn, self.export_cfg_btn, self.rename_btn,
                  self.delete_btn):
            row2.addWidget(w)
        row2.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.message)

        self.open_btn.clicked.connect(lambda: self.run and self.open_run.emit(str(self.run.path)))
        self.resume_btn.clicked.connect(self.resume)
        self.continue_btn.clicked.connect(self.continue_longer)
        self.duplicate_btn.clicked.connect(self.duplicate)
        self.reflow_btn.clicked.connect(self.reflow)
        self.ema.reconstructed.connect(self.ema_reconstructed)
        self.queue_btn.clicked.connect(self.add_to_queue)
        self.export_ckpt_btn.clicked.connect(lambda: self.export_checkpoint())
        self.export_cfg_btn.clicked.connect(lambda: self.export_config())
        self.rename_btn.clicked.connect(lambda: self.rename())
        self.delete_btn.clicked.connect(self.delete)
        self.set_run(None)

    def set_run(self, s: RunSummary | None, new: bool = False) -> None:
        """The run the buttons act on (None: none), and what it allows now. new: another run was
        selected (the message about the one before goes, the extra steps default to its total)."""
        self.run = s
        if new:
            self.message.hide()
            if s is not None:
                self.extra_steps.setValue(max(1, s.total_steps or 1000))
        has = s is not None
        live = has and s.live
        has_config = has and (s.path / "config.toml").is_file()
        self.open_btn.setEnabled(has)
        self.open_btn.setToolTip(OPEN_DETECTOR_TIP if has and s.kind == "detector" else OPEN_TIP)
        can_resume = has and not live and has_config and s.state != "finished" and (
            s.total_steps is None or s.step < s.total_steps)
        self.resume_btn.setEnabled(bool(can_resume))
        self.continue_btn.setEnabled(bool(has and not live and has_config))
        self.extra_steps.setEnabled(bool(has and not live and has_config))
        self.duplicate_btn.setEnabled(bool(has_config))
        self.queue_btn.setEnabled(bool(has_config))   # a live run too: the queue continues it after it ends
        self.export_cfg_btn.setEnabled(bool(has_config))
        self.export_ckpt_btn.setEnabled(bool(has and s.checkpoints))
        self.reflow_btn.setVisible(bool(has and can_reflow(s.family)))
        self.reflow_btn.setEnabled(bool(has_config and s.checkpoints and can_reflow(s.family)))
        self.ema.set_run(s.path if has else None)
        loose = has and s.path.is_file()   # a detector's DET.safetensors: its DET.json must go along, not a folder
        for b, tip in ((self.rename_btn, RENAME_TIP), (self.delete_btn, DELETE_TIP)):
            b.setEnabled(bool(has and not live and not loose))
            b.setToolTip("A live run cannot be renamed or deleted: stop it first" if live else
                         LOOSE_TIP if loose else tip)
        self.resume_btn.setToolTip("The run finished its steps: use Continue + to train it longer"
                                   if has and s.state == "finished" else RESUME_TIP)

    def _newest_checkpoint(self) -> Path | None:
        return self.run.checkpoints[-1][1] if self.run is not None and self.run.checkpoints else None

    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color:#c0392b" if error else "color:#1e8449")
        self.message.setText(("✖ " if error else "") + text)
        self.message.setVisible(bool(text))

    # ---- training ------------------------------------------------------------------------------
    def resume(self) -> None:
        if self.run is not None and self.resume_btn.isEnabled():
            self.resume_run.emit(str(self.run.path), 0)

    def continue_longer(self) -> None:
        if self.run is not None and self.continue_btn.isEnabled():
            self.resume_run.emit(str(self.run.path), int(self.extra_steps.value()))

    def add_to_queue(self) -> None:
        if self.run is not None and self.queue_btn.isEnabled():
            self.queue_continue.emit(str(self.run.path), int(self.extra_steps.value()))

    def duplicate(self) -> None:
        if self.run is not None and (self.run.path / "config.toml").is_file():
            self.duplicate_config.emit(str(self.run.path / "config.toml"))

    def reflow(self) -> None:
        """A reflow child of the run on the checkpoint picked below (else its newest)."""
        ckpt = self.checkpoint_of() if self.run is not None and self.reflow_btn.isEnabled() else None
        if ckpt is not None:
            self.reflow_run.emit(str(self.run.path), str(ckpt))

    # ---- exports -------------------------------------------------------------------------------
    def export_checkpoint(self, dest: str | Path | None = None) -> Path | None:
        ck = self.checkpoint_of() if self.run is not None else None
        if ck is None:
            return None
        if dest is None:
            dest = self.ask_save("Export checkpoint", str(Path.home() / f"{self.run.name}-{ck.stem}.safetensors"),
                                 "Checkpoints (*.safetensors)")
            if not dest:
                return None
        try:
            out = export_checkpoint(ck, dest)
        except OSError as e:
            self.say(f"Could not export the checkpoint: {e}", error=True)
            return None
        self.say(f"Exported {ck.name} (and its .json) to {out}")
        return out

    def export_config(self, dest: str | Path | None = None) -> Path | None:
        if self.run is None:
            return None
        if dest is None:
            dest = self.ask_save("Export config", str(Path.home() / f"{self.run.name}.toml"), "Run configs (*.toml)")
            if not dest:
                return None
        try:
            out = export_config(self.run.path, dest)
        except OSError as e:
            self.say(f"Could not export the config: {e}", error=True)
            return None
        self.say(f"Exported the config to {out}; train it again with: python -m engine train --config {out}")
        return out

    # ---- the folder ----------------------------------------------------------------------------
    def _ask_text(self, title: str, label: str, text: str) -> str | None:
        value, ok = QInputDialog.getText(self, title, label, text=text)
        return value if ok else None

    def rename(self, new_name: str | None = None) -> Path | None:
        s = self.run
        if s is None:
            return None
        if new_name is None:
            new_name = self.ask_text("Rename run", "New name of the run's folder:", s.name)
            if not new_name or new_name == s.name:
                return None
        try:
            new = rename_run(s.path, new_name)
        except (OSError, ValueError) as e:
            self.say(str(e), error=True)
            return None
        self.renamed.emit(new)   # the browser lists and selects it (which clears the message)
        self.say(f"Renamed to {new.name}")
        return new

    def delete(self) -> Path | None:
        """Move the run to the trash, after asking."""
        s = self.run
        if s is None:
            return None
        if s.live:
            self.say(f"{s.name} is {s.state}: a live run cannot be deleted; stop it first", error=True)
            return None
        size = f"{len(s.checkpoints)} checkpoint(s), {len(s.samples)} sample grid(s)"
        if not self.confirm("Delete run", f"Move the run {s.name} ({size}) to the trash?\n\n{s.path}"):
            return None
        try:
            where = trash(s.path, self.trash_dir)
        except (OSError, ValueError) as e:
            self.say(str(e), error=True)
            return None
        self.trashed.emit(s.path)
        self.say(f"Moved {s.name} to the trash ({where.parent.parent})")
        return where
