"""A run as TensorBoard reads it: one event file at the top of the run folder (so `tensorboard
--logdir runs/` shows each run as one run, named by its folder) holding

  every numeric value of metrics.jsonl as a scalar under its own name (loss/mse, quality/fd_domain,
  lr, img_per_s, ...), at its step;
  every image of every declared training artifact (samples, recon, ...) at its step, tagged by key;
  config.toml as text (tag "config", at step 0).

`export_run` writes it from the folder after the fact (`genlab-engine export --tensorboard`);
`LiveEvents` writes the same while a run trains, teed from the trainer's events. TensorBoard itself
is not needed for either (engine/runs/event_file.py writes the format).

A file is only appended to: writing the run again (an export, a resumed run) writes a new file,
events.out.tfevents.<time ns>.genlab, that starts with a SessionLog START at step 0, and then
empties GenLab's older ones (see retire). A TensorBoard already reading the folder moves on to the
newer file (it reads them in name order), drops what it held at the START and reads the run anew,
where rewriting a file under it would have it read on from its old offset into the new content."""
from __future__ import annotations

import importlib.util
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from engine.core import logkeys, protocol
from engine.runs import event_file
from engine.runs.rundir import RunDir, metric_rows

EVENTS_NAME = re.compile(r"events\.out\.tfevents\.(\d+)\.genlab$")  # ours; another writer's are left alone
CONFIG_TAG = "config"
ENV = "GENLAB_TENSORBOARD"  # 1: write live without the tensorboard package, 0: never write live
_NOT_SCALARS = frozenset({"event", "step", "time", "total_steps"})  # the row's coordinates, not values
_STEP_PNG = re.compile(r"step_(\d+)\.png$")


def live_wanted(environ=os.environ) -> bool:
    """Whether a training run writes its event file as it goes: when the tensorboard package is
    installed (the optional extra says the person uses it), unless GENLAB_TENSORBOARD says
    otherwise (1 for a run whose TensorBoard is on another machine reading a shared folder)."""
    value = environ.get(ENV, "").strip().lower()
    if value in ("0", "no", "off", "false"):
        return False
    if value in ("1", "yes", "on", "true"):
        return True
    return importlib.util.find_spec("tensorboard") is not None


def scalar_values(row: dict) -> list[bytes]:
    """The Summary values of a metrics row (or a "metrics"/"eval" event): every number but its step
    and time."""
    return [event_file.scalar_value(k, float(v)) for k, v in logkeys.normalize_row(row).items()
            if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)]


def config_markdown(toml: str) -> str:
    """config.toml as the text plugin shows it: a code block (markdown would reflow it)."""
    return "\n".join("    " + line for line in toml.splitlines())


@dataclass
class Exported:
    path: Path
    rows: int = 0        # metrics rows written (each one event)
    scalars: int = 0     # scalar values in them
    images: dict[str, int] = field(default_factory=dict)  # per artifact key
    skipped: list[str] = field(default_factory=list)      # PNGs that could not be read


def _int_step(row: dict) -> int | None:
    step = row.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def read_rows(rd: RunDir) -> list[dict]:
    """metrics.jsonl's rows with an integer step (a line cut short by a kill is left out)."""
    try:
        lines = rd.metrics_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [row for row in metric_rows(lines) if _int_step(row) is not None]


def artifact_images(rd: RunDir) -> list[tuple[int, str, Path]]:
    """(step, artifact key, PNG) of every declared artifact's step_NNNNNN.png."""
    out = []
    for spec in rd.artifacts():
        folder = rd.path / spec.folder
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _STEP_PNG.match(p.name)
            if m and p.is_file():
                out.append((int(m.group(1)), spec.key, p))
    return out


def run_events(rd: RunDir, summary: Exported, upto: int | None = None) -> Iterator[bytes]:
    """The run folder's events in step order (the rows and images of steps <= `upto`), counted in
    `summary` as they are made; PNGs are read one at a time."""
    now = time.time()
    yield event_file.version_event(now)
    # everything follows from step 0: a TensorBoard that read an earlier file of this run drops it
    yield event_file.start_event(0, now)
    try:
        config = rd.config_path.read_text(encoding="utf-8", errors="replace")
        yield event_file.event(0, _mtime(rd.config_path, now), [event_file.text_value(CONFIG_TAG,
                                                                                      config_markdown(config))])
    except FileNotFoundError:
        pass
    items = [(_int_step(row), 0, i, row) for i, row in enumerate(read_rows(rd))]
    items += [(step, 1, i, (key, path)) for i, (step, key, path) in enumerate(sorted(artifact_images(rd)))]
    for step, kind, _, item in sorted(items, key=lambda t: t[:3]):
        if upto is not None and step > upto:
            continue
        if kind == 0:
            values = scalar_values(item)
            if values:
                summary.rows += 1
                summary.scalars += len(values)
                yield event_file.event(step, _wall_time(item, now), values)
            continue
        key, path = item
        try:
            value = event_file.image_value(key, path.read_bytes())
        except (OSError, ValueError):  # removed meanwhile, or not a PNG after all
            summary.skipped.append(str(path))
            continue
        summary.images[key] = summary.images.get(key, 0) + 1
        yield event_file.event(step, _mtime(path, now), [value])


def _wall_time(row: dict, default: float) -> float:
    t = row.get("time")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else default


def _mtime(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return default


def events_files(folder: Path) -> list[Path]:
    """GenLab's event files in a folder, oldest first."""
    try:
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := EVENTS_NAME.match(p.name))]
    except OSError:  # no folder yet
        return []
    return [p for _, p in sorted(found)]


def new_events_path(folder: Path) -> Path:
    """A name that sorts after every event file GenLab wrote in the folder."""
    stamp = max([time.time_ns(), *(int(EVENTS_NAME.match(p.name).group(1)) + 1 for p in events_files(folder))])
    return folder / f"events.out.tfevents.{stamp}.genlab"


def export_run(run_dir: str | Path, out: str | Path | None = None, upto: int | None = None) -> Exported:
    """Write a run's event file from its folder, in place of any earlier one: into the run folder,
    or into OUT/<run folder name>/ (so one --logdir OUT shows several exported runs by name)."""
    rd = RunDir(run_dir)
    folder = Path(out) / rd.path.resolve().name if out is not None else rd.path
    earlier = events_files(folder)
    summary = Exported(new_events_path(folder))
    event_file.write_whole(summary.path, run_events(rd, summary, upto))
    retire(earlier)
    return summary


def retire(files: list[Path]) -> None:
    """Older event files once a newer one holds all they held: emptied, so a TensorBoard reading
    one finds its end and moves on to the next (a file removed under it would stall its reader),
    and removed when a later write finds them empty already."""
    for p in files:
        try:
            if p.stat().st_size == 0:
                p.unlink()
            else:
                os.truncate(p, 0)
        except FileNotFoundError:  # another export retired it first
            pass


class LiveEvents:
    """An emit callback for train(): passes every event on, and writes the run's metrics, eval
    scores and artifacts into its event file as they come. At "started" (the run folder is set up:
    config saved, a resumed run's metrics cut back to its checkpoint) the file is rewritten from the
    folder up to that step, so a resumed run's file holds each step once. A failure to write warns
    once and the run goes on without it."""

    def __init__(self, emit: Callable[[dict], None]):
        self.emit = emit
        self.path: Path | None = None
        self.failed = False

    def __call__(self, ev: dict) -> None:
        self.emit(ev)
        if self.failed:
            return
        try:
            self._write(ev)
        except Exception as e:  # never a reason to stop training
            self.failed = True
            from engine.core.errors import os_error_line
            why = os_error_line(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
            self.emit(protocol.event("warning", message=f"TensorBoard events are no longer written for this run "
                                                        f"({why}); `genlab-engine export --tensorboard` writes them "
                                                        f"afterwards"))

    def _write(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "started":
            self.path = export_run(ev["run_dir"], upto=int(ev.get("step") or 0)).path
        elif self.path is None:
            return
        elif kind in ("metrics", "eval"):
            values = scalar_values(ev)
            step = _int_step(ev)
            if values and step is not None:
                self._append([event_file.event(step, _wall_time(ev, time.time()), values)])
        elif kind == "sample" and _int_step(ev) is not None:
            paths = ev.get("artifacts") or {"samples": ev.get("path")}
            self._append([event_file.event(ev["step"], time.time(), [event_file.image_value(key, Path(p).read_bytes())])
                          for key, p in paths.items() if p])

    def _append(self, events: list[bytes]) -> None:
        newest = events_files(self.path.parent)[-1:]
        if newest and newest[0] != self.path:  # an export while the run trains wrote it anew: go on in that file
            self.path = newest[0]
        event_file.append(self.path, events)
