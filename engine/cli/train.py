"""`genlab-engine train`: a run from a preset or a config into a run directory (or --resume one),
in this process, or under torchrun with --nproc K; --nice lowers its priority first."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from engine.cli.common import CLIError, note, parse_set, rank_prefix, say
from engine.core.config import DEVICES, RunConfig, load_preset
from engine.core.families import DEFAULT_PRESET
from engine.core.parents import takes_parent

HELP = "train a model into a run directory"


def add_arguments(t) -> None:
    t.add_argument("--preset", help="a preset name (see `genlab-engine presets`); default: the built-in default")
    t.add_argument("--config", help="a run config TOML file")
    t.add_argument("--run-dir", help="run directory (default: RUNS_ROOT/<time>-<name>)")
    t.add_argument("--runs-root", default="runs", help="where new run directories go (default ./runs)")
    t.add_argument("--steps", type=int, help="train for this many steps in total (overrides the config)")
    t.add_argument("--device", choices=DEVICES, help="override training.device")
    t.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    t.add_argument("--parent", metavar="PATH",
                   help="a two-stage model's parent: a checkpoint (.safetensors) or a run folder (its newest "
                        "checkpoint), e.g. the VAE of latent diffusion; without it, a preset's "
                        "default_parent_preset is trained first")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    t.add_argument("--no-stdin", action="store_true", help="do not read control commands from stdin")
    t.add_argument("--nice", type=int, metavar="N",
                   help="run at scheduling priority N (0-19, higher yields more; the app uses 10 so training "
                        "never starves its window or canvases; POSIX only)")
    t.add_argument("--nproc", type=int, metavar="K",
                   help="train with K processes on this machine (data parallel, one per GPU on CUDA): runs "
                        "torchrun --standalone --nproc-per-node K -m engine train ...; training.batch_size "
                        "stays the global batch")


def load_run_config(args) -> RunConfig:
    if args.config and args.preset:
        raise CLIError("give --preset or --config, not both")
    cfg = RunConfig.load(args.config) if args.config else load_preset(args.preset or DEFAULT_PRESET)
    overrides = parse_set(args.set)
    if args.steps is not None:
        overrides.setdefault("training", {})["steps"] = args.steps
    if args.device:
        overrides.setdefault("training", {})["device"] = args.device
    if getattr(args, "parent", None):
        if not takes_parent(cfg.to_dict()["model"]):
            raise CLIError(f"--parent {args.parent}: a {cfg.family} model takes no parent checkpoint")
        overrides.setdefault("model", {})["parent"] = args.parent
    new = cfg.replace(**overrides) if overrides else cfg
    if new.family != cfg.family and "WORLD_SIZE" not in os.environ:   # said once, not by every rank
        note(f"--set model.family={new.family} on {cfg.family}'s {args.config or f'preset {cfg.name}'}: the model "
             f"and sampling sections start from {new.family}'s defaults (grid settings kept); data, training and "
             f"metrics stay as they were")
    return new


def stdout_line(ev: dict) -> None:
    from engine.core import protocol
    sys.stdout.write(protocol.encode(ev) + "\n")
    sys.stdout.flush()


def prepare_train(args) -> tuple[RunConfig, Path]:
    """The config and run directory of a train command; writes config.toml when --resume changes
    it. Under torchrun only rank 0 calls this (see run)."""
    from engine.runs.rundir import RunDir, new_run_dir
    if args.resume:
        if not args.run_dir:
            raise CLIError("--resume needs --run-dir (the run to continue)")
        rd = RunDir(args.run_dir)
        if not rd.config_path.is_file():
            raise CLIError(f"{rd.path}: not a run directory (no config.toml)")
        cfg = RunConfig.load(rd.config_path, stored=True)
        overrides = {}
        if args.steps is not None:
            overrides["training"] = {"steps": args.steps}
        if args.device:
            overrides.setdefault("training", {})["device"] = args.device
        if overrides:
            cfg = cfg.replace(**overrides)
            cfg.save(rd.config_path)  # the run is now this long: config.toml stays the truth
        return cfg, rd.path
    cfg = load_run_config(args)
    run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(args.runs_root, cfg.name)
    if (run_dir / "config.toml").exists():
        raise CLIError(f"{run_dir}: already holds a run; use --resume to continue it or pick a new --run-dir")
    from engine.core import protocol
    from engine.training.parent import with_default_parent

    def progress(ev: dict) -> None:   # the parent's training, told as this run's phase (the GUI shows it)
        if ev.get("event") == "metrics" and ev.get("step", 0) % 100 == 0:
            stdout_line(protocol.event("phase", what=f"training the parent: step {ev['step']}/{ev.get('total_steps')}",
                                       step=0))
    # the default parent's run goes beside the child's, where the runs browser lists both
    return with_default_parent(cfg, run_dir.parent, note, progress), run_dir


def share_train(dist, args) -> tuple[RunConfig, Path]:
    """prepare_train on rank 0; its config and run directory (or its error) on every rank."""
    blob = None
    if dist.is_main:
        try:
            cfg, run_dir = prepare_train(args)
            blob = json.dumps({"config": cfg.to_dict(), "run_dir": str(run_dir)})
        except Exception as e:  # the others wait for this broadcast: they hear of any failure
            from engine.core.errors import os_error_line
            blob = json.dumps({"error": os_error_line(e) if isinstance(e, OSError) else str(e)})
            dist.broadcast_bytes(blob.encode("utf-8"))
            raise
    got = json.loads(dist.broadcast_bytes(blob.encode("utf-8") if blob else None).decode("utf-8"))
    if "error" in got:
        raise CLIError(f"rank 0 could not start the run: {got['error']}")
    return RunConfig.from_dict(got["config"], stored=True), Path(got["run_dir"])


def lower_priority(nice: int | None) -> None:
    """At least `nice` (a POSIX niceness) for this process and the threads it starts from now on, so
    that a run started from the app leaves the CPU to the app's window and canvas renders first. An
    absolute level, not an increment: torchrun's ranks get the same flag and must not add to it."""
    if not nice or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), min(int(nice), 19)))
    except OSError:
        pass  # a priority is a courtesy: never a reason not to train


def run(args) -> int:
    lower_priority(args.nice)  # first: the thread pools torch starts below inherit it
    if args.nproc is not None:
        return launch_torchrun(args)
    from engine.runs.tensorboard_log import LiveEvents, live_wanted
    from engine.training import distributed
    from engine.training.loop import stdout_emit, train
    dist = distributed.init_from_env()  # a process group under torchrun; else a single process
    prefix = rank_prefix()
    # rank 0 speaks for the run: it alone writes the TensorBoard events (live_wanted: the extra is installed)
    emit = LiveEvents(stdout_emit) if dist.is_main and live_wanted() else stdout_emit
    try:
        cfg, run_dir = share_train(dist, args) if dist.enabled else prepare_train(args)
        # only rank 0 listens to stdin (torchrun gives every rank the same one)
        result = train(cfg, run_dir, resume=args.resume, listen_stdin=not args.no_stdin and dist.is_main,
                       dist=dist, emit=emit)
    finally:
        distributed.shutdown()
    if result.state == "failed":
        say(f"{prefix}genlab-engine: error: {result.message}")
        return _exit_rank(dist, 1)
    say(f"{prefix}genlab-engine: {result.state} at step {result.step}; run directory {result.run_dir}")
    return _exit_rank(dist, 0)


def _exit_rank(dist, code: int) -> int:
    """A torchrun rank ends here, without the interpreter's teardown: under load, gloo's threads
    sometimes abort it ("terminate called without an active exception", exit -6) after the run
    has finished and every file is written, which torchrun would report as a failed run."""
    if not dist.enabled:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def launch_torchrun(args) -> int:
    """train --nproc K: the same command under `torchrun --standalone --nproc-per-node K` (one
    machine; for several, run torchrun yourself: see the README). The config is checked here first,
    so a batch that cannot be split is refused before any process starts."""
    from engine.training.distributed import Distributed
    if args.nproc < 1:
        raise CLIError(f"--nproc {args.nproc}: the number of processes must be at least 1")
    if "WORLD_SIZE" in os.environ:
        raise CLIError("--nproc starts torchrun; this process already runs under torchrun (WORLD_SIZE is set)")
    if args.resume:
        if not args.run_dir or not (Path(args.run_dir) / "config.toml").is_file():
            raise CLIError("--resume needs --run-dir with a run in it (config.toml)")
        cfg = RunConfig.load(Path(args.run_dir) / "config.toml", stored=True)
    else:
        cfg = load_run_config(args)
    Distributed(world_size=args.nproc).check_batch(cfg.training.batch_size)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
               "-m", "engine", *strip_nproc(args.argv)]
    # torchrun would give each process one CPU thread; share the cores instead (training.num_threads
    # still overrides)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":  # become torchrun: stopping this process (SIGTERM) stops every rank
        os.execv(sys.executable, command)
    import subprocess
    return subprocess.call(command)


def strip_nproc(argv: list[str]) -> list[str]:
    """The command line without --nproc (it is torchrun's to act on), also as argparse's
    abbreviations (--np 2, --npro=2)."""
    out, skip = [], False
    for a in argv:
        flag = a.split("=", 1)[0]
        if skip:
            skip = False
        elif len(flag) >= 4 and "--nproc".startswith(flag):
            skip = "=" not in a
        else:
            out.append(a)
    return out
