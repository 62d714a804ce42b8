"""How the panels' settings differ from a run's config, in words: "family stylegan vs ddpm", or
"2 settings differ: training.lr 0.001 vs 0.002, model.dropout 0.1 vs 0". Start on a stopped run
asks this before it offers to continue the run (which would train the run's settings, not the
panels')."""
from __future__ import annotations

from typing import Any

from engine.core.config import RunConfig

# what may differ without making it another run: its name, and the length (Continue's "+N steps"
# rewrites the run's training.steps)
IGNORED = frozenset({"name", "training.steps"})
SHOWN = 3   # differences named in full; the rest are counted


def flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"training": {"lr": 0.1}} -> {"training.lr": 0.1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def differences(panels: RunConfig, run: RunConfig) -> list[tuple[str, Any, Any]]:
    """(field, panels' value, run's value) for every field that differs, in field order."""
    a, b = flat(panels.to_dict()), flat(run.to_dict())
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k), b.get(k)) for k in keys if k not in IGNORED and a.get(k) != b.get(k)]


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    if v is None or v == "":
        return "(none)"
    return str(v)


def describe_differences(panels: RunConfig, run: RunConfig) -> str:
    """'' when the panels would train what the run trains; else what differs, panels' value first."""
    if panels.family != run.family:
        return f"family {panels.family} vs {run.family}"
    diffs = differences(panels, run)
    if not diffs:
        return ""
    named = ", ".join(f"{k} {_value(a)} vs {_value(b)}" for k, a, b in diffs[:SHOWN])
    more = f", and {len(diffs) - SHOWN} more" if len(diffs) > SHOWN else ""
    return f"{len(diffs)} setting{'s differ' if len(diffs) > 1 else ' differs'}: {named}{more}"
