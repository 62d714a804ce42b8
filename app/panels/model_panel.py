"""Model panel: family, preset, and forms generated from the config schema (model, training,
sampling), with the fields' help as tooltips. Validation errors name the field."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QScrollArea, QTabWidget, QVBoxLayout

from app.qt_util import signals_blocked
from app.widgets.config_form import ConfigForm
from engine.config import (MODEL_CONFIGS, ConfigError, MetricsConfig, RunConfig, SamplingConfig, TrainingConfig,
                           list_presets, load_preset)


def _scrolled(w):
    s = QScrollArea()
    s.setWidget(w)
    s.setWidgetResizable(True)
    return s


class ModelPanel(QGroupBox):
    preset_loaded = Signal(object)   # RunConfig
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Model", parent)
        self.family = QComboBox()
        self.family.addItems(list(MODEL_CONFIGS))
        self.family.setToolTip("The model family: ddpm (diffusion), gan (DCGAN), stylegan (StyleGAN-lite).")
        self.preset = QComboBox()
        for name, desc in list_presets().items():
            self.preset.addItem(name, name)
            self.preset.setItemData(self.preset.count() - 1, desc, 3)  # 3 = Qt.ToolTipRole
        self.model_form = ConfigForm(MODEL_CONFIGS["ddpm"], exclude=("family",))
        self.training_form = ConfigForm(TrainingConfig)
        self.sampling_form = ConfigForm(SamplingConfig)
        self.metrics_form = ConfigForm(MetricsConfig)
        tabs = QTabWidget()
        self.tabs = tabs
        tabs.addTab(_scrolled(self.model_form), "Network")
        tabs.addTab(_scrolled(self.training_form), "Training")
        tabs.addTab(_scrolled(self.sampling_form), "Sampling")
        tabs.addTab(_scrolled(self.metrics_form), "Metrics")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color:#c0392b")
        self.error.hide()
        top = QFormLayout()
        top.addRow("Family", self.family)
        top.addRow("Preset", self.preset)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(tabs, 1)
        lay.addWidget(self.error)
        self.name = "run"
        self.preset.currentIndexChanged.connect(lambda _: self.load_preset(self.preset.currentData()))
        self.family.currentTextChanged.connect(self._family_changed)
        for f in (self.model_form, self.training_form, self.sampling_form, self.metrics_form):
            f.changed.connect(self.changed)

    def load_preset(self, name: str) -> RunConfig:
        cfg = load_preset(name)
        with signals_blocked(self.preset):
            self.preset.setCurrentIndex(self.preset.findData(name))
        self.set_config(cfg)
        self.preset_loaded.emit(cfg)
        return cfg

    def _use_family_form(self, family: str) -> None:
        """The Network tab shows the fields of the chosen family's [model] section."""
        if self.model_form.section_cls is MODEL_CONFIGS[family]:
            return
        form = ConfigForm(MODEL_CONFIGS[family], exclude=("family",))
        form.changed.connect(self.changed)
        self.tabs.removeTab(0)
        self.tabs.insertTab(0, _scrolled(form), "Network")
        self.tabs.setCurrentIndex(0)
        self.model_form = form

    def _family_changed(self, family: str) -> None:
        """A new family starts from its defaults (its presets set them better)."""
        self._use_family_form(family)
        self.model_form.set_values(MODEL_CONFIGS[family]())
        self.changed.emit()

    def set_config(self, cfg: RunConfig) -> None:
        self.name = cfg.name
        with signals_blocked(self.family):
            self.family.setCurrentText(cfg.model.family)
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
