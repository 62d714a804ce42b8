"""An index of run directories for the runs browser: one summary per run, its samples, and the
curves it logged. The file operations the browser offers (rename, trash, export) are in
engine/runs/fileops.py. Light: no torch, no Qt, so the GUI imports it, and reads only what is cheap.

Everything here reads the run directory (engine/runs/rundir.py), so a run started from a shell, another
session or a cluster that writes to a shared folder shows the same as one started from the GUI:

  config.toml  status.json  metrics.jsonl  samples/step_000500.png  checkpoints/step_000500.{safetensors,json}

A trained detector saved as a folder of its own (detector.safetensors + detector.json, what the
Detection canvas writes: engine/core/detector_file.py) is listed beside the runs, of kind "detector";
so is a loose one (DET.safetensors + DET.json saved straight into the folder), its path the weights file.

`RunsIndex` remembers what it read per run (an offset into metrics.jsonl, the stat of the files
and folders that change) so that scanning a folder every few seconds costs a few stat calls per
run, plus reading the lines appended since the last scan.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from engine.core import metrics
from engine.core.artifacts import SAMPLES, ArtifactSpec
from engine.core.detector_file import FOLDER_FILE, KIND, is_detector_folder, read_detector_meta
from engine.core.families import FAMILIES
from engine.core.logkeys import QUALITY, normalize_row, short, wants
from engine.core.parents import checkpoint_run_dir, parent_of
from engine.runs.posthoc_files import reconstructed
from engine.runs.rundir import ACTIVE_STATES, RunDir, effective_status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TAIL = 64  # loss values kept per run for the sparkline
_IMAGE_RE = re.compile(r"step_(\d+)\.png$")

# ---- which way is better, for every quality/ metric (engine/core/metrics.py says it) -----------
def is_quality_score(key: str) -> bool:
    """A quality/ value that has a better direction (not a _std spread, not an unknown name)."""
    return key.startswith(QUALITY) and metrics.direction(short(key)) != metrics.NONE


def higher_is_better(key: str) -> bool:
    """Whether a larger value of this quality/ metric is better (precision, recall, IS); FID, FD,
    KID and bits/dim are distances or costs (lower is better)."""
    return metrics.direction(short(key)) == metrics.HIGHER


def better(key: str, a: float, b: float) -> bool:
    """Whether value a of metric key is better than b."""
    return a > b if higher_is_better(key) else a < b


def _quality_markers() -> tuple[bytes, ...]:
    """Lines of metrics.jsonl worth parsing outside the tail: those with a quality value (old runs
    wrote bare names)."""
    return (QUALITY.encode(), *(f'"{n}"'.encode() for n in metrics.logged_names()))


@dataclass
class RunSummary:
    path: Path
    name: str                     # the folder's name (the run's id)
    state: str                    # as readers show it: "interrupted" when its process is gone; "no status"
    message: str = ""
    recorded_state: str = ""      # what status.json says when that differs from state
    family: str = "?"
    dataset: str = "?"
    config_name: str = ""         # the name in config.toml
    step: int = 0
    total_steps: int | None = None
    host: str = ""
    pid: int | None = None
    updated: float | None = None  # when status.json was last written (seconds since the epoch)
    best: dict[str, tuple[float, int]] = field(default_factory=dict)  # quality key -> (best value, its step)
    loss_key: str | None = None   # the loss of the sparkline (the family's first headline loss)
    loss_tail: list[float] = field(default_factory=list)
    checkpoints: list[tuple[int, Path]] = field(default_factory=list)  # complete ones, oldest first
    samples: list[tuple[int, Path]] = field(default_factory=list)      # sample grids, oldest first
    # checkpoints reconstructed by post-hoc EMA (engine/runs/posthoc_files.py): (step, sigma_rel, path)
    reconstructed: list[tuple[int, float, Path]] = field(default_factory=list)
    parent: str = ""              # a two-stage run's parent checkpoint (model.parent), "" for none
    parent_run: Path | None = None  # the run folder that parent belongs to, when it is one
    kind: str = "run"             # "run", or "detector": a trained detector's folder (family "detector")

    @property
    def live(self) -> bool:
        """A process is (or may be, on another host) training it: it must not be moved."""
        return self.state in ACTIVE_STATES

    def headline_metric(self) -> tuple[str, float, int] | None:
        """The one best quality value to show in a list: (key, value, step), by the metrics'
        headline ranks (FID or FD-domain first, then KID, bits/dim, precision, ...)."""
        ranked = [(rank, k) for k in self.best if (rank := metrics.headline_rank(short(k))) is not None]
        if not ranked:
            return None
        k = min(ranked)[1]
        return k, *self.best[k]


class _Entry:
    """What was read of one run: the stat signature and the metrics.jsonl reader's state."""

    def __init__(self, loss_key: str | None):
        self.sig: tuple | None = None
        self.config_sig: tuple | None = None
        self.config: tuple[str, str, str, str] = ("?", "?", "", "")
        self.offset = 0
        self.partial = b""
        self.loss_key = loss_key
        self.tail: deque[float] = deque(maxlen=TAIL)
        self.best: dict[str, tuple[float, int]] = {}
        self.summary: RunSummary | None = None


def _stat_sig(p: Path) -> tuple | None:
    try:
        s = p.stat()
    except OSError:
        return None
    return s.st_mtime_ns, s.st_size


def _read_config(path: Path) -> tuple[str, str, str, str]:
    """(family, dataset, name, parent) from config.toml, read as plain TOML (no validation: a
    config of a newer or older GenLab still lists)."""
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "?", "?", "", ""
    model, data = d.get("model", {}), d.get("data", {})
    family = str(model.get("family", "?")) if isinstance(model, dict) else "?"
    dataset = str(data.get("dataset", "?")) if isinstance(data, dict) else "?"
    if dataset == "folder" and isinstance(data, dict) and data.get("path"):
        dataset = f"folder: {Path(str(data['path'])).name}"
    return family, dataset, str(d.get("name", "")), parent_of(model) if isinstance(model, dict) else ""


def _loss_key_for(family: str) -> str | None:
    spec = FAMILIES.get(family) if family in FAMILIES else None
    return spec.headline[0] if spec and spec.headline else None


def _is_run_dir(p: Path) -> bool:
    return (p / "config.toml").is_file() or (p / "status.json").is_file() or is_detector_folder(p)


def detector_meta_path(path: Path) -> Path:
    """A listed detector's description: FOLDER/detector.json, or DET.json beside a loose DET.safetensors."""
    return path.with_suffix(".json") if path.suffix == ".safetensors" else path / FOLDER_FILE


def detector_summary(folder: Path) -> RunSummary:
    """A detector (its folder, or a loose DET.safetensors) as the runs browser lists it: its architecture,
    real data, training steps, what it was trained against and its mean test AUC (a description it
    cannot read: state "unreadable")."""
    meta_path = detector_meta_path(folder)
    sig = _stat_sig(meta_path)
    base = RunSummary(path=folder, name=folder.name, state="finished", family="detector", kind="detector",
                      updated=sig[0] / 1e9 if sig else None)
    try:
        meta = read_detector_meta(meta_path)
    except ValueError as e:
        base.state, base.message = "unreadable", str(e)
        return base
    training, data = meta.get("training") or {}, meta.get("data") or {}
    test = (meta.get("report") or {}).get("test") or {}
    steps = training.get("steps") if isinstance(training.get("steps"), int) else 0
    trained_on = sorted(training.get("trained_on") or {})
    aucs = [m.get("auc") for m in test.values() if isinstance(m, dict) and isinstance(m.get("auc"), (int, float))]
    held = [m.get("auc") for m in test.values() if isinstance(m, dict) and m.get("seen_in_training") is False
            and isinstance(m.get("auc"), (int, float))]
    message = f"trained against {', '.join(trained_on) or '?'}"
    if aucs:
        message += f"; mean test AUC {sum(aucs) / len(aucs):.3f}"
    if held:
        message += f" (held out: {sum(held) / len(held):.3f})"
    base.config_name, base.dataset = str(meta.get("arch", "?")), str(data.get("real", "?"))
    base.family = f"detector ({base.config_name})"
    base.step = base.total_steps = steps
    base.message = message
    return base


def _mentions_detector_kind(meta_path: Path) -> bool:
    """Whether a JSON file names the detector kind: the cheap test that keeps a checkpoint's or a
    config's JSON out of the list (read in full only when it does)."""
    try:
        with open(meta_path, "rb") as f:
            return KIND.encode() in f.read(1 << 16)
    except OSError:
        return False


def list_artifact_images(run_dir: str | Path, spec: ArtifactSpec) -> list[tuple[int, Path]]:
    """A training artifact's images (<spec.folder>/step_000500.png), oldest first. Only that
    folder's own files: another artifact's subfolder (samples/recon/) is not listed with it."""
    out = []
    try:
        entries = list(os.scandir(Path(run_dir) / spec.folder))
    except OSError:
        return out
    for e in entries:
        m = _IMAGE_RE.match(e.name)
        if m and not e.name.startswith("."):
            out.append((int(m.group(1)), Path(e.path)))
    return sorted(out)


def list_samples(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The sample grids (samples/step_000500.png), oldest first."""
    return list_artifact_images(run_dir, SAMPLES)


class RunsIndex:
    """Summaries of the runs under folders, kept current by rescanning (cheap when nothing changed)."""

    def __init__(self, tail: int = TAIL):
        self.tail = tail
        self._entries: dict[Path, _Entry] = {}
        self._detectors: dict[Path, tuple] = {}     # detector folder -> (its description's stat, summary)
        self._loose: dict[Path, tuple] = {}         # DET.safetensors in a scanned folder -> (DET.json's stat, summary | None)

    def scan(self, folder: str | Path) -> list[RunSummary]:
        """The runs directly inside folder (subfolders with a config.toml or a status.json), newest
        first (run folders are named by their start time). [] for a folder that is not there."""
        folder = Path(folder)
        try:
            entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
            dirs = [Path(e.path) for e in entries if e.is_dir()]
            weights = [Path(e.path) for e in entries if e.name.endswith(".safetensors") and e.is_file()]
        except OSError:
            return []
        runs = [self.summary(d) for d in sorted(dirs, key=lambda p: p.name, reverse=True) if _is_run_dir(d)]
        runs += [s for s in map(self._loose_detector, sorted(weights, key=lambda p: p.name, reverse=True)) if s]
        for gone in [p for p in self._loose if p.parent == folder and p not in set(weights)]:
            del self._loose[gone]
        present = set(dirs)
        for gone in [p for p in self._entries if p.parent == folder and p not in present]:
            del self._entries[gone]  # renamed or deleted
        for gone in [p for p in self._detectors if p.parent == folder and p not in present]:
            del self._detectors[gone]
        return runs

    def summary(self, run_dir: str | Path) -> RunSummary:
        """One run's summary; re-read only what changed since the last call."""
        run_dir = Path(run_dir)
        rd = RunDir(run_dir)
        if not rd.config_path.is_file() and not rd.status_path.is_file() and is_detector_folder(run_dir):
            return self._detector(run_dir)
        config_sig = _stat_sig(rd.config_path)
        entry = self._entries.get(run_dir)
        if entry is None or entry.config_sig != config_sig:
            config = _read_config(rd.config_path)
            entry = self._entries[run_dir] = _Entry(_loss_key_for(config[0]))
            entry.config_sig, entry.config = config_sig, config
            entry.tail = deque(maxlen=self.tail)
        sig = (_stat_sig(rd.status_path), _stat_sig(rd.metrics_path), _stat_sig(rd.samples_dir),
               _stat_sig(rd.checkpoints_dir))
        s = entry.summary
        if s is not None and sig == entry.sig and not s.live:
            return s  # nothing changed, and no process whose death would change the state
        if s is None or sig[0] != entry.sig[0] or s.live:
            st = effective_status(rd)
        else:
            st = None
        if sig[1] != (entry.sig[1] if entry.sig else None):
            self._read_metrics(rd.metrics_path, entry)
        if s is None or sig[2:] != entry.sig[2:]:
            checkpoints, samples = rd.checkpoints(), list_samples(run_dir)
            rebuilt = reconstructed(run_dir)
        else:
            checkpoints, samples, rebuilt = s.checkpoints, s.samples, s.reconstructed
        entry.sig = sig
        if st is None:  # status.json unchanged and not live: keep what was read
            s = RunSummary(**{**s.__dict__, "checkpoints": checkpoints, "samples": samples, "reconstructed": rebuilt,
                              "best": dict(entry.best), "loss_key": entry.loss_key, "loss_tail": list(entry.tail)})
        else:
            family, dataset, name, parent = entry.config
            state = st.get("state") or "no status"
            total = st.get("total_steps")
            step = st.get("step", 0)
            s = RunSummary(path=run_dir, name=run_dir.name, state=state, message=str(st.get("message") or ""),
                           recorded_state=str(st.get("recorded_state", "")), family=family, dataset=dataset,
                           config_name=name, step=step if isinstance(step, int) else 0,
                           total_steps=total if isinstance(total, int) else None, host=str(st.get("host", "")),
                           pid=st.get("pid") if isinstance(st.get("pid"), int) else None,
                           updated=st.get("updated") if isinstance(st.get("updated"), (int, float)) else None,
                           best=dict(entry.best), loss_key=entry.loss_key, loss_tail=list(entry.tail),
                           checkpoints=checkpoints, samples=samples, reconstructed=rebuilt, parent=parent,
                           parent_run=checkpoint_run_dir(parent) if parent else None)
            if state == "no status" and checkpoints:  # a run copied without its status: its newest checkpoint
                s.step = checkpoints[-1][0]
        entry.summary = s
        return s

    def _detector(self, folder: Path) -> RunSummary:
        """A detector folder's summary, read again only when its description changed."""
        sig = _stat_sig(folder / FOLDER_FILE)
        seen = self._detectors.get(folder)
        if seen is None or seen[0] != sig:
            seen = self._detectors[folder] = (sig, detector_summary(folder))
        return seen[1]

    def _loose_detector(self, weights: Path) -> RunSummary | None:
        """A DET.safetensors lying in a scanned folder: listed when DET.json beside it describes a
        detector (a checkpoint's weights are not), read again only when DET.json changed."""
        meta_path = weights.with_suffix(".json")
        sig = _stat_sig(meta_path)
        seen = self._loose.get(weights)
        if seen is None or seen[0] != sig:
            summary = detector_summary(weights) if sig and _mentions_detector_kind(meta_path) else None
            seen = self._loose[weights] = (sig, summary)
        return seen[1]

    def _read_metrics(self, path: Path, e: _Entry) -> None:
        """Read the lines appended since the last call (all of them after a truncation: a resume
        drops the lines logged after its checkpoint). Outside the last `tail` lines only lines with
        a quality value are parsed, so a long run's first read stays quick."""
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size < e.offset:
            e.offset, e.partial, e.best = 0, b"", {}
            e.tail.clear()
        if size == e.offset:
            return
        try:
            with open(path, "rb") as f:
                f.seek(e.offset)
                chunk = f.read(size - e.offset)
        except OSError:
            return
        e.offset += len(chunk)
        *lines, e.partial = (e.partial + chunk).split(b"\n")
        first_tail = len(lines) - self.tail
        markers = _quality_markers()
        for i, line in enumerate(lines):
            if i < first_tail and not any(m in line for m in markers):
                continue
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            if not isinstance(row, dict):
                continue
            row = normalize_row(row)
            step = row.get("step")
            if not isinstance(step, (int, float)):
                continue
            for k, v in row.items():
                if isinstance(v, (int, float)) and is_quality_score(k) and v == v:
                    if k not in e.best or better(k, v, e.best[k][0]):
                        e.best[k] = (float(v), int(step))
            if i >= first_tail:
                if e.loss_key is None:  # a family this GenLab does not know: its first loss
                    e.loss_key = next((k for k in row if k.startswith("loss/")), None)
                v = row.get(e.loss_key) if e.loss_key else None
                if isinstance(v, (int, float)):
                    e.tail.append(float(v))


def scan_runs(folder: str | Path) -> list[RunSummary]:
    """The runs directly inside folder, newest first (see RunsIndex.scan; keep a RunsIndex to
    rescan cheaply)."""
    return RunsIndex().scan(folder)


# ---- curves ----------------------------------------------------------------------------------
def read_curves(run_dir: str | Path, keys=("loss/",)) -> dict:
    """The logged values of a run whose names are in keys (exact names, or namespaces ending in
    '/'): {name: (steps, times, values)} as float numpy arrays. times are seconds of training:
    elapsed_s of each line, continued across resumes (a resumed process counts from 0 again), so
    runs compare by the time they trained rather than by when they happened to run."""
    import numpy as np
    out: dict[str, tuple[list, list, list]] = {}
    offset, last_elapsed, first_time = 0.0, None, None
    try:
        text = (Path(run_dir) / "metrics.jsonl").read_bytes()
    except OSError:
        return {}
    for line in text.split(b"\n"):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
            continue
        row = normalize_row(row)
        el = row.get("elapsed_s")
        if isinstance(el, (int, float)):
            if last_elapsed is not None and el < last_elapsed:
                offset += last_elapsed  # a resumed process: its clock started again
            last_elapsed = el
            t = offset + el
        elif isinstance(row.get("time"), (int, float)):  # old runs: wall clock since the first line
            first_time = row["time"] if first_time is None else first_time
            t = row["time"] - first_time
        else:
            t = float("nan")
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and wants(keys, k):
                xs = out.setdefault(k, ([], [], []))
                xs[0].append(float(row["step"]))
                xs[1].append(float(t))
                xs[2].append(float(v))
    return {k: tuple(np.asarray(a, dtype=float) for a in v) for k, v in out.items()}
