"""A form generated from a config section's dataclass: one editor per field, chosen by type and
metadata (choices -> combo box, bool -> check box, int/float -> spin box with the allowed range,
list -> comma-separated text), with the field's help as tooltip."""
from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QSlider, QSpinBox, QWidget)

from app.qt_util import signals_blocked


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _cap_min_width(ed: QWidget) -> None:
    """A spin box's minimum fits its range's widest value (a float up to 1e9 with 6 decimals: about
    150 px) and a combo's its longest choice: far more than the values shown need. Capped at about
    7 digits, so a form fits a narrow column; wider columns still grow the fields."""
    if isinstance(ed, (QAbstractSpinBox, QComboBox)):
        cap = ed.fontMetrics().horizontalAdvance("0" * 7) + 30   # + the arrows and the frame
        if ed.minimumSizeHint().width() > cap:
            ed.setMinimumWidth(cap)


def _list_item(text: str):
    """A list field's item as typed: an int, a float ("0.5", "1e-3") or else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


class FloatSlider(QWidget):
    """A slider over a float field's [min, max] with its value beside it, for options that are
    dragged while watching the result (slider=True in the field's metadata, e.g. truncation psi)."""

    valueChanged = Signal(float)
    STEPS = 200

    def __init__(self, lo: float, hi: float, parent=None):
        super().__init__(parent)
        self.lo, self.hi = lo, hi
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, self.STEPS)
        self.label = QLabel()
        self.label.setMinimumWidth(36)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)
        self._moved(self.slider.value())

    def value(self) -> float:
        return round(self.lo + (self.hi - self.lo) * self.slider.value() / self.STEPS, 4)

    def setValue(self, v: float) -> None:
        self.slider.setValue(round((float(v) - self.lo) / (self.hi - self.lo) * self.STEPS))
        self.label.setText(f"{self.value():.2f}")

    def _moved(self, _pos: int) -> None:
        self.label.setText(f"{self.value():.2f}")
        self.valueChanged.emit(self.value())


class ConfigForm(QWidget):
    changed = Signal()

    def __init__(self, section_cls: type, exclude: tuple[str, ...] = (), parent=None,
                 include: list[str] | None = None):
        """One editor per field of section_cls; `include` picks and orders the fields, else all
        but `exclude`."""
        super().__init__(parent)
        self.section_cls = section_cls
        self.editors: dict[str, QWidget] = {}
        self._types = get_type_hints(section_cls)
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for f in dataclasses.fields(section_cls):
            if f.name in exclude or (include is not None and f.name not in include):
                continue
            ed = self._make_editor(f, self._types[f.name])
            _cap_min_width(ed)
            ed.setToolTip(f.metadata.get("help", ""))
            ed.setObjectName(f"field_{f.name}")
            self.editors[f.name] = ed
            layout.addRow(_label(f.name), ed)
            layout.labelForField(ed).setToolTip(f.metadata.get("help", ""))

    def _make_editor(self, f: dataclasses.Field, typ: Any) -> QWidget:
        meta = f.metadata
        if meta.get("choices"):
            ed = QComboBox()
            ed.addItems([str(c) for c in meta["choices"]])
            ed.currentIndexChanged.connect(self.changed)
        elif typ is bool:
            ed = QCheckBox()
            ed.toggled.connect(self.changed)
        elif typ is int:
            ed = QSpinBox()
            ed.setRange(int(meta["min"]) if meta.get("min") is not None else -2**31 + 1,
                        int(meta["max"]) if meta.get("max") is not None else 2**31 - 1)
            ed.valueChanged.connect(self.changed)
        elif typ is float and meta.get("slider") and meta.get("min") is not None and meta.get("max") is not None:
            ed = FloatSlider(meta["min"], meta["max"])
            ed.valueChanged.connect(self.changed)
        elif typ is float:
            ed = QDoubleSpinBox()
            ed.setDecimals(meta.get("decimals", 6))  # 6 by default: learning rates like 0.0002
            ed.setRange(meta["min"] if meta.get("min") is not None else -1e9,
                        meta["max"] if meta.get("max") is not None else 1e9)
            ed.setSingleStep(0.1 if (meta.get("max") or 10) > 1 else 0.001)
            ed.valueChanged.connect(self.changed)
        else:  # str or list
            ed = QLineEdit()
            if typ is list:
                ed.setPlaceholderText("comma-separated, e.g. 1, 2, 2")
            ed.textChanged.connect(self.changed)
        return ed

    def set_values(self, section: Any) -> None:
        """View follows model: set every editor from a section object (or a dict of some of its
        values), without echoing signals."""
        for name, ed in self.editors.items():
            if isinstance(section, dict):
                if name not in section:
                    continue
                v = section[name]
            else:
                v = getattr(section, name)
            with signals_blocked(ed), signals_blocked(getattr(ed, "slider", ed)):
                if isinstance(ed, QComboBox):
                    ed.setCurrentText(str(v))
                elif isinstance(ed, QCheckBox):
                    ed.setChecked(bool(v))
                elif isinstance(ed, (QSpinBox, QDoubleSpinBox, FloatSlider)):
                    ed.setValue(v)
                elif self._types[name] is list:
                    ed.setText(", ".join(str(x) for x in v))
                else:
                    ed.setText(str(v))
        self.changed.emit()

    def values(self) -> dict:
        out = {}
        for name, ed in self.editors.items():
            typ = self._types[name]
            if isinstance(ed, QComboBox):
                out[name] = ed.currentText()
            elif isinstance(ed, QCheckBox):
                out[name] = ed.isChecked()
            elif isinstance(ed, (QSpinBox, QDoubleSpinBox, FloatSlider)):
                out[name] = typ(ed.value())
            elif typ is list:
                items = [s.strip() for s in ed.text().split(",") if s.strip()]
                out[name] = [_list_item(s) for s in items]
            else:
                out[name] = ed.text()
        return out
