"""genlab-engine: train | sample | mix | interpolate | inpaint | eval | compare | presets | worker | data-preview | control | runs

Errors exit non-zero with one clear line on stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.core.config import ConfigError, RunConfig, list_presets, load_preset
from engine.core.families import DEFAULT_PRESET
from engine.core.metrics import LIKELIHOOD, SAMPLING, measure_names
from engine.inpainting import CLASSICAL_METHODS
from engine.core.solvers import solver_names, solvers_help


class CLIError(Exception):
    pass


def toml_value(raw: str):
    """A command-line value in TOML syntax (3, 0.5, true, [1, 2], "x"); bare words are strings."""
    from engine.core.schema import tomllib
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_set(pairs: list[str]) -> dict:
    """--set section.field=value (value in TOML syntax, bare words taken as strings)."""
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair or "." not in pair.split("=", 1)[0]:
            raise CLIError(f"--set {pair!r}: expected section.field=value, e.g. training.batch_size=32")
        key, raw = pair.split("=", 1)
        section, fld = key.strip().split(".", 1)
        out.setdefault(section, {})[fld] = toml_value(raw)
    return out


def load_run_config(args) -> RunConfig:
    if args.config and args.preset:
        raise CLIError("give --preset or --config, not both")
    cfg = RunConfig.load(args.config) if args.config else load_preset(args.preset or DEFAULT_PRESET)
    overrides = parse_set(args.set)
    if args.steps is not None:
        overrides.setdefault("training", {})["steps"] = args.steps
    if args.device:
        overrides.setdefault("training", {})["device"] = args.device
    return cfg.replace(**overrides) if overrides else cfg


def prepare_train(args) -> tuple[RunConfig, Path]:
    """The config and run directory of a train command; writes config.toml when --resume changes
    it. Under torchrun only rank 0 calls this (see cmd_train)."""
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
    return cfg, run_dir


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


def cmd_train(args) -> int:
    lower_priority(args.nice)  # first: the thread pools torch starts below inherit it
    if args.nproc is not None:
        return launch_torchrun(args)
    from engine.training import distributed
    from engine.training.loop import train
    dist = distributed.init_from_env()  # a process group under torchrun; else a single process
    prefix = rank_prefix()
    try:
        cfg, run_dir = share_train(dist, args) if dist.enabled else prepare_train(args)
        # only rank 0 listens to stdin (torchrun gives every rank the same one)
        result = train(cfg, run_dir, resume=args.resume, listen_stdin=not args.no_stdin and dist.is_main,
                       dist=dist)
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
    import os
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


def rank_prefix() -> str:
    """"[rank r] " before the lines of a torchrun rank other than 0; "" otherwise."""
    import os
    rank = os.environ.get("RANK", "0") if "WORLD_SIZE" in os.environ else "0"
    return "" if rank == "0" else f"[rank {rank}] "


def say(line: str) -> None:
    """One line on stderr in one write: the ranks of a torchrun share it, and print() writes the
    text and its newline apart, so two ranks' lines could interleave."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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


def parse_options(pairs: list[str] | None) -> dict:
    """Sample options from --option NAME=VALUE pairs (TOML values). Which options exist is the
    checkpoint's family's business: one it lacks is an error naming it."""
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CLIError(f"--option {pair!r}: expected NAME=VALUE, e.g. steps=50")
        key, raw = pair.split("=", 1)
        out[key.strip()] = toml_value(raw)
    return out


def _spec(text: str):
    """A seed (an integer) or an image path, taken whole (a path may hold a comma)."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _specs(text: str) -> list:
    return [_spec(s) for s in text.split(",") if s.strip()]


def _progress_line(stage: str, done: int, total: int) -> None:
    print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def run_op(name: str, args, fields: dict, progress=None, flags: dict | None = None) -> dict:
    """Load the checkpoint and run the operation the worker would run; its result fields.
    `flags` are sample options from named flags ({option: (flag, value)}): one that the model's
    family does not have is ignored with a warning (--sample-steps means nothing to a GAN), while
    --option NAME=VALUE (in fields["options"]) is strict."""
    from engine.ops import OPS
    from engine.ops.base import ModelSession, never, no_progress, parse_request, result_fields
    from engine.core.sections import option_fields
    op = OPS[name]
    if not getattr(args, "checkpoint", None):
        if op.needs_model:
            raise CLIError(f"{name} needs --checkpoint")
        session = None
    else:
        session = ModelSession.load(args.checkpoint, args.device or "auto")
    known = {f.name for f in option_fields(type(session.family.cfg.sampling))} if session else set()
    for option, (flag, value) in (flags or {}).items():
        if value is None:
            continue
        if option in known:
            fields.setdefault("options", {}).setdefault(option, value)
        else:
            print(f"genlab-engine: warning: {flag} does not apply to a {session.family.name} model; ignored",
                  file=sys.stderr)
    try:
        request = parse_request(op.request, fields, name)
        result = result_fields(op.run(session, request, progress or no_progress, never))
    except ValueError as e:  # a bad option, layer, class or endpoint: one line
        raise CLIError(str(e)) from None
    result["step"] = session.step if session else None
    return result


def cmd_sample(args) -> int:
    flags = {"sampler": ("--sampler", args.sampler), "steps": ("--steps", args.sample_steps),
             "eta": ("--eta", args.eta), "guidance_scale": ("--guidance", args.guidance),
             "truncation_psi": ("--psi", args.psi)}
    r = run_op("sample", args, {"out": args.out, "n": args.n, "seed": args.seed, "cls": args.cls,
                                "scale": args.scale, "options": parse_options(args.option)}, flags=flags)
    print(json.dumps({"out": r["path"], "n": r["n"], "step": r["step"]}))
    return 0


def cmd_mix(args) -> int:
    """The style-mixing grid: row seeds (or images) down the left, column seeds across the top;
    cell (r, c) is row r with the chosen layers' styles from column c."""
    flags = {"truncation_psi": ("--psi", args.psi), "noise_mode": ("--noise", args.noise)}
    r = run_op("mix", args, {"rows": _specs(args.rows), "cols": _specs(args.cols), "out": args.out,
                             "layers": [args.layers], "options": parse_options(args.option),
                             "encode_steps": args.project_steps, "scale": args.scale},
               progress=_progress_line, flags=flags)
    print(json.dumps({"out": r["path"], "rows": r["rows"], "cols": r["cols"], "layers": r["layers"],
                      "step": r["step"]}))
    return 0


def cmd_interpolate(args) -> int:
    """Walk the latent space between seeds and/or images; write a strip PNG, a GIF or an MP4."""
    if args.old_steps is not None:
        print("genlab-engine: warning: interpolate --steps is deprecated, use --frames", file=sys.stderr)
    flags = {"truncation_psi": ("--psi", args.psi), "noise_mode": ("--noise", args.noise),
             "steps": ("--sample-steps", args.sample_steps), "guidance_scale": ("--guidance", args.guidance)}
    endpoints = [_spec(args.src)] + _specs(args.via or "") + [_spec(args.dst)]
    r = run_op("interpolate", args, {"endpoints": endpoints, "out": args.out, "cls": args.cls,
                                     "frames": args.old_steps or args.frames, "mode": args.mode or "",
                                     "options": parse_options(args.option), "encode_steps": args.encode_steps or 0,
                                     "fps": args.fps, "bounce": args.bounce, "scale": args.scale},
               progress=_progress_line, flags=flags)
    print(json.dumps({"out": r["out"], "frames": r["frames"], "space": r["space"], "step": r["step"]}))
    return 0


def cmd_inpaint(args) -> int:
    """Fill the masked part of an image (mask: white = regenerate) with the checkpoint's own method,
    or with OpenCV's classical fills (no checkpoint needed); one PNG per seed in --out."""
    flags = {"steps": ("--steps", args.sample_steps), "sampler": ("--sampler", args.sampler),
             "guidance_scale": ("--guidance", args.guidance)}
    inpaint = {k: v for k, v in {"jump": args.jump, "resample": args.resample, "strength": args.strength,
                                 "start": args.start}.items() if v is not None}
    settings = {k: v for k, v in {"fit": args.fit, "padding": args.padding, "feather": args.feather,
                                  "radius": args.radius}.items() if v is not None}
    method = args.method or ""
    if method in CLASSICAL_METHODS and args.checkpoint:
        print(f"genlab-engine: note: {method} needs no model; --checkpoint is not used", file=sys.stderr)
        args.checkpoint = None
    if not args.checkpoint and method not in ("", *CLASSICAL_METHODS):
        raise CLIError(f"--method {method} needs --checkpoint (only {', '.join(CLASSICAL_METHODS)} work without one)")
    if not args.checkpoint and inpaint:
        raise CLIError("--jump/--resample/--strength/--start are options of a model's method: give --checkpoint")
    r = run_op("inpaint", args, {"image": args.image, "mask": args.mask, "out_dir": args.out, "method": method,
                                 "seeds": [int(x) for x in _specs(args.seeds)] if args.checkpoint else [0],
                                 "cls": args.cls, "options": parse_options(args.option), "inpaint": inpaint,
                                 "settings": settings, "resize_mask": args.resize_mask},
               progress=_progress_line, flags=flags)
    if r["note"]:
        print(f"genlab-engine: note: {r['note']}", file=sys.stderr)
    print(json.dumps({"out": r["paths"], "method": r["method"], "seeds": r["seeds"], "region": r["region"],
                      "step": r["step"]}))
    return 0


def cmd_eval(args) -> int:
    """Score a checkpoint's samples against its training data, or a folder of fakes against a
    folder of reals. Progress and the result are JSON lines on stdout."""
    import time
    from engine.core import protocol
    from engine.core.metrics import MEASURES
    from engine.metrics.evaluate import parse_metrics
    from engine.core.util import throttled

    def emit(ev):
        print(protocol.encode(ev), flush=True)

    progress = throttled(lambda stage, done, total: emit(
        protocol.event("progress", stage=stage, done=done, total=total)), 0.2)

    try:
        metrics = parse_metrics(args.metrics)
    except ValueError as e:
        raise CLIError(f"--metrics: {e}") from None
    t0 = time.perf_counter()
    if args.checkpoint:
        if args.fake:
            raise CLIError("give --checkpoint (its samples are the fakes), or --real and --fake, not both")
        if args.real and (not metrics or any(MEASURES.get(m).needs != LIKELIHOOD for m in metrics)):
            raise CLIError("--real with --checkpoint is for --metrics bpd (bits/dim on that folder)")
        r = run_op("evaluate", args, {"n": args.n, "metrics": ",".join(metrics), "steps": args.sample_steps or 0,
                                      "inception": args.inception or "", "real": args.real or ""}, progress=progress)
        scores, kind, note = r["scores"], r["extractor"], r["note"]
        source = {"checkpoint": str(args.checkpoint), "step": r["step"]}
    else:
        import torch
        from engine.data.dataset import to_uint8_nchw
        from engine.data.folder import load_folder
        from engine.metrics.evaluate import Evaluator
        from engine.ops.evaluate import check_eval_args
        if not (args.real and args.fake):
            raise CLIError("give --checkpoint, or both --real DIR and --fake DIR")
        check_eval_args(args.n)
        real, labels, names, _, _, _ = load_folder(args.real, args.resolution, args.n)
        fake, _, _, _, _, _ = load_folder(args.fake, args.resolution, args.n)
        real_t = to_uint8_nchw(real)
        ev = Evaluator(real_t, torch.from_numpy(labels), len(names), metrics=metrics,
                       inception_path=args.inception, device=args.device or "cpu", progress=progress)
        fake_f = to_uint8_nchw(fake).float().div(127.5).sub(1.0)
        scores, kind, note = ev.score(fake_f, n_real=len(real_t)), ev.kind, ev.note
        source = {"real": args.real, "fake": args.fake, "real_images": len(real_t), "fake_images": len(fake_f)}
    emit(protocol.event("result", **scores, **source, extractor=kind, note=note, n=args.n,
                        seconds=round(time.perf_counter() - t0, 2)))
    return 0


def cmd_compare(args) -> int:
    """Compare checkpoints of any families trained on one dataset (engine/ops/compare.py): quality,
    diversity, sampling speed and training cost, all scored against the same real images.
    Progress events and one result line (the rows) are JSON lines on stdout; --csv writes the table."""
    import time
    from engine.core import protocol
    from engine.ops.compare import compare_checkpoints
    from engine.runs.compare_table import overall_fraction, write_csv
    from engine.core.util import throttled

    def emit(ev):
        print(protocol.encode(ev), flush=True)

    if len(args.checkpoints) < 2:
        raise CLIError("--checkpoints: give two or more checkpoints to compare")
    progress = throttled(lambda item, items, stage, done, total: emit(protocol.event(
        "progress", stage=stage, done=done, total=total, checkpoint=item + 1, checkpoints=items,
        fraction=round(overall_fraction(item, items, stage, done, total), 4))), 0.2)
    t0 = time.perf_counter()
    try:
        rows = compare_checkpoints(args.checkpoints, n=args.n, device=args.device or "auto", progress=progress,
                                   steps=args.sample_steps or 0, inception=args.inception or "")
    except ValueError as e:  # checkpoints of different data, a bad --n or --steps: one line
        raise CLIError(str(e)) from None
    if args.csv:
        write_csv(rows, args.csv)
    emit(protocol.event("result", rows=rows, n=args.n, csv=args.csv, seconds=round(time.perf_counter() - t0, 2)))
    return 0


def cmd_presets(args) -> int:
    for name, desc in list_presets().items():
        print(f"{name:16s} {desc}")
    return 0


def cmd_worker(args) -> int:
    from engine.worker import Worker
    Worker(args.cache_dir, args.device or "auto").serve()
    return 0


def _preview_images(dcfg, data, n: int, size: int):
    """Up to n images of the dataset (N, C, size, size) in [-1, 1] for a person to look at: a
    folder's picked files decoded again at `size`, a built-in dataset built again at `size` (a
    procedural one only n images of it), so the preview is never a blur of the training size."""
    import dataclasses

    import torch
    from engine.data import build_dataset
    from engine.data.dataset import to_uint8_nchw
    from engine.data.folder import preview_folder
    pick = torch.Generator().manual_seed(0)
    if size != data.resolution and dcfg.dataset == "folder":
        arr = preview_folder(dcfg.path, n, size, seed=dcfg.seed, max_images=dcfg.max_images, grey=data.channels == 1)
        if len(arr):   # none readable now (the folder changed since): the training-size images below
            return to_uint8_nchw(arr).float().div(127.5).sub(1.0)
    elif size != data.resolution:
        few = {"count": min(dcfg.count, n)} if dcfg.dataset in ("shapes", "textures") else {}
        data = build_dataset(dataclasses.replace(dcfg, resolution=size, **few))
    return data.float_batch(torch.randperm(len(data), generator=pick)[:n])


def cmd_data_preview(args) -> int:
    """Build a dataset and write a preview grid at a size a person can see; prints one JSON line
    with what was found: the counts, the skipped files with plain reasons, and the warnings (files
    skipped, far too few images for a generative model)."""
    from engine.data import build_dataset
    from engine.data.dataset import preview_size, too_few_images_warning
    from engine.data.folder import skipped_summary
    from engine.family.grid import make_grid, save_png
    fields = {"dataset": args.dataset, "path": args.path or ""}
    if args.resolution:
        fields["resolution"] = args.resolution
    if args.config:
        base = RunConfig.load(args.config).data
        fields = {**base.__dict__, **{k: v for k, v in fields.items() if v}}
    sets = parse_set(args.set)
    if set(sets) - {"data"}:
        raise CLIError(f"data-preview: --set takes data fields only (data.FIELD=VALUE), not {sorted(set(sets) - {'data'})[0]}")
    dcfg = RunConfig().replace(data={**fields, **sets.get("data", {})}).data
    size = args.preview_size or preview_size(dcfg.resolution)
    if not 8 <= size <= 1024:
        raise CLIError(f"--preview-size {size}: must be between 8 and 1024 pixels")
    data = build_dataset(dcfg)
    if args.out:
        save_png(make_grid(_preview_images(dcfg, data, args.n, size)), Path(args.out))
    info = data.info()
    warnings = [skipped_summary(data.skipped, data.scanned)] if data.skipped else []   # the folder was named
    warnings.append(too_few_images_warning(len(data), args.batch_size, args.params))
    info["warnings"] = [w for w in warnings if w]
    info["warning"] = "\n".join(info["warnings"])
    info["skipped_files"] = [list(s) for s in data.skipped[:200]]   # (file, plain reason), for a tooltip
    info["preview_size"] = size
    info["preview"] = args.out
    print(json.dumps(info))
    return 0


def cmd_control(args) -> int:
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


def cmd_runs(args) -> int:
    """The runs under a folder, newest first: state (interrupted when the process is gone), step,
    family, dataset, last checkpoint. --json prints one JSON object per run."""
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab-engine", description="GenLab's engine: train and sample image generative models.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model into a run directory")
    t.add_argument("--preset", help="a preset name (see `genlab-engine presets`); default: the built-in default")
    t.add_argument("--config", help="a run config TOML file")
    t.add_argument("--run-dir", help="run directory (default: RUNS_ROOT/<time>-<name>)")
    t.add_argument("--runs-root", default="runs", help="where new run directories go (default ./runs)")
    t.add_argument("--steps", type=int, help="train for this many steps in total (overrides the config)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="override training.device")
    t.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    t.add_argument("--no-stdin", action="store_true", help="do not read control commands from stdin")
    t.add_argument("--nice", type=int, metavar="N",
                   help="run at scheduling priority N (0-19, higher yields more; the app uses 10 so training "
                        "never starves its window or canvases; POSIX only)")
    t.add_argument("--nproc", type=int, metavar="K",
                   help="train with K processes on this machine (data parallel, one per GPU on CUDA): runs "
                        "torchrun --standalone --nproc-per-node K -m engine train ...; training.batch_size "
                        "stays the global batch")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample a grid of images from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="grid.png")
    s.add_argument("--steps", dest="sample_steps", type=int, help="denoising steps (default: the run's)")
    s.add_argument("--sampler", choices=solver_names(), help=f"diffusion solver (default: the run's): {solvers_help()}")
    s.add_argument("--eta", type=float)
    s.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    s.add_argument("--class", dest="cls", type=int, help="class index for every image (default: all classes)")
    s.add_argument("--psi", type=float, help="GANs: truncation psi (default: the run's)")
    s.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="any sample option of the checkpoint's family, e.g. spacing=trailing (repeatable)")
    s.add_argument("--scale", type=int, default=1, help="upscale the grid by this factor (nearest)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    s.set_defaults(func=cmd_sample)

    m = sub.add_parser("mix", help="style-mixing grid from a checkpoint with per-layer styles")
    m.add_argument("--checkpoint", required=True)
    m.add_argument("--rows", required=True, help="row sources: seeds and/or image paths, comma-separated")
    m.add_argument("--cols", required=True, help="column sources (they give the chosen layers' styles)")
    m.add_argument("--layers", default="coarse", help="style layers taken from the columns: 0-3, 0,2,5, "
                                                    "coarse, middle, fine or all (default coarse)")
    m.add_argument("--psi", type=float, help="truncation psi (1 = off; default: the run's)")
    m.add_argument("--noise", help="per-layer noise: const, random or off (default: the run's)")
    m.add_argument("--option", action="append", metavar="NAME=VALUE", help="any other sample option")
    m.add_argument("--project-steps", type=int, default=200, help="optimisation steps to project an image")
    m.add_argument("--scale", type=int, default=2, help="upscale the grid by this factor (nearest)")
    m.add_argument("--out", default="mix.png")
    m.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    m.set_defaults(func=cmd_mix)

    i = sub.add_parser("interpolate", help="latent walk between seeds and/or images: strip PNG, GIF or MP4")
    i.add_argument("--checkpoint", required=True)
    i.add_argument("--from", dest="src", required=True, help="a seed or an image path")
    i.add_argument("--to", dest="dst", required=True, help="a seed or an image path")
    i.add_argument("--via", help="more endpoints in between, comma-separated")
    i.add_argument("--frames", type=int, default=16, help="frames in the walk")
    i.add_argument("--steps", dest="old_steps", type=int, help=argparse.SUPPRESS)  # deprecated alias of --frames
    i.add_argument("--mode", choices=["lerp", "slerp"], help="default: what suits the latent space")
    i.add_argument("--psi", type=float, help="GANs: truncation psi (default: the run's)")
    i.add_argument("--noise", help="per-layer noise: const, random or off (default: the run's)")
    i.add_argument("--option", action="append", metavar="NAME=VALUE", help="any other sample option")
    i.add_argument("--class", dest="cls", type=int, help="class for a conditional model")
    i.add_argument("--sample-steps", type=int, help="iterative samplers (diffusion): steps per frame (default: the run's)")
    i.add_argument("--guidance", type=float, help="diffusion: guidance scale (default: the run's)")
    i.add_argument("--encode-steps", type=int, help="steps to encode image endpoints (projection or inversion)")
    i.add_argument("--fps", type=float, default=12.0)
    i.add_argument("--bounce", action="store_true", help="animations play forward then back")
    i.add_argument("--scale", type=int, default=4, help="upscale frames by this factor (nearest)")
    i.add_argument("--out", default="walk.gif", help=".png (strip), .gif or .mp4")
    i.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    i.set_defaults(func=cmd_interpolate)

    ip = sub.add_parser("inpaint", help="fill the masked part of an image (mask: white = regenerate)")
    ip.add_argument("--image", required=True)
    ip.add_argument("--mask", required=True, help="PNG of the image's size; white = regenerate, black = keep")
    ip.add_argument("--checkpoint", help="a model that inpaints (diffusion, PixelCNN); not needed for telea/ns")
    ip.add_argument("--method", help="repaint or blend (diffusion), raster completion (PixelCNN), or telea / ns "
                                     "(OpenCV, no model); default: the model's first, or telea without one")
    ip.add_argument("--seeds", default="0", help="comma-separated seeds: one result each (default 0)")
    ip.add_argument("--steps", dest="sample_steps", type=int, help="denoising steps (default: the run's)")
    ip.add_argument("--sampler", choices=solver_names(), help="diffusion solver (default: the run's)")
    ip.add_argument("--guidance", type=float, help="classifier-free guidance scale (with --class)")
    ip.add_argument("--jump", type=int, help="RePaint: jump length (default 10)")
    ip.add_argument("--resample", type=int, help="RePaint: resampling count (default 10; 1 = none)")
    ip.add_argument("--strength", type=float, help="1 = the masked part starts from noise; less keeps its shapes")
    ip.add_argument("--start", choices=["original", "noise", "fill"], help="what the masked part starts from")
    ip.add_argument("--fit", choices=["resize", "crop", "masked"],
                    help="how the image meets the model's resolution (default resize; masked: only around the mask)")
    ip.add_argument("--padding", type=int, help="--fit masked: context pixels around the mask (default 8)")
    ip.add_argument("--feather", type=float, help="mask blur in model pixels (default 1; 0 = hard edge)")
    ip.add_argument("--radius", type=float, help="telea/ns: neighbourhood radius in pixels (default 3)")
    ip.add_argument("--class", dest="cls", type=int, help="class for a conditional model")
    ip.add_argument("--option", action="append", metavar="NAME=VALUE", help="any other sample option")
    ip.add_argument("--resize-mask", action="store_true", help="resize a mask of another size to the image's")
    ip.add_argument("--out", default="inpainted", help="folder for the results (default ./inpainted)")
    ip.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    ip.set_defaults(func=cmd_inpaint)

    e = sub.add_parser("eval", help="score samples: FID (or FD-domain), KID, precision/recall, IS")
    e.add_argument("--checkpoint", help="sample from this checkpoint and compare with its training data")
    e.add_argument("--real", help="folder of real images (with --fake; or with --checkpoint and --metrics bpd)")
    e.add_argument("--fake", help="folder of generated images (with --real)")
    e.add_argument("--metrics", default=",".join(measure_names(SAMPLING)),
                   help=f"comma-separated: {','.join(measure_names(SAMPLING))}, and {','.join(measure_names(LIKELIHOOD))} "
                        f"(bits/dim on held-out data, or on --real DIR)")
    e.add_argument("--n", type=int, default=5000, help="images to generate / use from each folder")
    e.add_argument("--resolution", type=int, default=64, help="folder mode: images are resized to this")
    e.add_argument("--steps", dest="sample_steps", type=int, help="denoising steps for the samples")
    e.add_argument("--inception", help="path of the FID Inception weight file")
    e.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    e.set_defaults(func=cmd_eval)

    cp = sub.add_parser("compare", help="compare checkpoints of any families trained on one dataset: FD/FID, "
                                        "precision, recall, bits/dim, images/s, NFE, training cost")
    cp.add_argument("--checkpoints", nargs="+", required=True, metavar="CHECKPOINT",
                    help="two or more checkpoints (.safetensors), all trained on the same dataset, "
                         "resolution and channel count")
    cp.add_argument("--n", type=int, default=500, help="images to generate per checkpoint (and real images in "
                                                       "the shared reference); they are also the ones timed")
    cp.add_argument("--steps", dest="sample_steps", type=int,
                    help="iterative samplers (diffusion): denoising steps (default: each run's own)")
    cp.add_argument("--csv", help="also write the table to this CSV file")
    cp.add_argument("--inception", help="path of the FID Inception weight file (default: FD-domain without it)")
    cp.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    cp.set_defaults(func=cmd_compare)

    sub.add_parser("presets", help="list the presets").set_defaults(func=cmd_presets)

    w = sub.add_parser("worker", help="serve canvas requests (JSON lines on stdin)")
    w.add_argument("--cache-dir")
    w.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    w.set_defaults(func=cmd_worker)

    d = sub.add_parser("data-preview", help="load a dataset and write a preview grid")
    d.add_argument("--dataset", default="digits")
    d.add_argument("--path")
    d.add_argument("--resolution", type=int)
    d.add_argument("--config", help="take the [data] section of this config")
    d.add_argument("--set", action="append", metavar="data.FIELD=VALUE", help="override a data field")
    d.add_argument("--n", type=int, default=64)
    d.add_argument("--out")
    d.add_argument("--preview-size", type=int, help="pixels a side per image in the grid (default: the "
                                                      "training resolution, kept between 64 and 128)")
    d.add_argument("--batch-size", type=int, help="the model's batch size: warn when the data has fewer images")
    d.add_argument("--params", type=int, help="the model's parameter count, named in the too-few warning")
    d.set_defaults(func=cmd_data_preview)

    r = sub.add_parser("runs", help="list the runs in a folder with their state (interrupted when the process is gone)")
    r.add_argument("root", nargs="?", default="runs", help="the runs folder (default ./runs)")
    r.add_argument("--json", action="store_true", help="one JSON object per run")
    r.set_defaults(func=cmd_runs)

    c = sub.add_parser("control", help="send pause/resume/stop/sample-now/save-now to a run")
    c.add_argument("run_dir")
    c.add_argument("command", choices=["pause", "resume", "stop", "sample-now", "save-now"])
    c.set_defaults(func=cmd_control)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    from engine.data.dataset import DataError
    from engine.core.errors import os_error_line
    from engine.training.checkpoint import CheckpointError
    try:
        return args.func(args)
    except (CLIError, ConfigError, DataError, CheckpointError) as e:
        say(f"{rank_prefix()}genlab-engine: error: {e}")
        return 2
    except OSError as e:  # disk full, permission, a file where a folder should be: one line, the path
        say(f"{rank_prefix()}genlab-engine: error: {os_error_line(e)}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
