"""`genlab-engine queue`: the training queue of a runs folder (engine/runs/queue.py), the same one
the GUI edits: add a preset or a config (with a time budget), continue a run, compare families on
the same data for the same training time, list, reorder, remove, pause, resume, clear, and run it
(engine/runs/queue_runner.py). Only `queue run` trains, in child processes; no command here
imports torch."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

from engine.cli.common import CLIError

HELP = "a training queue: add runs (or a comparison of families), list, reorder, pause, and run them in turn"


def add_arguments(q) -> None:
    sub = q.add_subparsers(dest="queue_cmd", required=True, metavar="ACTION")

    def action(name: str, help: str):
        p = sub.add_parser(name, help=help)
        p.add_argument("--runs-root", default="runs", help="the runs folder whose queue this is (default ./runs)")
        return p

    a = action("add", "queue a new run (--preset or --config) or continuing one (--continue)")
    what = a.add_mutually_exclusive_group(required=True)
    what.add_argument("--preset", help="a preset name (see `genlab-engine presets`)")
    what.add_argument("--config", help="a run config TOML file")
    what.add_argument("--continue", dest="continue_run", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    a.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    a.add_argument("--steps", type=int, help="train for this many steps (overrides the config)")
    a.add_argument("--name", help="the run's name (default: the config's)")
    a.add_argument("--budget", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this many seconds of training (training.time_budget_s; 0 = none)")
    a.add_argument("--more-steps", type=int, default=0, metavar="N",
                   help="with --continue: train N more steps (default: to its planned total)")

    c = action("compare", "queue one run per preset, each for the same training time, then compare them")
    c.add_argument("--presets", nargs="+", required=True, metavar="PRESET")
    c.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a field of every preset")
    c.add_argument("--steps", type=int, help="at most this many steps each (overrides the presets)")
    c.add_argument("--budget", type=float, required=True, metavar="SECONDS", help="seconds of training per run")
    c.add_argument("--n", type=int, default=500, help="images generated per checkpoint for the comparison "
                                                      "(default 500)")

    ls = action("list", "the entries and comparisons, in queue order")
    ls.add_argument("--json", action="store_true", help="one JSON object: paused, runner_pid, entries, groups")
    for name, help in (("remove", "drop an entry (not while it runs)"), ("move", "move an entry up or down")):
        p = action(name, help)
        p.add_argument("entry", metavar="ID")
        if name == "move":
            way = p.add_mutually_exclusive_group(required=True)
            way.add_argument("--up", dest="delta", action="store_const", const=-1)
            way.add_argument("--down", dest="delta", action="store_const", const=+1)
    action("pause", "start no new entry (the one running goes on)")
    action("resume", "start entries again (a runner must be running: `queue run`)")
    action("clear", "drop the ended entries (done, stopped, failed)")
    action("run", "train the queued entries one after another (JSON lines on stdout)")


def run(args) -> int:
    from engine.runs.queue import QueueError, TrainingQueue
    q = TrainingQueue(args.runs_root)
    try:
        return ACTIONS[args.queue_cmd](q, args)
    except QueueError as e:
        raise CLIError(str(e)) from None


def _config(args, preset: str | None = None) -> dict:
    from engine.cli.train import load_run_config
    ns = type("Args", (), {"config": None if preset else args.config, "preset": preset or args.preset,
                           "set": args.set, "steps": args.steps, "device": None})
    cfg = load_run_config(ns)
    if getattr(args, "name", None):
        cfg = cfg.replace(name=args.name)
    return cfg.to_dict()


def _add(q, args) -> int:
    if args.continue_run:
        if args.set or args.steps is not None or args.name or args.budget:
            raise CLIError("--continue takes only --more-steps (the run keeps its own config)")
        e = q.add_continue(args.continue_run, args.more_steps)
    else:
        if args.more_steps:
            raise CLIError("--more-steps goes with --continue")
        e = q.add(_config(args), time_budget_s=args.budget)
    print(f"queued {e.id} {e.name} ({e.family}){_budget(e.time_budget_s)}")
    return 0


def _compare(q, args) -> int:
    g = q.add_comparison([_config(args, p) for p in args.presets], time_budget_s=args.budget, n=args.n)
    names = {e.id: e for e in q.entries()}
    print(f"queued comparison {g.id}: " + ", ".join(f"{names[i].name} ({names[i].id})" for i in g.entries)
          + f"{_budget(args.budget)} each, compared on {g.n} images")
    return 0


def _list(q, args) -> int:
    entries, groups = q.entries(), q.groups()
    if args.json:
        print(json.dumps({"paused": q.paused, "runner_pid": q.runner_pid(), "entries": [asdict(e) for e in entries],
                          "groups": [asdict(g) for g in groups]}))
        return 0
    runner = q.runner_pid()
    print(f"queue of {q.root}: {'paused' if q.paused else 'not paused'}, "
          f"{f'runner pid {runner}' if runner else 'no runner'}", file=sys.stderr)
    for e in entries:
        when = f" {time.strftime('%H:%M', time.localtime(e.started))}" if e.started else ""
        group = f" [{e.group}]" if e.group else ""
        print(f"{e.id}  {e.state:11s} {e.family:10s} {e.name}{_budget(e.time_budget_s)}{group}{when}"
              f"{'  ' + e.run_dir if e.run_dir else ''}{'  — ' + e.message if e.message else ''}")
    for g in groups:
        print(f"comparison {g.id}: {g.state}, {len(g.entries)} runs, n={g.n}"
              f"{'  ' + g.result if g.result else ''}{'  — ' + g.message if g.message else ''}")
    if not entries and not groups:
        print("the queue is empty", file=sys.stderr)
    return 0


def _runner(q, args) -> int:
    from engine.runs.queue_runner import QueueRunner
    QueueRunner(q.root).run()
    return 0


def _budget(s: float) -> str:
    return f", budget {s:g} s" if s else ""


ACTIONS = {
    "add": _add,
    "compare": _compare,
    "list": _list,
    "remove": lambda q, a: q.remove(a.entry) or 0,
    "move": lambda q, a: q.move(a.entry, a.delta) or 0,
    "pause": lambda q, a: q.set_paused(True) or 0,
    "resume": lambda q, a: q.set_paused(False) or 0,
    "clear": lambda q, a: q.clear_ended() or 0,
    "run": _runner,
}
