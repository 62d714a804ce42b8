"""`genlab-engine export --tensorboard RUN...`: a run's metrics, training artifacts and config as a
TensorBoard event file (engine/runs/tensorboard_log.py), written into the run folder (or OUT/<run>/)
and replacing an earlier export. A folder of runs exports each run in it. TensorBoard is not needed
to export: `tensorboard --logdir <runs folder>` then reads them."""
from __future__ import annotations

from pathlib import Path

from engine.cli.common import CLIError, warn

HELP = "export runs for other tools (--tensorboard: an event file TensorBoard reads)"


def add_arguments(e) -> None:
    e.add_argument("runs", nargs="+", metavar="RUN", help="a run folder, or a folder of runs (each is exported)")
    fmt = e.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--tensorboard", action="store_true",
                     help="write a TensorBoard event file (events.out.tfevents.*.genlab, in place of an earlier "
                          "export): the scalars, the artifacts' images and the config as text")
    e.add_argument("--out", metavar="DIR",
                   help="write each run's event file into DIR/<run folder name>/ instead of the run folder")


def run_folders(paths: list[str]) -> list[Path]:
    """The runs named: a run folder (it holds config.toml) as it is, a folder of runs as the runs in it."""
    out = []
    for raw in paths:
        p = Path(raw)
        if (p / "config.toml").is_file():
            out.append(p)
        elif p.is_dir() and (inside := sorted(d for d in p.iterdir() if (d / "config.toml").is_file())):
            out.extend(inside)
        elif p.is_dir():
            raise CLIError(f"{p}: not a run folder (no config.toml) and holds no runs")
        else:
            raise CLIError(f"{p}: folder not found")
    return out


def run(args) -> int:
    from engine.runs.tensorboard_log import export_run
    for folder in run_folders(args.runs):
        done = export_run(folder, args.out)
        images = ", ".join(f"{n} {key}" for key, n in done.images.items()) or "no images"
        print(f"{folder}: {done.scalars} scalars in {done.rows} rows, {images}, the config -> {done.path}")
        for path in done.skipped:
            warn(f"{path}: not a readable PNG, left out")
    return 0
