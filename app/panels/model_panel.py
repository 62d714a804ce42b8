"""Model panel: family, preset, and forms generated from the config schema (the family's model and
sampling sections, training, metrics), with the fields' help as tooltips. Validation errors name
the field. The families and their sections come from the registry (engine/core/families.py)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QProxyStyle, QStyle,
                               QTabWidget, QVBoxLayout)

from app.qt_util import scrolled, signals_blocked
from app.widgets.config_form import ConfigForm
from engine.core.config import ConfigError, MetricsConfig, RunConfig, TrainingConfig, list_presets, load_preset

CUSTOM = "(custom)"   # the preset combo's entry for settings that are no preset's
LOCKED = "Read-only while the run trains — stop it or start a new run to change the model."
from engine.core.families import DEFAULT_FAMILY, FAMILIES, family_spec
from engine.core.sections import GRID_FIELDS


def section_form(section_cls: type, **kw) -> ConfigForm:
    """A tab's form: the advanced fields folded, so the common ones fill the view."""
    return ConfigForm(section_cls, fold_advanced=True, **kw)


class NarrowTabs(QProxyStyle):
    """Tabs padded less than the style pads them (5 px a side, not 12, in Fusion): the four tab titles fit
    a 270-pixel column (at 1024×640) instead of hiding behind scroll arrows."""

    def pixelMetric(self, metric, option=None, widget=None):
        px = super().pixelMetric(metric, option, widget)
        return px * 2 // 5 if metric == QStyle.PM_TabBarTabHSpace else px


def fit_tabs(tabs: QTabWidget) -> None:
    """Narrow tab padding; where even that does not fit (a large font), the titles are shortened
    with "…" rather than hidden behind arrows."""
    bar = tabs.tabBar()
    bar.setStyle(NarrowTabs())
    bar.setUsesScrollButtons(False)
    bar.setElideMode(Qt.ElideRight)


def follow_name(old: str, old_family: str, family: str) -> str:
    """The run name a new family gets when the old one was chosen for the person (a preset's or a
    family's): "ddpm-digits" -> "stylegan-digits" (a preset's name is model-dataset, and the
    dataset stays), a family's bare name -> the new family's."""
    rest = old.split("-", 1)[1] if "-" in old else ""
    return f"{family}-{rest}" if rest and old != old_family else family


def form_page(form: ConfigForm):
    """A tab's form, scrolling below its height. Narrow margins (the tab's frame is around it): in a
    270-pixel column every family's form fits without scrolling sideways."""
    form.layout().setContentsMargins(4, 4, 4, 4)
    return scrolled(form)


class ModelPanel(QGroupBox):
    preset_loaded = Signal(object)   # RunConfig
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Model", parent)
        self.family = QComboBox()
        for name in FAMILIES:
            self.family.addItem(name, name)
            self.family.setItemData(self.family.count() - 1, family_spec(name).title, 3)  # 3 = Qt.ToolTipRole
        self.family.setToolTip("The model family: " + ", ".join(f"{n} ({family_spec(n).title})" for n in FAMILIES))
        self.preset = QComboBox()
        self.preset.addItem(CUSTOM, "")
        self.preset.setItemData(0, "Settings of no preset: a family's defaults, or an opened run's config", 3)
        self._preset_family: dict[str, str] = {}
        for name, desc in list_presets().items():
            self.preset.addItem(name, name)
            self.preset.setItemData(self.preset.count() - 1, desc, 3)  # 3 = Qt.ToolTipRole
        self.preset.setToolTip("A tested starting point for a family and a dataset (it sets the Data panel too)")
        self.run_name = QLineEdit("run")
        self.run_name.setToolTip("The run's name: its folder is runs/<date>-<time>-<name>. It follows the "
                                 "preset or family chosen until you type your own.")
        self._auto_name = "run"   # the name last set for the person; once they type another, it stays
        spec = family_spec(DEFAULT_FAMILY)
        self.model_form = section_form(spec.config, exclude=("family",))
        self.training_form = section_form(TrainingConfig)
        self.sampling_form = section_form(spec.sample_options)
        self.metrics_form = section_form(MetricsConfig)
        tabs = QTabWidget()
        fit_tabs(tabs)
        self.tabs = tabs
        tabs.addTab(form_page(self.model_form), "Network")
        tabs.addTab(form_page(self.training_form), "Training")
        tabs.addTab(form_page(self.sampling_form), "Sampling")
        tabs.addTab(form_page(self.metrics_form), "Metrics")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color:#c0392b")
        self.error.hide()
        self.lock_note = QLabel(LOCKED)
        self.lock_note.setWordWrap(True)
        self.lock_note.setStyleSheet("color:#b26b00")
        self.lock_note.hide()
        top = QFormLayout()
        top.addRow("Family", self.family)
        top.addRow("Preset", self.preset)
        top.addRow("Run name", self.run_name)
        lay = QVBoxLayout(self)
        lay.addWidget(self.lock_note)
        lay.addLayout(top)
        lay.addWidget(tabs, 1)
        lay.addWidget(self.error)
        self.preset.currentIndexChanged.connect(self._on_preset_picked)
        self._family_shown = self.family.currentText()
        self.family.currentTextChanged.connect(self._family_changed)
        for f in (self.model_form, self.training_form, self.sampling_form, self.metrics_form):
            f.changed.connect(self.changed)

    @property
    def name(self) -> str:
        return self.run_name.text().strip() or "run"

    def _on_preset_picked(self) -> None:
        if self.preset.currentData():
            self.load_preset(self.preset.currentData())

    def show_preset_of(self, cfg: RunConfig) -> None:
        """The preset combo names the preset a config came from (by its name and family, as runs
        are named after their preset), else says it is custom."""
        name = cfg.name if cfg.name in list_presets() else ""
        if name and self._family_of_preset(name) != cfg.model.family:
            name = ""
        with signals_blocked(self.preset):
            self.preset.setCurrentIndex(max(0, self.preset.findData(name)))

    def _family_of_preset(self, name: str) -> str:
        if name not in self._preset_family:
            self._preset_family[name] = load_preset(name).model.family
        return self._preset_family[name]

    def set_read_only(self, on: bool, reason: str = "") -> None:
        """While the run these panels describe trains, its model cannot change: say so."""
        for w in (self.family, self.preset, self.run_name, self.tabs):
            w.setEnabled(not on)
        self.lock_note.setText(reason or LOCKED)
        self.lock_note.setVisible(on)

    def load_preset(self, name: str) -> RunConfig:
        """The preset's settings into the forms; the run is named after it unless the person
        typed a name of their own."""
        cfg = load_preset(name)
        own = self.run_name.text() if self.run_name.text() != self._auto_name else None
        with signals_blocked(self.preset):
            self.preset.setCurrentIndex(self.preset.findData(name))
        self.set_config(cfg)
        if own is not None:
            self.run_name.setText(own)
        self.preset_loaded.emit(cfg)
        return cfg

    def _use_family_form(self, family: str) -> None:
        """The Network and Sampling tabs show the fields of the chosen family's sections."""
        spec = family_spec(family)
        if self.model_form.section_cls is not spec.config:
            self.model_form = self._replace_tab(0, section_form(spec.config, exclude=("family",)), "Network")
        if self.sampling_form.section_cls is not spec.sample_options:
            self.sampling_form = self._replace_tab(2, section_form(spec.sample_options), "Sampling")

    def _replace_tab(self, index: int, form: ConfigForm, title: str) -> ConfigForm:
        form.changed.connect(self.changed)
        form.show_advanced(self.tabs.widget(index).widget().advanced_shown())   # unfolded stays unfolded
        current = self.tabs.currentIndex()
        self.tabs.widget(index).deleteLater()  # the old form's scroll area: removeTab keeps it alive
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, form_page(form), title)
        self.tabs.setCurrentIndex(current)
        return form

    def _family_changed(self, family: str) -> None:
        """A new family starts from its defaults (its presets set them better); the sample grid's
        size and seed carry over."""
        grid = {k: v for k, v in self.sampling_form.values().items() if k in GRID_FIELDS}
        self._use_family_form(family)
        spec = family_spec(family)
        self.model_form.set_values(spec.config())
        self.sampling_form.set_values({**vars(spec.sample_options()), **grid})
        with signals_blocked(self.preset):   # a family's defaults are no preset
            self.preset.setCurrentIndex(0)
        if self.run_name.text() == self._auto_name:   # not the person's own name
            self._set_name(follow_name(self._auto_name, self._family_shown, family))
        self._family_shown = family
        self.changed.emit()

    def _set_name(self, name: str) -> None:
        self._auto_name = name
        self.run_name.setText(name)

    def set_config(self, cfg: RunConfig) -> None:
        self._set_name(cfg.name)
        self.show_preset_of(cfg)
        with signals_blocked(self.family):
            self.family.setCurrentText(cfg.model.family)
        self._family_shown = cfg.model.family
        self._use_family_form(cfg.model.family)
        self.model_form.set_values(cfg.model)
        self.training_form.set_values(cfg.training)
        self.sampling_form.set_values(cfg.sampling)
        self.metrics_form.set_values(cfg.metrics)
        self.error.hide()

    def build_config(self, data: dict) -> RunConfig | None:
        """The config the forms describe, or None (with the message shown) when a field is bad."""
        try:
            cfg = RunConfig.from_dict({"name": self.name, "data": data,
                                       "model": {"family": self.family.currentText(), **self.model_form.values()},
                                       "training": self.training_form.values(),
                                       "sampling": self.sampling_form.values(),
                                       "metrics": self.metrics_form.values()})
        except ConfigError as e:
            self.error.setText(f"✖ {e}")
            self.error.show()
            return None
        self.error.hide()
        return cfg
