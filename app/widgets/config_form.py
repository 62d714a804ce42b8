"""A form generated from a config section's dataclass: one editor per field, chosen by type and
metadata (choices -> combo box, bool -> check box, int/float -> spin box with the allowed range,
list -> comma-separated text), with the field's help as tooltip. Every editor gives back a value of
its field's type (a combo of int choices gives ints), so a section round-trips through the form
unchanged; advanced=True fields can be folded away under one "Advanced" row, and fields with a
group= metadata sit under a heading of that name."""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, get_type_hints

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QSlider, QSpinBox, QToolButton, QWidget)

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


def _base_type(typ: Any) -> Any:
    """`X | None` -> X, `list[int]` -> list: the type an editor is chosen by and gives back."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
    return typing.get_origin(typ) or typ


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


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
        self._value = lo
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
        """The value set, exactly (a preset's 0.7 stays 0.7 though the slider moves in 200 steps),
        or where the person dragged the slider to."""
        return self._value

    def setValue(self, v: float) -> None:
        old, self._value = self._value, float(v)
        with signals_blocked(self.slider):
            self.slider.setValue(round((self._value - self.lo) / (self.hi - self.lo) * self.STEPS))
        self.label.setText(f"{self._value:.2f}")
        if self._value != old:
            self.valueChanged.emit(self._value)

    def _moved(self, pos: int) -> None:
        self._value = round(self.lo + (self.hi - self.lo) * pos / self.STEPS, 4)
        self.label.setText(f"{self._value:.2f}")
        self.valueChanged.emit(self._value)


class FloatSpinBox(QDoubleSpinBox):
    """A float field's spin box. With `shown` decimals (a field's decimals=N) it shows and keeps N
    digits after the point; without, it keeps the value as set and shows it as Python writes it
    ("0.0", "0.0002", "2e-05"), not padded to a fixed count of digits ("0.000000")."""

    KEPT = 15   # digits after the point kept without `shown` (Qt rounds a value to its decimals)

    def __init__(self, shown: int | None = None, parent=None):
        super().__init__(parent)
        self.shown = shown
        self.setDecimals(self.KEPT if shown is None else shown)

    def textFromValue(self, v: float) -> str:
        return repr(float(v)) if self.shown is None else f"{v:.{self.shown}f}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            v = float(text)
        except ValueError:   # "", "-", "1e" on the way to a number; anything else is refused
            ok = re.fullmatch(r"\s*[-+]?(\d*\.?\d*([eE][-+]?)?)?\s*", text)
            return (QValidator.Intermediate if ok else QValidator.Invalid), text, pos
        if not math.isfinite(v):
            return QValidator.Invalid, text, pos
        inside = self.minimum() <= v <= self.maximum()
        return (QValidator.Acceptable if inside else QValidator.Intermediate), text, pos

    def fixup(self, text: str) -> str:
        return self.textFromValue(self.value())


class ConfigForm(QWidget):
    changed = Signal()

    def __init__(self, section_cls: type, exclude: tuple[str, ...] = (), parent=None,
                 include: list[str] | None = None, fold_advanced: bool = False):
        """One editor per field of section_cls; `include` picks and orders the fields, else all
        but `exclude`. With fold_advanced, the advanced=True fields come last, folded under an
        "Advanced" row that shows them on a click (so the common fields fill the view)."""
        super().__init__(parent)
        self.section_cls = section_cls
        self.editors: dict[str, QWidget] = {}
        self._types = {name: _base_type(t) for name, t in get_type_hints(section_cls).items()}
        self._fields = {f.name: f for f in dataclasses.fields(section_cls)
                        if f.name not in exclude and (include is None or f.name in include)}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        folded = [f for f in self._fields.values() if fold_advanced and f.metadata.get("advanced")]
        common = [f for f in self._fields.values() if f not in folded]
        self.headings: dict[str, QLabel] = {}
        self._add_rows(layout, common)
        self.advanced_toggle: QToolButton | None = None
        if folded:
            self.advanced_toggle = QToolButton()
            self.advanced_toggle.setObjectName("advanced_toggle")
            self.advanced_toggle.setCheckable(True)
            self.advanced_toggle.setAutoRaise(True)
            self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
            self.advanced_toggle.setToolTip("Settings that rarely need changing: " +
                                            ", ".join(_label(f.name).lower() for f in folded))
            self.advanced_toggle.toggled.connect(self.show_advanced)
            layout.addRow(self.advanced_toggle)
            headings = self._add_rows(layout, folded)
            self._folded = [self.editors[f.name] for f in folded]
            self._folded_rows = self._folded + headings
            self.changed.connect(self._count_advanced_changes)
            self.show_advanced(False)

    def _add_rows(self, layout: QFormLayout, fields: list[dataclasses.Field]) -> list[QLabel]:
        """A row per field, and a heading row where the fields' group= changes (a long section
        such as StyleGAN's reads as networks, loss, conditioning, augmentation, ...); the
        headings added."""
        added, group = [], None
        for f in fields:
            g = f.metadata.get("group")
            if g and g != group:
                heading = QLabel(g)
                heading.setObjectName("group_heading")
                font = heading.font()
                font.setBold(True)
                heading.setFont(font)
                heading.setContentsMargins(0, 6, 0, 0)
                layout.addRow(heading)
                self.headings.setdefault(g, heading)
                added.append(heading)
            group = g or group
            self._add_row(layout, f)
        return added

    def _add_row(self, layout: QFormLayout, f: dataclasses.Field) -> None:
        ed = self._make_editor(f, self._types[f.name])
        _cap_min_width(ed)
        ed.setToolTip(f.metadata.get("help", ""))
        ed.setObjectName(f"field_{f.name}")
        self.editors[f.name] = ed
        layout.addRow(_label(f.name), ed)
        layout.labelForField(ed).setToolTip(f.metadata.get("help", ""))

    # ---- the advanced fields, folded -------------------------------------------------------------
    def advanced_shown(self) -> bool:
        return self.advanced_toggle is not None and self.advanced_toggle.isChecked()

    def show_advanced(self, on: bool) -> None:
        if self.advanced_toggle is None:
            return
        with signals_blocked(self.advanced_toggle):
            self.advanced_toggle.setChecked(on)
        self.advanced_toggle.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        for row in self._folded_rows:
            self.layout().setRowVisible(row, on)
        self._count_advanced_changes()

    def _count_advanced_changes(self) -> None:
        """The fold's row says how many advanced fields differ from their defaults, so a value a
        preset changed is not hidden without a word."""
        if self.advanced_toggle is None:
            return
        values = self.values()
        names = [n for n, ed in self.editors.items() if ed in self._folded]
        changed = sum(values[n] != _default(self._fields[n]) for n in names)
        self.advanced_toggle.setText(f"Advanced ({len(names)}" + (f", {changed} changed)" if changed else ")"))

    # ---- editors ---------------------------------------------------------------------------------
    def _make_editor(self, f: dataclasses.Field, typ: Any) -> QWidget:
        meta = f.metadata
        if meta.get("choices"):
            ed = QComboBox()
            for c in meta["choices"]:
                ed.addItem(str(c), c)   # the choice itself comes back, as its type (3, not "3")
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
            ed = FloatSpinBox(meta.get("decimals"))
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
                    choices = list(self._fields[name].metadata["choices"])
                    if v in choices:   # (by value: True == 1, but no field mixes the two)
                        ed.setCurrentIndex(choices.index(v))
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
        """Every field's value, as its type."""
        out = {}
        for name, ed in self.editors.items():
            typ = self._types[name]
            if isinstance(ed, QComboBox):
                out[name] = ed.currentData()
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
