"""The run directory, the source of truth shared by the engine, the GUI and the shell:

  config.toml  status.json  metrics.jsonl  samples/step_000500.png
  checkpoints/step_000500.safetensors + .json  control (commands in)
"""
from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

from engine.protocol import CONTROL_FILE
from engine.util import atomic_write_json

_STEP_RE = re.compile(r"step_(\d+)\.json$")


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
        atomic_write_json(self.status_path, fields)

    def read_status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def append_metrics(self, row: dict) -> None:
        # one flushed JSON object per line; readers tail the file
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint so the curve has no duplicates."""
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue
        self.metrics_path.write_text("".join(l + "\n" for l in keep), encoding="utf-8")

    def checkpoint_stem(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:06d}"

    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:06d}.png"

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

    def prune_checkpoints(self, keep: int) -> None:
        if keep <= 0:
            return
        for _, p in self.checkpoints()[:-keep]:
            for q in (p.with_suffix(".json"), p):  # JSON first: a half-removed one is incomplete
                try:
                    os.unlink(q)
                except OSError:
                    pass

    def take_control_commands(self) -> list[str]:
        """Commands written to the control file since the last call (the file is consumed)."""
        from engine.protocol import parse_command
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


def send_control(run_dir: str | Path, command: str) -> None:
    """Append a command to a run's control file (used by the CLI and by other machines)."""
    with open(Path(run_dir) / CONTROL_FILE, "a", encoding="utf-8") as f:
        f.write(command + "\n")
