"""The family-comparison table (engine/ops/compare.py measures it): its columns, which way each is
better, the CSV it is exported as, the checkpoints on the speed-quality front, and the overall
progress of a comparison. Light: no torch, so the GUI imports it.

A row is a dict with these keys (None where a value does not apply: bits/dim of a family without
a likelihood, IS without a classifier's logits, training time of a checkpoint whose run folder
and JSON say nothing of it)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from engine.core import metrics as registry

_HEAD = ("family", "run", "step",
         "dataset", "resolution", "channels",
         "fd_kind")         # "FID" (Inception features) or "FD-domain" (GenLab's domain features)
_TAIL = ("images_per_s",    # samples drawn per second, after a warm-up batch, batches of sample_batch
         "nfe",             # network evaluations per image (Family.network_evaluations)
         "sample_steps",    # the iterative sampler's steps (None: a one-pass or autoregressive family)
         "sample_seconds", "sample_batch", "n",
         "params",          # parameters of all the family's networks (a GAN's discriminator included)
         "train_seconds", "train_steps", "batch_size", "images_seen", "train_time_source",
         "device", "checkpoint")
_SPEED = "images_per_s"     # higher is better; the other measured columns say their way in the registry


def metric_columns() -> tuple[str, ...]:
    """The metric registry's values in the table (engine/core/metrics.py: fd, kid, kid_std,
    precision, recall, is, bits_per_dim) and the images bits/dim was measured on."""
    out: list[str] = []
    for m in registry.measures():
        shown = [v.column_name for v in m.values if v.table]
        out += shown + (list(m.extras) if shown else [])   # a measure kept out of the table (codebook): nor its extras
    return tuple(out)


def columns() -> tuple[str, ...]:
    """The columns of a row, in order."""
    return _HEAD + metric_columns() + _TAIL


def metric_cells(scores: dict, domain: bool) -> dict:
    """Evaluator scores (fid or fd_domain, kid_domain, ...) under their columns (fd, kid, ...)."""
    return {v.column_name: scores.get(v.name(domain and m.features)) for m, v in registry.values() if v.table}


def direction(key: str) -> str:
    """registry.HIGHER or LOWER for a column with a better way, else registry.NONE."""
    if key == _SPEED:
        return registry.HIGHER
    return next((v.direction for _, v in registry.values() if v.table and v.column_name == key), registry.NONE)


# overall progress: the share of one checkpoint's time each stage stands for (roughly; sampling
# dominates), in the order they run
_STAGES = (("warm-up", 0.05), ("sampling", 0.75), ("real features", 0.0), ("generated features", 0.1),
           ("bits/dim", 0.1))


def overall_fraction(item: int, items: int, stage: str, done: int, total: int) -> float:
    """0..1 through a comparison of `items` checkpoints, at stage `stage` (done of total) of the
    checkpoint `item` (0-based): for a progress bar and its ETA. Stages before the first
    checkpoint's own (training the domain features) count as 0."""
    start, share = 0.0, 0.0
    for name, w in _STAGES:
        if name == stage:
            share = w
            break
        start += w
    else:
        return max(0.0, min(1.0, item / max(1, items)))
    within = start + share * (done / total if total else 1.0)
    return max(0.0, min(1.0, (item + within) / max(1, items)))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def best_index(rows: list[dict], key: str) -> int | None:
    """The row with the best value of key (its direction()), None when fewer than two rows have one
    or the key has no better direction."""
    way = direction(key)
    if way == registry.NONE:
        return None
    have = [(r[key], i) for i, r in enumerate(rows) if _finite(r.get(key))]
    if len(have) < 2:
        return None
    return (max(have) if way == registry.HIGHER else min(have))[1]


def pareto_front(rows: list[dict], x: str = "images_per_s", y: str = "fd") -> list[bool]:
    """Whether each row is on the speed-quality front: no other row is at least as fast (x, higher
    is better) and at least as close to the data (y, lower is better), and better in one."""
    out = []
    for r in rows:
        if not (_finite(r.get(x)) and _finite(r.get(y))):
            out.append(False)
            continue
        beaten = any(_finite(o.get(x)) and _finite(o.get(y)) and o[x] >= r[x] and o[y] <= r[y]
                     and (o[x] > r[x] or o[y] < r[y]) for o in rows if o is not r)
        out.append(not beaten)
    return out


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV: a header of columns(), then one line per checkpoint (empty cells for None)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = columns()
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    return buf.getvalue()


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write csv_text(rows) to path (atomically); returns the path."""
    from engine.core.util import atomic_write_bytes
    path = Path(path)
    atomic_write_bytes(path, csv_text(rows).encode("utf-8"))
    return path


# ---- a comparison saved earlier --------------------------------------------------------------------
_TEXT = {"family", "run", "dataset", "fd_kind", "bpd_split", "train_time_source", "device", "checkpoint"}


class ComparisonFileError(ValueError):
    """A comparison file that cannot be shown; one line naming the file and the problem."""


def _cell(key: str, text: str):
    """A CSV cell back as the row's value: None when empty, text columns as they are, numbers as
    int or float."""
    if text == "":
        return None
    if key in _TEXT:
        return text
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_comparison(path: str | Path) -> dict:
    """A comparison written earlier, as the compare command's result event: {"rows": [...], "n": ...}
    plus whatever the file carried (a queued comparison's "group" and "runs"). Reads the JSON of
    `genlab-engine compare`'s result (what a queued comparison writes to comparisons/<id>.json)
    and the CSV of Export CSV… / --csv."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ComparisonFileError(f"{path}: cannot read the comparison ({e})") from None
    if path.suffix.lower() == ".csv":
        table = list(csv.reader(io.StringIO(text)))
        if not table or "family" not in table[0] or "run" not in table[0]:
            raise ComparisonFileError(f"{path}: not a family comparison table (its header has no family and run "
                                      f"columns)")
        head = table[0]
        rows = [{k: _cell(k, v) for k, v in zip(head, line)} for line in table[1:] if line]
        ns = {r.get("n") for r in rows if isinstance(r.get("n"), int)}
        return {"rows": rows, "n": ns.pop() if len(ns) == 1 else None}
    import json
    try:
        ev = json.loads(text)
    except ValueError as e:
        raise ComparisonFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(ev, dict) or not isinstance(ev.get("rows"), list) or not all(
            isinstance(r, dict) for r in ev["rows"]):
        raise ComparisonFileError(f"{path}: not a family comparison (no list of rows under \"rows\")")
    return ev
