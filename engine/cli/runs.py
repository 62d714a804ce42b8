"""`genlab-engine runs`: the runs under a folder, newest first: state (interrupted when the process
is gone), step, family, dataset, last checkpoint. --json prints one JSON object per run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli.common import CLIError

HELP = "list the runs in a folder with their state (interrupted when the process is gone)"


def add_arguments(r) -> None:
    r.add_argument("root", nargs="?", default="runs", help="the runs folder (default ./runs)")
    r.add_argument("--json", action="store_true", help="one JSON object per run")


def run(args) -> int:
    from engine.core.config import ConfigError, RunConfig
    from engine.runs.rundir import RunDir, effective_status
    root = Path(args.root)
    if not root.is_dir():
        raise CLIError(f"{root}: folder not found")
    rows = []
    for d in sorted((p for p in root.iterdir() if (p / "config.toml").is_file()), key=lambda p: p.name, reverse=True):
        st = effective_status(d)
        try:
            cfg = RunConfig.load(d / "config.toml", stored=True)
            family, dataset = cfg.model.family, cfg.data.dataset
        except (ConfigError, OSError):
            family = dataset = "?"
        ck = RunDir(d).latest_checkpoint()
        rows.append({"run": str(d), "state": st.get("state", "no status"), "step": st.get("step", 0),
                     "total_steps": st.get("total_steps"), "family": family, "dataset": dataset,
                     "last_checkpoint": str(ck) if ck else None, "message": st.get("message", "")})
    for r in rows:
        if args.json:
            print(json.dumps(r))
        else:
            total = f"/{r['total_steps']}" if r["total_steps"] else ""
            print(f"{r['state']:12s} {r['step']:>7}{total:<8s} {r['family']:10s} {r['dataset']:10s} {r['run']}")
    if not rows and not args.json:
        print(f"no runs in {root}", file=sys.stderr)
    return 0
