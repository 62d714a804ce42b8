"""A request dataclass on the command line: its fields' flags (engine/core/flags.py) as argparse
arguments, and the parsed arguments back as request fields. No operation is named here: a new
op's flags come from its Request alone."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from engine.cli.common import parse_options
from engine.core.flags import (Flag, field_flags, flag_name, has_default, on_command_line, sample_option_flags,
                               value_type, words)

OPTION_FLAG, OPTION_HELP = "--option", "any other sample option"


@dataclass
class ParsedRequest:
    """What the command line says of a request: its fields; the named sample-option flags given
    ({option: (flag, value)}: the loaded family decides which apply); deprecation warnings."""
    fields: dict
    named_options: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def _dest(f: dataclasses.Field, i: int, flag: Flag) -> str:
    """The argparse name of a field's i-th flag: the field's own name for the first (so a command
    may read args.n), `field__key` for a dict's entry, `field__i` for the others."""
    if flag.key:
        return f"{f.name}__{flag.key}"
    return f.name if i == 0 else f"{f.name}__{i}"


def _add(parser, name: str, dest: str, flag: Flag, typ: type, field_meta, default, required: bool) -> None:
    kw: dict = {"dest": dest, "default": default}
    help_text = argparse.SUPPRESS if flag.deprecated else flag.help_text()
    if help_text is not None:
        kw["help"] = help_text
    if typ is bool and flag.parse is None:
        parser.add_argument(name, action="store_true", **kw)
        return
    choices = field_meta.get("choices") if flag.choices is True else flag.choices
    if choices:
        kw["choices"] = choices
    else:   # argparse's own would be the dest's, which is not always the flag's
        kw["metavar"] = flag.metavar or name.lstrip("-").replace("-", "_").upper()
    parser.add_argument(name, type=flag.parse or typ, required=required, **kw)


def add_request_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """The arguments of each field of `cls` that is on the command line, in field order."""
    for f in dataclasses.fields(cls):
        if not on_command_line(f):
            continue
        if f.metadata.get("sample_options") is not None:
            _add_sample_options(parser, f)
            continue
        typ = value_type(cls, f)
        for i, flag in enumerate(field_flags(f)):
            if typ is dict and not flag.key:
                raise TypeError(f"{cls.__name__}.{f.name}: a dict on the command line needs keyed flags "
                                f"(Flag(key=...)) or sample_options; or cli=False")
            default = flag.default
            if i == 0 and default is None and f.default is not dataclasses.MISSING:
                default = f.default     # a command reads the request's default (args.n is 5000)
            elif i == 0 and default is None and not flag.key and f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()   # e.g. every metric registered by now
            required = flag.required or (i == 0 and flag.default is None and not has_default(f))
            entry_type = str if flag.key else typ
            if entry_type is list and flag.parse is None:
                flag = dataclasses.replace(flag, parse=words)
            _add(parser, flag_name(f, flag), _dest(f, i, flag), flag, entry_type, f.metadata, default, required)


def _add_sample_options(parser, f: dataclasses.Field) -> None:
    """The named flags of the family options a request's options field lists, then --option."""
    known = sample_option_flags()
    for own in f.metadata["sample_options"]:
        if own.key not in known:
            raise ValueError(f"sample option {own.key!r} has no flag in any family's section.py")
        flag, option_field, options_cls = known[own.key]
        changed = {k: getattr(own, k) for k in ("name", "help", "metavar") if getattr(own, k)}
        flag = dataclasses.replace(flag, **changed)
        _add(parser, flag.name, _dest(f, 0, own), flag, value_type(options_cls, option_field),
             option_field.metadata, None, False)
    first = field_flags(f)[0]
    parser.add_argument(first.name or OPTION_FLAG, dest=f.name, action="append", metavar="NAME=VALUE",
                        help=first.help_text() or OPTION_HELP)


def request_from_args(cls: type, args: argparse.Namespace, command: str) -> ParsedRequest:
    """The request fields the parsed arguments give (a None is left to the request's default)."""
    out = ParsedRequest({})
    for f in dataclasses.fields(cls):
        if not on_command_line(f):
            continue
        if f.metadata.get("sample_options") is not None:
            out.fields[f.name] = parse_options(getattr(args, f.name))
            for own in f.metadata["sample_options"]:
                value = getattr(args, _dest(f, 0, own))
                if value is not None:
                    out.named_options[own.key] = (own.name or sample_option_flags()[own.key][0].name, value)
            continue
        given = [(flag, getattr(args, _dest(f, i, flag))) for i, flag in enumerate(field_flags(f))]
        out.warnings += [f"{command} {flag_name(f, flag)} is deprecated, {flag.deprecated}"
                         for flag, value in given if flag.deprecated and value is not None]
        value = _field_value(given)
        if value is not None:
            out.fields[f.name] = value
    return out


def _field_value(given: list[tuple[Flag, object]]):
    """One field's value from its flags' values: keyed flags fill a dict; several plain flags join
    their values into a list, in order; a deprecated alias, when given, stands for the flag."""
    if any(flag.key for flag, _ in given):
        return {flag.key: v for flag, v in given if flag.key and v is not None} or None
    parts = [v for flag, v in given if not flag.deprecated]
    alias = [v for flag, v in given if flag.deprecated and v is not None]
    if len(parts) > 1:
        joined: list = []
        for v in parts:
            if v is not None:
                joined += v if isinstance(v, list) else [v]
        return joined or None
    return alias[-1] if alias else parts[0]
