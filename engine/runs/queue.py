"""The training queue of a runs folder (light: no torch, the GUI imports it).

<runs_root>/queue.json holds the entries to train one after another and the comparison groups
("train these families on this data for the same time, then compare them"). The GUI and a headless
`genlab-engine queue` edit it at the same time, so every mutation re-reads the file, changes it and
writes it atomically under a short lock (<runs_root>/queue.lock, created exclusively; one left by a
killed process is broken after LOCK_STALE_S). The runner (engine/runs/queue_runner.py) holds
<runs_root>/queue.runner with its pid while it runs. A corrupt queue.json is a QueueError naming the
file; it is never silently replaced by an empty queue.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.core.util import atomic_write_json, pid_alive, process_start_time

QUEUE_FILE = "queue.json"
LOCK_FILE = "queue.lock"
RUNNER_FILE = "queue.runner"
COMPARISONS_DIR = "comparisons"
STATES = ("queued", "running", "done", "stopped", "failed", "interrupted")
ENDED_STATES = ("done", "stopped", "failed", "interrupted")
CLEARED_STATES = ("done", "stopped", "failed")   # what clear_ended drops
PENDING_STATES = ("queued", "interrupted")        # what a runner trains next, in queue order
GROUP_STATES = ("waiting", "comparing", "done", "failed")
FORMAT_VERSION = 1

LOCK_STALE_S = 5.0   # a mutation takes milliseconds: a lock this old was left by a killed process
LOCK_WAIT_S = 15.0   # give up waiting for the lock after this long (one line naming the lock file)


class QueueError(ValueError):
    """The queue cannot be read or changed: one line naming the file and the problem."""


@dataclass
class QueueEntry:
    id: str
    name: str
    family: str
    config: dict | None
    continue_run: str | None = None
    more_steps: int = 0
    time_budget_s: float = 0.0
    group: str | None = None
    state: str = "queued"
    run_dir: str | None = None
    message: str = ""
    added: float = 0.0
    started: float | None = None
    ended: float | None = None


@dataclass
class CompareGroup:
    id: str
    n: int
    entries: list[str] = field(default_factory=list)
    state: str = "waiting"
    result: str | None = None
    message: str = ""


def _from_dict(cls, d, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where} is not a table")
    if not isinstance(d.get("id"), str):
        raise ValueError(f"{where} has no id")
    names = {f.name for f in fields(cls)}   # a field a newer GenLab added is skipped, not refused
    return cls(**{k: v for k, v in d.items() if k in names})


class TrainingQueue:
    """The queue of one runs folder. Every read comes fresh from disk; every change is a locked
    read-modify-write, so several TrainingQueue objects (in several processes) share one file."""

    def __init__(self, runs_root: str | Path):
        self.root = Path(runs_root)
        self.path = self.root / QUEUE_FILE
        self.lock_path = self.root / LOCK_FILE
        self.runner_path = self.root / RUNNER_FILE

    # ---- reading ---------------------------------------------------------------------------
    def entries(self) -> list[QueueEntry]:
        """The entries in queue order. A "running" entry whose runner is gone reads as
        "interrupted" (the file keeps "running" until a runner or an edit settles it)."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[list[QueueEntry], list[CompareGroup], bool]:
        """Entries (as entries() gives them), groups and the paused flag from one read of the file:
        what a view polling the queue shows together."""
        entries, groups, paused = self._read()
        if any(e.state == "running" for e in entries) and self.runner_pid() is None:
            for e in entries:
                if e.state == "running":
                    e.state, e.message = "interrupted", e.message or "the queue runner is gone"
        return entries, groups, paused

    def entry(self, entry_id: str) -> QueueEntry:
        for e in self.entries():
            if e.id == entry_id:
                return e
        raise QueueError(f"{self.path}: no entry {entry_id!r}")

    def groups(self) -> list[CompareGroup]:
        return self._read()[1]

    @property
    def paused(self) -> bool:
        return self._read()[2]

    # ---- editing ---------------------------------------------------------------------------
    def add(self, config: dict, *, time_budget_s: float = 0, group: str | None = None) -> QueueEntry:
        """Queue a new run of `config` (a RunConfig as a dict; checked here). A budget > 0 stops it
        after that many seconds of training; 0 keeps the config's own training.time_budget_s."""
        cfg = self._checked_config(config)
        budget = _budget(time_budget_s) or float(cfg["training"].get("time_budget_s", 0) or 0)
        with self._editing() as (entries, groups, _):
            if group is not None and not any(g.id == group for g in groups):
                raise QueueError(f"{self.path}: no comparison group {group!r}")
            e = self._new_entry(entries, groups, cfg, budget, group)
            entries.append(e)
            if group is not None:
                next(g for g in groups if g.id == group).entries.append(e.id)
        return e

    def add_continue(self, run_dir: str | Path, more_steps: int = 0) -> QueueEntry:
        """Queue continuing a run from its last checkpoint: to its planned total (more_steps 0) or
        for more_steps more."""
        run_dir = Path(run_dir)
        cfg_path = run_dir / "config.toml"
        if not cfg_path.is_file():
            raise QueueError(f"{run_dir}: not a run directory (no config.toml)")
        if not isinstance(more_steps, int) or isinstance(more_steps, bool) or more_steps < 0:
            raise QueueError(f"more_steps = {more_steps!r} must be a whole number >= 0")
        from engine.core.config import ConfigError, RunConfig
        try:
            family = RunConfig.load(cfg_path, stored=True).family
        except (ConfigError, OSError) as e:
            raise QueueError(str(e)) from None
        with self._editing() as (entries, groups, _):
            e = QueueEntry(id=_new_id(entries, groups), name=f"continue {run_dir.name}", family=family,
                           config=None, continue_run=str(run_dir), more_steps=more_steps, added=time.time())
            entries.append(e)
        return e

    def add_comparison(self, configs: list[dict], *, time_budget_s: float, n: int) -> CompareGroup:
        """One entry per config and one group over them: when the last has ended, the runner
        compares their final checkpoints with n samples each."""
        if len(configs) < 2:
            raise QueueError(f"a comparison needs at least 2 configs, got {len(configs)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise QueueError(f"n = {n!r} must be a whole number >= 1 (samples per checkpoint)")
        budget = _budget(time_budget_s)
        checked = [self._checked_config(c) for c in configs]
        data_keys = ("dataset", "path", "resolution", "color")
        first = checked[0]["data"]
        for c in checked[1:]:
            bad = [k for k in data_keys if c["data"].get(k) != first.get(k)]
            if bad:
                raise QueueError(f"a comparison trains every config on the same data: {c['name']!r} has "
                                 f"data.{bad[0]} = {c['data'].get(bad[0])!r}, {checked[0]['name']!r} has "
                                 f"{first.get(bad[0])!r}")
        with self._editing() as (entries, groups, _):
            g = CompareGroup(id=_new_id(entries, groups), n=n)
            groups.append(g)
            for cfg in checked:
                e = self._new_entry(entries, groups, cfg, budget or float(cfg["training"].get("time_budget_s", 0) or 0),
                                    g.id)
                entries.append(e)
                g.entries.append(e.id)
        return g

    def remove(self, entry_id: str) -> None:
        """Drop an entry (refused while it runs). Its comparison group forgets it; a group left
        with no entries goes too."""
        with self._editing() as (entries, groups, _):
            e = self._find(entries, entry_id)
            if e.state == "running" and self._runner_alive():
                raise QueueError(f"{self.path}: entry {entry_id} ({e.name}) is running; stop its run first")
            entries.remove(e)
            for g in list(groups):
                if entry_id in g.entries:
                    g.entries.remove(entry_id)
                    if not g.entries:
                        groups.remove(g)

    def move(self, entry_id: str, delta: int) -> None:
        """Move an entry delta places (-1 up, +1 down), clamped to the ends of the queue."""
        with self._editing() as (entries, groups, _):
            e = self._find(entries, entry_id)
            i = entries.index(e)
            j = max(0, min(len(entries) - 1, i + int(delta)))
            entries.insert(j, entries.pop(i))

    def set_paused(self, paused: bool) -> None:
        """A paused queue starts no new entry; the one running goes on to its end."""
        with self._editing() as state:
            state[2] = bool(paused)

    def clear_ended(self) -> None:
        """Drop done, stopped and failed entries, except those a comparison still waits for, and
        the groups whose entries are all gone."""
        with self._editing() as (entries, groups, _):
            pending = {eid for g in groups if g.state in ("waiting", "comparing") for eid in g.entries}
            entries[:] = [e for e in entries if e.state not in CLEARED_STATES or e.id in pending]
            kept = {e.id for e in entries}
            groups[:] = [g for g in groups if g.state in ("waiting", "comparing") or kept & set(g.entries)]

    # ---- for the runner --------------------------------------------------------------------
    def update_entry(self, entry_id: str, **changes) -> QueueEntry:
        with self._editing() as (entries, groups, _):
            e = self._find(entries, entry_id)
            for k, v in changes.items():
                setattr(e, k, v)
        return e

    def update_group(self, group_id: str, **changes) -> CompareGroup:
        with self._editing() as (entries, groups, _):
            g = next((g for g in groups if g.id == group_id), None)
            if g is None:
                raise QueueError(f"{self.path}: no comparison group {group_id!r}")
            for k, v in changes.items():
                setattr(g, k, v)
        return g

    def start_next(self) -> QueueEntry | None:
        """The first entry to train, marked running (None when nothing is queued or the queue is
        paused), in one locked step so two readers never start the same entry. An interrupted
        entry counts as queued: the queue survives its runner (the window closed, a SIGTERM), and
        the next runner resumes that run where its checkpoint left it."""
        with self._editing() as (entries, groups, paused):
            if paused:
                return None
            e = next((e for e in entries if e.state in PENDING_STATES), None)
            if e is not None:
                e.state, e.started, e.ended, e.message = "running", time.time(), None, ""
        return e

    def settle_orphans(self) -> list[QueueEntry]:
        """Mark "running" entries as interrupted (call only while holding the runner lock: no
        runner can be behind them)."""
        settled = []
        with self._editing() as (entries, groups, _):
            for e in entries:
                if e.state == "running":
                    e.state, e.ended = "interrupted", time.time()
                    e.message = e.message or "the queue runner was gone"
                    settled.append(e)
        return settled

    # ---- the runner's lock -------------------------------------------------------------------
    def runner_pid(self) -> int | None:
        """The pid of a live `queue run` on this runs folder, else None (a lock file left by a dead
        runner, or by one on another host, is ignored)."""
        info = self._runner_info()
        if info is None or info.get("host") != socket.gethostname():
            return None
        pid = info.get("pid")
        if not pid_alive(pid):
            return None
        started, since = process_start_time(pid), info.get("since")
        if started is not None and isinstance(since, (int, float)) and started > since + 2:
            return None   # the pid now belongs to a younger process
        return pid

    def acquire_runner(self) -> None:
        """Become this folder's runner, or raise QueueError naming the live one."""
        self.root.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        for _ in range(3):
            try:
                fd = os.open(self.runner_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                pid = self.runner_pid()
                if pid is not None and pid != os.getpid():
                    raise QueueError(f"{self.root}: a queue runner is already running (pid {pid})") from None
                try:
                    os.unlink(self.runner_path)   # left by a runner that is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(record)
            return
        raise QueueError(f"{self.runner_path}: could not take the runner lock")

    def release_runner(self) -> None:
        info = self._runner_info()
        if info is not None and info.get("pid") == os.getpid():
            try:
                os.unlink(self.runner_path)
            except FileNotFoundError:
                pass

    def _runner_info(self) -> dict | None:
        try:
            info = json.loads(self.runner_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _runner_alive(self) -> bool:
        return self.runner_pid() is not None

    # ---- the file ----------------------------------------------------------------------------
    def _read(self) -> tuple[list[QueueEntry], list[CompareGroup], bool]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], [], False
        except UnicodeDecodeError:
            raise QueueError(f"{self.path}: not UTF-8 text; fix or remove the file") from None
        except OSError as e:
            raise QueueError(f"{self.path}: cannot be read ({e.strerror or e})") from None
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise QueueError(f"{self.path}: not valid JSON ({e}); fix or remove the file") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("entries", []), list) \
                or not isinstance(raw.get("groups", []), list):
            raise QueueError(f"{self.path}: not a GenLab queue (expected an object with lists 'entries' "
                             f"and 'groups'); fix or remove the file")
        try:
            entries = [_from_dict(QueueEntry, d, f"entry {i + 1}") for i, d in enumerate(raw.get("entries", []))]
            groups = [_from_dict(CompareGroup, d, f"group {i + 1}") for i, d in enumerate(raw.get("groups", []))]
        except (TypeError, ValueError) as e:
            raise QueueError(f"{self.path}: {e}; fix or remove the file") from None
        bad = next((e for e in entries if e.state not in STATES), None)
        if bad is not None:
            raise QueueError(f"{self.path}: entry {bad.id} has state {bad.state!r}; expected one of {', '.join(STATES)}")
        return entries, groups, bool(raw.get("paused", False))

    def _write(self, entries: list[QueueEntry], groups: list[CompareGroup], paused: bool) -> None:
        atomic_write_json(self.path, {"version": FORMAT_VERSION, "paused": paused,
                                      "entries": [asdict(e) for e in entries],
                                      "groups": [asdict(g) for g in groups]})

    @contextmanager
    def _editing(self):
        """Lock, read, yield [entries, groups, paused] to change in place, write, unlock."""
        with self._lock():
            state = list(self._read())
            yield state
            self._write(*state)

    @contextmanager
    def _lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                break
            except FileExistsError:
                try:
                    age = time.time() - self.lock_path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age > LOCK_STALE_S:
                    try:
                        os.unlink(self.lock_path)   # its holder was killed mid-edit
                    except FileNotFoundError:
                        pass
                    continue
                if time.monotonic() > deadline:
                    raise QueueError(f"{self.lock_path}: another process holds the queue lock; "
                                     f"remove the file if no GenLab is running") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass

    # ---- helpers -----------------------------------------------------------------------------
    def _find(self, entries: list[QueueEntry], entry_id: str) -> QueueEntry:
        for e in entries:
            if e.id == entry_id:
                return e
        raise QueueError(f"{self.path}: no entry {entry_id!r}")

    def _checked_config(self, config: dict) -> dict:
        """The config as RunConfig writes it (every field, checked); a bad one is a QueueError."""
        from engine.core.config import ConfigError, RunConfig
        try:
            return RunConfig.from_dict(config).to_dict()
        except ConfigError as e:
            name = config.get("name", "config") if isinstance(config, dict) else "config"
            raise QueueError(f"{name}: {e}") from None

    def _new_entry(self, entries, groups, cfg: dict, budget: float, group: str | None) -> QueueEntry:
        return QueueEntry(id=_new_id(entries, groups), name=cfg["name"], family=cfg["model"]["family"], config=cfg,
                          time_budget_s=budget, group=group, added=time.time())


def _budget(value) -> float:
    try:
        b = float(value)
    except (TypeError, ValueError):
        raise QueueError(f"time budget {value!r} must be a number of seconds (0 = none)") from None
    if not b >= 0 or b == float("inf"):
        raise QueueError(f"time budget {value!r} must be a finite number of seconds >= 0 (0 = none)")
    return b


def _new_id(entries, groups) -> str:
    taken = {e.id for e in entries} | {g.id for g in groups}
    while True:
        i = secrets.token_hex(3)
        if i not in taken:
            return i


def comparison_path(runs_root: str | Path, group_id: str) -> Path:
    return Path(runs_root) / COMPARISONS_DIR / f"{group_id}.json"
