"""What the genlab-engine commands share: the one-line error, lines on stderr, TOML-valued
command-line settings (--set, --option)."""
from __future__ import annotations

import os
import sys


class CLIError(Exception):
    """A command cannot go on: main prints `genlab-engine: error: <message>` and exits 2."""


def toml_value(raw: str):
    """A command-line value in TOML syntax (3, 0.5, true, [1, 2], "x"); bare words are strings."""
    from engine.core.schema import tomllib
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_set(pairs: list[str]) -> dict:
    """--set section.field=value (value in TOML syntax, bare words taken as strings)."""
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair or "." not in pair.split("=", 1)[0]:
            raise CLIError(f"--set {pair!r}: expected section.field=value, e.g. training.batch_size=32")
        key, raw = pair.split("=", 1)
        section, fld = key.strip().split(".", 1)
        out.setdefault(section, {})[fld] = toml_value(raw)
    return out


def parse_options(pairs: list[str] | None) -> dict:
    """Sample options from --option NAME=VALUE pairs (TOML values). Which options exist is the
    checkpoint's family's business: one it lacks is an error naming it."""
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CLIError(f"--option {pair!r}: expected NAME=VALUE, e.g. steps=50")
        key, raw = pair.split("=", 1)
        out[key.strip()] = toml_value(raw)
    return out


def rank_prefix() -> str:
    """"[rank r] " before the lines of a torchrun rank other than 0; "" otherwise."""
    rank = os.environ.get("RANK", "0") if "WORLD_SIZE" in os.environ else "0"
    return "" if rank == "0" else f"[rank {rank}] "


def say(line: str) -> None:
    """One line on stderr in one write: the ranks of a torchrun share it, and print() writes the
    text and its newline apart, so two ranks' lines could interleave."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    print(f"genlab-engine: warning: {text}", file=sys.stderr)


def note(text: str) -> None:
    print(f"genlab-engine: note: {text}", file=sys.stderr)


def progress_line(stage: str, done: int, total: int) -> None:
    """Progress of a long command on stderr, one line rewritten in place."""
    print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
