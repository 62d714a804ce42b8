"""An index of run directories for the runs browser, and the file operations it offers (rename,
trash, export). Light: no torch, no Qt, so the GUI imports it, and reads only what is cheap.

Everything here reads the run directory (engine/runs/rundir.py), so a run started from a shell, another
session or a cluster that writes to a shared folder shows the same as one started from the GUI:

  config.toml  status.json  metrics.jsonl  samples/step_000500.png  checkpoints/step_000500.{safetensors,json}

`RunsIndex` remembers what it read per run (an offset into metrics.jsonl, the stat of the files
and folders that change) so that scanning a folder every few seconds costs a few stat calls per
run, plus reading the lines appended since the last scan.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from engine.core import metrics
from engine.core.families import FAMILIES
from engine.core.logkeys import QUALITY, normalize_row, short
from engine.runs.rundir import ACTIVE_STATES, RunDir, effective_status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TAIL = 64  # loss values kept per run for the sparkline
_SAMPLE_RE = re.compile(r"step_(\d+)\.png$")

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
        self.config: tuple[str, str, str] = ("?", "?", "")
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


def _read_config(path: Path) -> tuple[str, str, str]:
    """(family, dataset, name) from config.toml, read as plain TOML (no validation: a config of a
    newer or older GenLab still lists)."""
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "?", "?", ""
    model, data = d.get("model", {}), d.get("data", {})
    family = str(model.get("family", "?")) if isinstance(model, dict) else "?"
    dataset = str(data.get("dataset", "?")) if isinstance(data, dict) else "?"
    if dataset == "folder" and isinstance(data, dict) and data.get("path"):
        dataset = f"folder: {Path(str(data['path'])).name}"
    return family, dataset, str(d.get("name", ""))


def _loss_key_for(family: str) -> str | None:
    spec = FAMILIES.get(family) if family in FAMILIES else None
    return spec.headline[0] if spec and spec.headline else None


def _is_run_dir(p: Path) -> bool:
    return (p / "config.toml").is_file() or (p / "status.json").is_file()


def list_samples(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The sample grids (samples/step_000500.png), oldest first."""
    out = []
    try:
        entries = list(os.scandir(Path(run_dir) / "samples"))
    except OSError:
        return out
    for e in entries:
        m = _SAMPLE_RE.match(e.name)
        if m and not e.name.startswith("."):
            out.append((int(m.group(1)), Path(e.path)))
    return sorted(out)


class RunsIndex:
    """Summaries of the runs under folders, kept current by rescanning (cheap when nothing changed)."""

    def __init__(self, tail: int = TAIL):
        self.tail = tail
        self._entries: dict[Path, _Entry] = {}

    def scan(self, folder: str | Path) -> list[RunSummary]:
        """The runs directly inside folder (subfolders with a config.toml or a status.json), newest
        first (run folders are named by their start time). [] for a folder that is not there."""
        folder = Path(folder)
        try:
            dirs = [Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            return []
        runs = [self.summary(d) for d in sorted(dirs, key=lambda p: p.name, reverse=True) if _is_run_dir(d)]
        present = set(dirs)
        for gone in [p for p in self._entries if p.parent == folder and p not in present]:
            del self._entries[gone]  # renamed or deleted
        return runs

    def summary(self, run_dir: str | Path) -> RunSummary:
        """One run's summary; re-read only what changed since the last call."""
        run_dir = Path(run_dir)
        rd = RunDir(run_dir)
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
        else:
            checkpoints, samples = s.checkpoints, s.samples
        entry.sig = sig
        if st is None:  # status.json unchanged and not live: keep what was read
            s = RunSummary(**{**s.__dict__, "checkpoints": checkpoints, "samples": samples,
                              "best": dict(entry.best), "loss_key": entry.loss_key, "loss_tail": list(entry.tail)})
        else:
            family, dataset, name = entry.config
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
                           checkpoints=checkpoints, samples=samples)
            if state == "no status" and checkpoints:  # a run copied without its status: its newest checkpoint
                s.step = checkpoints[-1][0]
        entry.summary = s
        return s

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
def _wants(keys, name: str) -> bool:
    return any(name == k or (k.endswith("/") and name.startswith(k)) for k in keys)


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
            if isinstance(v, (int, float)) and not isinstance(v, bool) and _wants(keys, k):
                xs = out.setdefault(k, ([], [], []))
                xs[0].append(float(row["step"]))
                xs[1].append(float(t))
                xs[2].append(float(v))
    return {k: tuple(np.asarray(a, dtype=float) for a in v) for k, v in out.items()}


# ---- file operations -------------------------------------------------------------------------
class RunBusyError(OSError):
    """A live run cannot be moved, renamed or deleted."""


def _refuse_if_live(run_dir: Path, what: str) -> None:
    st = effective_status(run_dir)
    if st.get("state") not in ACTIVE_STATES:
        return
    host = st.get("host") or ""
    where = f"pid {st.get('pid')}" + (f" on {host}" if host else "")
    hint = "stop it first"
    if host and host != socket.gethostname():
        hint += (f" (its status.json says it is {st['state']} on another machine, {host}; if that process "
                 f"is gone, stop it there or resume and stop it from here)")
    raise RunBusyError(f"{run_dir.name} is {st['state']} ({where}): cannot {what} a live run; {hint}")


_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def rename_run(path: str | Path, new_name: str) -> Path:
    """Rename a run's folder (in the same parent folder); returns the new path. Refuses while the
    run is live (its process writes into the folder), a name with a path separator or characters
    other systems refuse, and a name that is taken. status.json's last_checkpoint follows."""
    path = Path(path).absolute()
    new_name = new_name.strip()
    if not new_name or new_name in (".", "..") or new_name.startswith(".") or _BAD_NAME.search(new_name):
        raise ValueError(f"{new_name!r} is not a usable folder name (no / \\ : * ? \" < > |, not starting with '.')")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder")
    target = path.with_name(new_name)
    if target == path:
        return path
    if target.exists():
        raise FileExistsError(f"{target}: a folder with that name exists already")
    _refuse_if_live(path, "rename")
    os.rename(path, target)
    rd = RunDir(target)
    st = rd.read_status()
    last = st.get("last_checkpoint")
    if isinstance(last, str) and Path(last).parent.parent == path:  # the absolute path of the old folder
        st["last_checkpoint"] = str(target / Path(last).relative_to(path))
        rd.write_status(**st)
    return target


def freedesktop_trash() -> Path:
    """The user's trash: $XDG_DATA_HOME/Trash, else ~/.local/share/Trash."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "Trash"


def _mount_top(path: Path) -> Path:
    path = path.resolve()
    dev = path.stat().st_dev
    while path.parent != path and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def default_trash_for(path: str | Path) -> Path:
    """Where trash() puts path without a trash_dir.

    Linux and other freedesktop systems: the user's trash (~/.local/share/Trash) when the run is on
    the same filesystem as it, else that filesystem's own trash ($topdir/.Trash-$uid, as the
    freedesktop spec says), so a run on a shared or cluster mount is never copied across; file
    managers list it and can restore it. Elsewhere (Windows, macOS): a `.trash` folder inside the
    runs folder that holds the run (the runs browser does not list it; empty it by hand)."""
    path = Path(path)
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        home_trash = freedesktop_trash()
        try:
            anchor = home_trash if home_trash.exists() else home_trash.parent
            while not anchor.exists():
                anchor = anchor.parent
            if anchor.stat().st_dev == path.stat().st_dev:
                return home_trash
            return _mount_top(path) / f".Trash-{os.getuid()}"
        except OSError:
            pass
    return path.parent / ".trash"


def trash(path: str | Path, trash_dir: str | Path | None = None) -> Path:
    """Move a run folder to a trash folder laid out as the freedesktop trash (files/NAME plus
    info/NAME.trashinfo with its original path and the time), so it can be restored; returns where
    it went. trash_dir: that trash folder; None: default_trash_for(path) (see there for which).
    Refuses while the run is live."""
    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    _refuse_if_live(path, "delete")
    root = Path(trash_dir) if trash_dir is not None else default_trash_for(path)
    files, info = root / "files", root / "info"
    files.mkdir(parents=True, exist_ok=True)
    info.mkdir(parents=True, exist_ok=True)
    if trash_dir is None and root.name.startswith(".Trash-"):
        os.chmod(root, 0o700)  # the spec: a per-user trash on a shared mount is the user's alone
    name, k = path.name, 1
    while True:  # reserve a name: the .trashinfo is created first, exclusively (the spec's way)
        info_path = info / f"{name}.trashinfo"
        try:
            fd = os.open(info_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            k += 1
            name = f"{path.name}.{k}"
            continue
        if (files / name).exists():
            os.close(fd)
            os.unlink(info_path)
            k += 1
            name = f"{path.name}.{k}"
            continue
        break
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"[Trash Info]\nPath={quote(str(path))}\nDeletionDate={datetime.now():%Y-%m-%dT%H:%M:%S}\n")
    target = files / name
    try:
        shutil.move(str(path), str(target))
    except BaseException:
        os.unlink(info_path)
        raise
    return target


def export_config(run_dir: str | Path, dest: str | Path) -> Path:
    """Write the run's config.toml to dest (a file, or a folder: <run name>.toml in it), with a
    comment saying where it came from and how to train it again without the GUI."""
    run_dir = Path(run_dir)
    text = (run_dir / "config.toml").read_text(encoding="utf-8")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"{run_dir.name}.toml"
    header = (f"# exported from the GenLab run {run_dir}\n"
              f"# train it again without the GUI:  python -m engine train --config {dest.name}\n\n")
    _atomic_write(dest, (header + text).encode("utf-8"))
    return dest


def export_checkpoint(checkpoint: str | Path, dest: str | Path) -> Path:
    """Copy a checkpoint (the .safetensors and its .json) to dest: a .safetensors file name, or a
    folder (then under its own name). Returns the .safetensors path written."""
    src = Path(checkpoint).with_suffix(".safetensors")
    meta = src.with_suffix(".json")
    for p in (src, meta):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing (is the checkpoint complete?)")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / src.name
    dest = dest.with_suffix(".safetensors")
    _atomic_copy(meta, dest.with_suffix(".json"))
    _atomic_copy(src, dest)
    return dest


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
