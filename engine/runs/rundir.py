"""The run directory, the source of truth shared by the engine, the GUI and the shell:

  config.toml  status.json  metrics.jsonl  samples/step_000500.png
  artifacts.json (the previews it writes: samples/, samples/recon/, ...)
  checkpoints/step_000500.safetensors + .json  control (commands in)
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from datetime import datetime
from pathlib import Path

from engine.core.artifacts import ARTIFACTS, ARTIFACTS_FILE, SAMPLES, ArtifactSpec
from engine.core.protocol import CONTROL_FILE
from engine.runs.posthoc_files import SNAPSHOT_DIR
from engine.core.util import atomic_write_json, atomic_write_text, is_temp_file, pid_alive, process_start_time

_STEP_RE = re.compile(r"step_(\d+)\.json$")
ACTIVE_STATES = ("starting", "running", "paused")  # a process should be behind these


def metric_rows(lines) -> list[dict]:
    """The rows of metrics.jsonl lines (str or bytes): each line that parses to a JSON object; a line
    cut short by a kill, or any other, is left out."""
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def new_run_dir(root: str | Path, name: str) -> Path:
    """runs/<yyyymmdd-hhmmss>-<name>, never reused."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    base = Path(root) / f"{datetime.now():%Y%m%d-%H%M%S}-{safe}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.toml"
        self.status_path = self.path / "status.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.samples_dir = self.path / "samples"
        self.checkpoints_dir = self.path / "checkpoints"
        self.control_path = self.path / CONTROL_FILE

    def create(self) -> "RunDir":
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        return self

    def write_status(self, **fields) -> None:
        fields.setdefault("updated", time.time())
        fields.setdefault("host", socket.gethostname())  # whose pid it is: see effective_status
        atomic_write_json(self.status_path, fields)

    def read_status(self) -> dict:
        try:
            st = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing, half-written by an old version, not UTF-8
            return {}
        return st if isinstance(st, dict) else {}

    def live_owner(self, status: dict | None = None) -> int | None:
        """The pid of another live process that status.json says is running this run, if any."""
        st = self.read_status() if status is None else status
        pid = st.get("pid")
        if st.get("state") in ACTIVE_STATES and pid != os.getpid() and writer_alive(st):
            return pid
        return None

    def remove_stale_temp_files(self) -> int:
        """Delete the temp files of atomic writes that were killed midway (.NAME.*.tmp in the run
        folder, checkpoints/ and every artifact's folder). Only call this when no other writer of
        this run can be alive (see live_owner). Returns how many were removed."""
        removed = 0
        folders = dict.fromkeys([self.path, self.checkpoints_dir, self.samples_dir, self.path / SNAPSHOT_DIR,
                                 *(self.path / a.folder for a in self.artifacts())])
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if is_temp_file(entry.name) and entry.is_file(follow_symlinks=False):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except OSError:  # gone already, or not ours to remove: leave it
                        pass
        return removed

    def append_metrics(self, row: dict) -> None:
        # one flushed JSON object per line; readers tail the file
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
                f.flush()
        except OSError as e:  # a failed write() names no file
            e.filename = e.filename or str(self.metrics_path)
            raise

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint so the curve has no duplicates."""
        if not self.metrics_path.exists():
            return
        keep = [line for line in self.metrics_path.read_text(encoding="utf-8", errors="replace").splitlines()
                if any(_step_of(row) <= step for row in metric_rows([line]))]
        atomic_write_text(self.metrics_path, "".join(l + "\n" for l in keep))

    def checkpoint_stem(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:06d}"

    def sample_path(self, step: int) -> Path:
        return self.artifact_path(SAMPLES, step)

    def artifact_path(self, spec: ArtifactSpec, step: int) -> Path:
        """Where a training artifact of this step goes: <its folder>/step_NNNNNN.png."""
        return self.path / spec.folder / f"step_{step:06d}.png"

    def write_artifacts(self, specs: list[ArtifactSpec]) -> None:
        """Record the artifacts this run writes (artifacts.json), for the GUI and the runs browser."""
        atomic_write_json(self.path / ARTIFACTS_FILE, [s.to_dict() for s in specs])

    def artifacts(self) -> list[ArtifactSpec]:
        """The artifacts this run declared. A run written before they were declared: the sample
        grids, and each known artifact whose folder it has."""
        try:
            raw = json.loads((self.path / ARTIFACTS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None
        if isinstance(raw, list):
            specs = [s for s in (ArtifactSpec.from_dict(d) for d in raw) if s is not None]
            if specs:
                return specs
        return [SAMPLES] + [spec for key, spec in ARTIFACTS.items()
                            if spec is not SAMPLES and (self.path / spec.folder).is_dir()]

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (both files present), oldest first."""
        out = []
        if self.checkpoints_dir.is_dir():
            for p in self.checkpoints_dir.iterdir():
                m = _STEP_RE.match(p.name)
                if m and p.with_suffix(".safetensors").exists():
                    out.append((int(m.group(1)), p.with_suffix(".safetensors")))
        return sorted(out)

    def latest_checkpoint(self) -> Path | None:
        cks = self.checkpoints()
        return cks[-1][1] if cks else None

    def prune_checkpoints(self, keep: int, upto: int | None = None) -> None:
        """Keep the newest `keep` checkpoints up to step `upto` (the one just written). Any after
        it (an unreadable one a resume fell back past) are left alone, and cannot push the new
        one out."""
        if keep <= 0:
            return
        cks = [c for c in self.checkpoints() if upto is None or c[0] <= upto]
        for _, p in cks[:-keep]:
            for q in (p.with_suffix(".json"), p):  # JSON first: a half-removed one is incomplete
                try:
                    os.unlink(q)
                except OSError:
                    pass

    def take_control_commands(self) -> list[str]:
        """Commands written to the control file since the last call (the file is consumed)."""
        from engine.core.protocol import parse_command
        if not self.control_path.exists():
            return []
        claimed = self.control_path.with_name(f".{CONTROL_FILE}.{os.getpid()}")
        try:
            os.replace(self.control_path, claimed)  # claim atomically; writers then start a new file
            text = claimed.read_text(encoding="utf-8", errors="replace")
            claimed.unlink()
        except OSError:
            return []
        return [c for c in (parse_command(l) for l in text.splitlines()) if c]


def _step_of(row: dict) -> float:
    step = row.get("step", 0)
    return step if isinstance(step, (int, float)) else float("inf")


def writer_alive(status: dict) -> bool | None:
    """Whether the process that wrote this status still runs: None when it cannot be told (written
    on another host, or with no usable pid). A live pid that started after the status was last
    written is another process that got the number again: the writer is gone."""
    # GenLab before 0.2 wrote no host: its runs were all local, so their pid is judged here
    if status.get("host", socket.gethostname()) != socket.gethostname():
        return None
    alive = pid_alive(status.get("pid"))
    if alive:
        started, updated = process_start_time(status["pid"]), status.get("updated")
        if started is not None and isinstance(updated, (int, float)) and started > updated + 2:
            return False
    return alive


def effective_status(run_dir) -> dict:
    """status.json as readers should show it: a run recorded as starting/running/paused whose
    process is gone (checked on the host that wrote it, or on any host for a status without one)
    reads as "interrupted"; the recorded
    state stays under "recorded_state". {} when there is no readable status.json."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    st = rd.read_status()
    if st.get("state") in ACTIVE_STATES and writer_alive(st) is False:
        st["recorded_state"], st["state"] = st["state"], "interrupted"
    return st


def send_control(run_dir: str | Path, command: str) -> None:
    """Append a command to a run's control file (used by the CLI and by other machines)."""
    with open(Path(run_dir) / CONTROL_FILE, "a", encoding="utf-8") as f:
        f.write(command + "\n")
