"""Compare families on this data…: pick presets (any families), each with a training time budget,
and the samples per checkpoint of the comparison (set here, before anything is measured); every
preset trains on the Data panel's current dataset (its data section replaces the preset's). OK
queues one run per preset and one comparison group (TrainingQueue.add_comparison): the queue runner
trains them one after another, then compares their final checkpoints and writes
<runs_root>/comparisons/<group>.json, which the Families view shows by itself.

The presets come from engine.core.config (light: no torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

from engine.core.config import ConfigError, RunConfig, list_presets, load_preset
from engine.runs.queue import CompareGroup, QueueError, TrainingQueue

DEFAULT_BUDGET_MIN = 2.0
DEFAULT_SAMPLES = 500
C_PRESET, C_FAMILY, C_BUDGET = 0, 1, 2


def describe_data(data: dict) -> str:
    """'digits at 16x16' / 'folder /path/to/images at 32x32'."""
    name = data.get("dataset", "?")
    if name == "folder":
        name = f"folder {data.get('path', '')}"
    res = data.get("resolution")
    return f"{name} at {res}x{res}" if res else str(name)


def comparison_configs(presets: list[str], data: dict, budgets_s: list[float],
                       adjust: Callable[[RunConfig], RunConfig] | None = None) -> list[dict]:
    """Each preset's config on `data` (the whole data section replaced), named after its preset,
    with its own time budget (training.time_budget_s where the budgets differ; the group's budget
    carries them when they are all equal). adjust: the window's defaults (device, Inception
    weights). A preset that cannot train on this data is a ConfigError naming it."""
    same = len(set(budgets_s)) <= 1
    out = []
    for name, budget in zip(presets, budgets_s):
        try:
            cfg = load_preset(name).replace(data=dict(data))
            if not same:
                cfg = cfg.replace(training={"time_budget_s": float(budget)})
        except ConfigError as e:
            raise ConfigError(f"preset {name} on {describe_data(data)}: {e}") from None
        if adjust is not None:
            cfg = adjust(cfg)
        out.append(cfg.to_dict())
    return out


class CompareFamiliesDialog(QDialog):
    """queue_comparison() (OK) adds the group; `group` holds it afterwards, `summary` says what was
    queued."""

    def __init__(self, runs_root: str | Path, data: dict, *, adjust: Callable[[RunConfig], RunConfig] | None = None,
                 presets: dict[str, str] | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare families on this data")
        self.queue = TrainingQueue(runs_root)
        self.data = dict(data)
        self.adjust = adjust
        self.presets = presets if presets is not None else list_presets()
        self.group: CompareGroup | None = None
        self.summary = ""

        self.intro = intro = QLabel(f"Train the chosen presets one after another on the Data panel's current dataset — "
                       f"<b>{describe_data(self.data)}</b> (it replaces each preset's own data) — each for its "
                       f"time budget, then measure their final checkpoints on the same real images. The runs "
                       f"go into the training queue (Runs ▸ Queue); the table shows in Runs ▸ Families when done.")
        intro.setWordWrap(True)

        self.table = QTableWidget(len(self.presets), 3)
        self.table.setHorizontalHeaderLabels(["preset", "family", "time budget"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.budgets: dict[str, QDoubleSpinBox] = {}
        for r, (name, desc) in enumerate(self.presets.items()):
            it = QTableWidgetItem(name)
            it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
            it.setCheckState(Qt.Unchecked)
            it.setToolTip(desc)
            self.table.setItem(r, C_PRESET, it)
            fam = QTableWidgetItem(name.split("-")[0])
            fam.setFlags(Qt.ItemIsEnabled)
            fam.setToolTip(desc)
            self.table.setItem(r, C_FAMILY, fam)
            spin = QDoubleSpinBox(minimum=0.25, maximum=24 * 60, singleStep=0.5, decimals=2, value=DEFAULT_BUDGET_MIN)
            spin.setSuffix(" min")
            spin.setToolTip("Training time of this preset's run (it stops after this long, with its checkpoint)")
            self.budgets[name] = spin
            self.table.setCellWidget(r, C_BUDGET, spin)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(C_PRESET, QHeaderView.Stretch)
        head.setSectionResizeMode(C_FAMILY, QHeaderView.ResizeToContents)
        head.setSectionResizeMode(C_BUDGET, QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(220)
        self._fill_families()

        self.all_budget = QDoubleSpinBox(minimum=0.25, maximum=24 * 60, singleStep=0.5, decimals=2,
                                         value=DEFAULT_BUDGET_MIN)
        self.all_budget.setSuffix(" min")
        self.all_budget_btn = QPushButton("Set for all")
        self.all_budget_btn.setToolTip("The same training time for every preset: the fairest comparison")
        self.n = QSpinBox(minimum=10, maximum=100_000, singleStep=100, value=DEFAULT_SAMPLES)
        self.n.setSuffix(" samples")
        self.n.setToolTip("Images generated per checkpoint for the comparison (and real images in the shared "
                          "reference). More: steadier numbers, a longer comparison.")
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.all_budget)
        budget_row.addWidget(self.all_budget_btn)
        budget_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Time budget", budget_row)
        form.addRow("Comparison", self.n)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color:#c0392b")
        self.message.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Queue comparison")

        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.table, 1)
        lay.addLayout(form)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)

        self.all_budget_btn.clicked.connect(self._budget_for_all)
        self.table.itemChanged.connect(lambda _it: self._sync())
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._sync()
        self.resize(620, 560)

    def _fill_families(self) -> None:
        """The family column from each preset's config (light; read once when the dialog opens)."""
        for r, name in enumerate(self.presets):
            try:
                self.table.item(r, C_FAMILY).setText(load_preset(name).model.family)
            except (ConfigError, OSError):
                pass

    # ---- choices ---------------------------------------------------------------------------------
    def set_checked(self, names) -> None:
        names = set(names)
        for r, name in enumerate(self.presets):
            self.table.item(r, C_PRESET).setCheckState(Qt.Checked if name in names else Qt.Unchecked)

    def checked(self) -> list[str]:
        return [name for r, name in enumerate(self.presets)
                if self.table.item(r, C_PRESET).checkState() == Qt.Checked]

    def _budget_for_all(self) -> None:
        for spin in self.budgets.values():
            spin.setValue(self.all_budget.value())

    def _sync(self) -> None:
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(len(self.checked()) >= 2)

    # ---- queueing --------------------------------------------------------------------------------
    def queue_comparison(self) -> CompareGroup | None:
        """Queue the chosen presets and their comparison; an error is one line in the dialog."""
        names = self.checked()
        if len(names) < 2:
            self._error("Pick two or more presets to compare.")
            return None
        budgets = [round(self.budgets[n].value() * 60, 1) for n in names]
        try:
            configs = comparison_configs(names, self.data, budgets, self.adjust)
            same = len(set(budgets)) == 1
            self.group = self.queue.add_comparison(configs, time_budget_s=budgets[0] if same else 0,
                                                   n=int(self.n.value()))
        except (ConfigError, QueueError) as e:
            self._error(str(e))
            return None
        self.summary = (f"queued comparison {self.group.id}: {', '.join(names)} on {describe_data(self.data)}, "
                        f"{_minutes(budgets)} each, then {self.n.value()} samples per checkpoint — see Runs ▸ Queue")
        return self.group

    def accept(self) -> None:
        if self.queue_comparison() is not None:
            super().accept()

    def _error(self, text: str) -> None:
        self.message.setText(f"✖ {text}")
        self.message.show()


def _minutes(budgets_s: list[float]) -> str:
    lo, hi = min(budgets_s) / 60, max(budgets_s) / 60
    return f"{lo:g} min" if lo == hi else f"{lo:g}–{hi:g} min"
