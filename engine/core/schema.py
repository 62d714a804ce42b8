"""Generic config-schema machinery, with no domain knowledge: `opt()` fields carrying the metadata
that forms and validators read, type coercion, section parsing and validation with messages that
name the field, and a small TOML writer. engine/core/config.py (the run config) and the family config
sections (engine/families/<name>/section.py) build on it; it imports nothing of theirs, so there is no import loop."""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import field
from typing import Any, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A config value is wrong. The message names the field, the value and what is allowed."""


def opt(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None, advanced: bool = False, **extra: Any) -> Any:
    """A config field with the metadata the GUI form and the validator read. `extra` metadata:
    decode=False (a sample option latent walks do not use), requires="conditional.guidance" (the
    capability an option needs), slider=True (drawn as a slider), decimals=N (shown digits),
    flag=Flag("--psi", help) (a sample option's named flag on the op commands: engine/core/flags.py),
    group="Loss" (the GUI form puts a heading of that name above this field; the fields after it
    belong to the group until another names its own)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "advanced": advanced, **extra}
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


class Section:
    """Base of config sections (each a dataclass). `check` is the section's own validation beyond
    the per-field metadata (types, choices, ranges), e.g. a UNet's resolution constraint; `run` is
    the whole RunConfig, for checks that involve other sections."""

    def check(self, where: str, run: Any) -> None:
        pass


def section_from_dict(section_cls: type, d: Any, where: str):
    """A section object from a TOML table; unknown fields and wrong types are errors naming them."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a table, got {d!r}")
    hints = get_type_hints(section_cls)
    names = {f.name for f in dataclasses.fields(section_cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown field {where}.{unknown[0]}; known fields: {', '.join(sorted(names))}")
    values = {name: coerce(value, hints[name], f"{where}.{name}") for name, value in d.items()}
    return section_cls(**values)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
               dict: "a table of values"}


def coerce(value: Any, typ: Any, where: str) -> Any:
    """value as typ (an int is a valid float; `X | None` accepts None), or an error naming `where`."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        typ = next(a for a in args if a is not type(None))
    typ = typing.get_origin(typ) or typ
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in _TYPE_NAMES:
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{where} = {value!r} must be {_TYPE_NAMES[typ]}")
        if typ is float and not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} must be a finite number")
        return list(value) if typ is list else value
    return value


def check_field(value: Any, f: dataclasses.Field, typ: Any, where: str) -> Any:
    """One value against a field's type, choices and range; the coerced value."""
    value = coerce(value, typ, where)
    meta = f.metadata
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{where} = {value!r} is not allowed; choose one of: {', '.join(map(str, choices))}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{where} = {value!r} is too small; the minimum is {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where} = {value!r} is too large; the maximum is {hi}")
    return value


def validate_section(obj: Any, where: str, run: Any = None) -> None:
    """Types, choices and ranges of every field, then the section's own check()."""
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_field(getattr(obj, f.name), f, hints[f.name], f"{where}.{f.name}")
    if isinstance(obj, Section):
        obj.check(where, run)


def check_like(value: Any, section_cls: type, name: str, where: str, as_field: str) -> Any:
    """A command-line or request value that stands for a config field, held to that field's rules
    (so `eval --n 3` is refused exactly as metrics.samples = 3 would be); as_field names the field."""
    f = next(f for f in dataclasses.fields(section_cls) if f.name == name)
    try:
        return check_field(value, f, get_type_hints(section_cls)[name], where)
    except ConfigError as e:
        raise ConfigError(f"{e} (the rule of {as_field})") from None


def replace_fields(obj: Any, values: dict, where: str) -> Any:
    """A copy of a section with some fields changed, coerced and validated; an unknown name is an
    error naming it and the known ones."""
    names = [f.name for f in dataclasses.fields(obj)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown field {where}.{unknown[0]}; known fields: {', '.join(names)}")
    merged = {**dataclasses.asdict(obj), **values}
    new = section_from_dict(type(obj), merged, where)
    validate_section(new, where)
    return new


def check_positive_int_list(value: Any, where: str, *, empty_ok: bool = True) -> None:
    if not isinstance(value, list) or (not value and not empty_ok) or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        kind = "a list" if empty_ok else "a non-empty list"
        raise ConfigError(f"{where} = {value!r} must be {kind} of positive integers")


# ---- TOML ---------------------------------------------------------------------------------------
def loads_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(d: dict) -> str:
    """Top-level keys, then one [table] per dict value (one level deep: all a run config needs)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
