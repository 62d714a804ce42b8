"""How a field shows itself outside Python: its command-line flag(s) and help, and whether it names
a file the operation writes. An operation's Request dataclass carries this in its fields' metadata
(`request_field`), as config sections carry the Model form's (engine/core/schema.opt), so the CLI
builds a subcommand from a request (engine/cli/request_args.py) and the worker knows where a request
that names no output writes it (worker_outputs). A family's sample option may carry a `flag` too
(`flag=Flag("--psi", ...)` in its opt()): the op commands offer it as a named flag. A Request with
rules only its command has defines `command_line(fields, checkpoint) -> (fields, checkpoint, notes)`
(a classmethod; inpaint: a classical fill loads no checkpoint), raising ValueError for a refusal.

Light: no torch, no argparse; the families' options are read through the family registry."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Callable

OUTPUT_KINDS = ("file", "folder", "strip")   # one file; a folder of files; a scale-1 strip a canvas reads


@dataclass(frozen=True)
class Flag:
    """One command-line flag. A field has one by default ("--" + its name); more are aliases or
    parts of it. Unset attributes fall back on the field's (its type, its help)."""
    name: str = ""                   # "--from"; "": "--" + the field's name (or, keyed, the option's flag)
    help: str | Callable[[], str] | None = None     # a callable: computed when the parser is built
    metavar: str | None = None       # None: the flag's name in capitals (--sample-steps SAMPLE_STEPS)
    default: Any = None              # the command line's default; None: the request's own
    required: bool = False
    choices: tuple | bool | None = None   # True: the field's own `choices` metadata
    parse: Callable[[str], Any] | None = None   # the value from its text; None: by the field's type
    key: str = ""                    # a dict field's entry this flag fills (a sample option's name)
    deprecated: str = ""             # an old spelling: "<command> <flag> is deprecated, <this>" is
                                     # printed and its value taken; hidden from --help

    def help_text(self) -> str | None:
        return self.help() if callable(self.help) else self.help


def request_field(default: Any = MISSING, help: str | Callable[[], str] | None = None, *,
                  factory: Callable[[], Any] | None = None, flag: str = "", metavar: str | None = None,
                  cli_default: Any = None, choices: tuple | None = None, parse: Callable[[str], Any] | None = None,
                  flags: tuple[Flag, ...] = (), output: str = "", cli: bool = True,
                  sample_options: tuple[str | Flag, ...] | None = None) -> Any:
    """A request field with what the command line and the worker read:
    flag/help/metavar/cli_default/choices/parse: its one flag (cli_default: the command line's
    default where it differs from the request's; a field with neither is a required flag);
    flags: its flags instead, when it has several: a deprecated alias after the flag, the parts of
    a list joined in order (--from, --via, --to), or, keyed, the entries of a dict (--jump ->
    inpaint["jump"]);
    output: "file", "folder" or "strip" when the field is a path the operation writes;
    cli=False: not on the command line;
    sample_options: the field is the family's sample options: --option NAME=VALUE (strict; `help`
    is its help) and the named flags of these options (their Flag is in the family's section.py; a
    Flag here with key= changes its name, help or metavar for this command). A loaded family
    without the option ignores its flag with a warning."""
    if output and output not in OUTPUT_KINDS:
        raise ValueError(f"output = {output!r}: choose one of {', '.join(OUTPUT_KINDS)}")
    own = flags or (Flag(flag, help, metavar, cli_default, choices=choices, parse=parse),)
    meta = {"flags": own, "output": output, "cli": cli,
            "sample_options": None if sample_options is None else
            tuple(Flag(key=s) if isinstance(s, str) else s for s in sample_options)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_flags(f: dataclasses.Field) -> tuple[Flag, ...]:
    """A field's flags; a field declared without request_field has one: "--" + its name."""
    return f.metadata.get("flags") or (Flag(),)


def flag_name(f: dataclasses.Field, flag: Flag) -> str:
    return flag.name or "--" + f.name.replace("_", "-")


def on_command_line(f: dataclasses.Field) -> bool:
    return f.metadata.get("cli", True)


def has_default(f: dataclasses.Field) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def value_type(cls: type, f: dataclasses.Field) -> type:
    """A field's type without `| None` (int for `int | None`)."""
    typ = typing.get_type_hints(cls)[f.name]
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if args and typing.get_origin(typ) is not None and type(None) in typing.get_args(typ):
        typ = args[0]
    return typing.get_origin(typ) or typ


def worker_outputs(cls: type) -> list[tuple[str, str]]:
    """(field, kind) of the outputs a worker fills in when a request leaves them out: its strips
    where it has any (what a canvas reads of a walk; a file it exports is written only where the
    request names one), else its files and folders."""
    outputs = [(f.name, f.metadata["output"]) for f in dataclasses.fields(cls) if f.metadata.get("output")]
    strips = [o for o in outputs if o[1] == "strip"]
    return strips or outputs


# ---- results: what a command prints ------------------------------------------------------------
def result_field(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, report: str | bool = True,
                 note: bool = False) -> Any:
    """A result field and how its command prints it: report=False leaves it out of the JSON line,
    a string prints it under that key; note=True prints a non-empty value as a note on stderr."""
    meta = {"report": False if note else report, "note": note}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def report(cls: type, values: dict) -> tuple[dict, list[str]]:
    """A result's fields as its command prints them: the JSON line's entries and the notes."""
    line, notes = {}, []
    for f in dataclasses.fields(cls):
        key = f.metadata.get("report", True)
        if f.metadata.get("note"):
            notes += [str(values[f.name])] if values.get(f.name) else []
        elif key:
            line[f.name if key is True else key] = values[f.name]
    return line, notes


# ---- how a command-line string parses ----------------------------------------------------------
def seed_or_path(text: str) -> int | str:
    """A seed (an integer) or an image path, taken whole (a path may hold a comma)."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def seeds_or_paths(text: str) -> list:
    """Comma-separated seeds and/or image paths."""
    return [seed_or_path(s) for s in text.split(",") if s.strip()]


def seeds(text: str) -> list[int]:
    """Comma-separated seeds (whole numbers)."""
    return [int(s) for s in text.split(",") if s.strip()]


def words(text: str) -> list[str]:
    """Comma-separated words, e.g. layers "0-3,fine"."""
    return [s.strip() for s in text.split(",") if s.strip()]


# ---- the families' sample-option flags ---------------------------------------------------------
def sample_option_flags() -> dict[str, tuple[Flag, dataclasses.Field, type]]:
    """option name -> (its Flag, its field, its options class) over every registered family's
    sample options, by the `flag` metadata of their fields. Two families giving one option
    different flags is an error naming them."""
    from engine.core.families import FAMILIES
    found: dict[str, tuple[Flag, dataclasses.Field, type]] = {}
    for name, spec in FAMILIES.items():
        options = spec.sample_options
        for f in dataclasses.fields(options):
            flag = f.metadata.get("flag")
            if flag is None:
                continue
            seen = found.get(f.name)
            if seen is not None and seen[0].name != flag.name:
                raise ValueError(f"sample option {f.name!r} has flag {seen[0].name} in {seen[2].__name__} but "
                                 f"{flag.name} in {options.__name__} ({name}); give it one")
            found.setdefault(f.name, (flag, f, options))
    return found
