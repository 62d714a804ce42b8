"""`genlab-engine presets`: the presets, one a line: name and description."""
from __future__ import annotations

HELP = "list the presets"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from engine.core.config import list_presets
    for name, desc in list_presets().items():
        print(f"{name:16s} {desc}")
    return 0
