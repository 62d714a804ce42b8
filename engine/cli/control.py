"""`genlab-engine control`: send pause/resume/stop/sample-now/save-now to a run through its
control file (so a run on another machine can be steered through a shared folder)."""
from __future__ import annotations

from pathlib import Path

from engine.cli.common import CLIError

HELP = "send pause/resume/stop/sample-now/save-now to a run"


def add_arguments(c) -> None:
    c.add_argument("run_dir")
    c.add_argument("command", choices=["pause", "resume", "stop", "sample-now", "save-now"])


def run(args) -> int:
    from engine.runs.rundir import ACTIVE_STATES, effective_status, send_control
    if not (Path(args.run_dir) / "config.toml").exists():
        raise CLIError(f"{args.run_dir}: not a run directory (no config.toml)")
    st = effective_status(args.run_dir)
    state = st.get("state")
    if state == "interrupted":
        raise CLIError(f"{args.run_dir}: the run was interrupted at step {st.get('step', 0)} (its process "
                       f"{st.get('pid')} is gone); continue it with: genlab-engine train --run-dir "
                       f"{args.run_dir} --resume")
    if state and state not in ACTIVE_STATES:
        raise CLIError(f"{args.run_dir}: the run is {state} at step {st.get('step', 0)}; there is nothing to "
                       f"{args.command}")
    # no status yet, or a run on another machine (its pid cannot be judged here): the file carries it
    send_control(args.run_dir, args.command)
    return 0
