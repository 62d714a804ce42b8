"""FD against network evaluations: a checkpoint sampled with each solver its family offers (the
solver registry, engine/core/solvers.py, as the family's `sampler` option lists it) at several step
counts, each point scored with the FD measure of the metric registry (FID with the Inception
weights, else FD-domain) by the evaluate op's Evaluator, and its NFE as the family counts it
(Family.network_evaluations: the solver's denoiser calls, x2 under classifier-free guidance).

Every point draws the same seeds, and one Evaluator (one feature extractor, one set of real
features) scores them all. A reference point (DDIM-50 by default) gives the FD each solver is
measured against: the summary names, per solver, the fewest NFE at which it reaches it.

The three files (sweep.csv, sweep.json, sweep.png) are written only when every point is done,
each atomically, into a folder made then (default <run>/sweeps/<yyyymmdd-hhmmss>/): a cancelled
sweep leaves nothing behind. Cancel is checked between points and between batches (and inside
a batch, between denoising steps)."""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

from engine.core import metrics as registry
from engine.core.config import MetricsConfig
from engine.core.flags import request_field, result_field
from engine.core.schema import check_like
from engine.family.progress import Cancel, StageProgress, check_cancel
from engine.ops.base import ModelSession

DEFAULT_STEPS = (1, 2, 4, 8, 16, 32)
MEASURE = "fid"   # the Fréchet distance measure; its value is logged as fid or fd_domain by extractor


def step_counts(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4] (a command-line value)."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--steps {text!r}: expected comma-separated whole numbers, e.g. 1,2,4,8") from None


def solver_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


@dataclass
class SweepRequest:
    # empty: every solver the model's family offers (the registry's, as its `sampler` option lists them)
    solvers: list = request_field(factory=list, help="comma-separated solvers (default: every solver the "
                                  "model's family offers)", parse=solver_list, metavar="SOLVERS")
    steps: list = request_field(factory=lambda: list(DEFAULT_STEPS), parse=step_counts, metavar="STEPS",
                                help=f"comma-separated step counts (default: {','.join(map(str, DEFAULT_STEPS))})")
    samples: int = request_field(500, "images generated per point (and real images in the reference)")
    # "solver:steps" of the point whose FD every solver is measured against; "": none
    reference: str = request_field("ddim:50", "the point each solver is measured against, solver:steps "
                                              "('' for none)")
    deterministic: bool = request_field(False, "skip the stochastic solvers (ancestral DDPM, DDIM with eta > 0)")
    inception: str = request_field("", "path of the FID Inception weight file")
    # the folder the files go into; "": <run>/sweeps/<yyyymmdd-hhmmss>
    out: str = request_field("", "folder for sweep.csv, sweep.json and sweep.png (default: the run's sweeps/<time>)")

    def check(self) -> None:
        check_like(self.samples, MetricsConfig, "samples", "samples", "metrics.samples")
        if not self.steps:
            raise ValueError("sweep: give at least one step count (--steps 1,2,4)")
        bad = [s for s in self.steps if not isinstance(s, int) or isinstance(s, bool) or s < 1]
        if bad:
            raise ValueError(f"sweep: step count {bad[0]!r} must be a whole number of at least 1")
        if self.reference:
            parse_reference(self.reference)


def parse_reference(text: str) -> tuple[str, int]:
    name, _, steps = text.partition(":")
    if not name.strip() or not steps.strip().isdigit() or int(steps) < 1:
        raise ValueError(f"sweep: reference = {text!r}: expected solver:steps, e.g. ddim:50")
    return name.strip(), int(steps)


@dataclass
class SweepResult:
    points: list = result_field(report=False)   # {solver, steps, nfe, fd, seconds, stochastic} per point
    reference: dict | None = result_field(None)  # the reference point, or None
    summary: list = result_field(factory=list)   # one line per solver: the fewest NFE reaching the reference
    metric: str = result_field("")               # the value's logged name: fid or fd_domain
    metric_title: str = result_field("")         # FID or FD-domain
    folder: str = result_field("")
    csv: str = result_field("")
    json: str = result_field("")
    png: str = result_field("")
    note: str = result_field("", note=True)


# ---- which solvers and step counts ---------------------------------------------------------------
def family_solvers(fam) -> list[str]:
    """The solvers a family offers (its `sampler` option's choices, which are the registry's), or a
    one-line ValueError for a family that samples without a solver."""
    from engine.family.interfaces import IterativeSampler
    names = list(fam.sampling_record().solvers) if isinstance(fam, IterativeSampler) else []
    if not names:
        raise ValueError(f"a {fam.name} model has no solvers: FD vs NFE needs a family that samples "
                         f"iteratively (diffusion, flow matching)")
    return names


def is_stochastic(fam, options) -> bool:
    """Whether the solver `options` choose draws fresh noise in its steps: the built solver says it
    where the family builds one (DDIM's depends on eta), else its class."""
    from engine.core.registry import load_object
    from engine.core.solvers import SOLVERS
    build = getattr(fam, "solver", None)
    if callable(build):
        return bool(build(options).stochastic)
    return bool(load_object(SOLVERS.get(options.sampler).impl).stochastic)


def plan(fam, req: SweepRequest) -> tuple[list[tuple[str, int, object, int]], list[str]]:
    """(solver, steps, options, nfe) of every point, in solver then step order, and the notes of
    what was left out: a step count that gives the same NFE as a smaller one (steps past the
    schedule's length visit the same levels) is the same point, sampled once."""
    offered = family_solvers(fam)
    unknown = [s for s in req.solvers if s not in offered]
    if unknown:
        raise ValueError(f"sweep: a {fam.name} model has no solver {unknown[0]!r}; its solvers: {', '.join(offered)}")
    names = list(dict.fromkeys(req.solvers)) or offered
    points, notes = [], []
    for name in names:
        seen: set[int] = set()
        for steps in sorted(set(req.steps)):
            options = fam.sample_options(sampler=name, steps=steps)
            if req.deterministic and is_stochastic(fam, options):
                notes.append(f"{name} skipped (stochastic)")
                break
            nfe = int(fam.network_evaluations(options))
            if nfe in seen:
                notes.append(f"{name} at {steps} steps skipped (the same {nfe} network evaluations as fewer steps)")
                continue
            seen.add(nfe)
            points.append((name, steps, options, nfe))
    if not points:
        raise ValueError(f"sweep: no point to sample ({'; '.join(notes) or 'no solver'})")
    return points, notes


# ---- the sweep -----------------------------------------------------------------------------------
def run(session: ModelSession, req: SweepRequest, progress: StageProgress, cancel: Cancel) -> SweepResult:
    from engine.data import build_dataset
    from engine.metrics.evaluate import Evaluator
    fam, cfg = session.family, session.config
    points, notes = plan(fam, req)
    ref_point = None
    if req.reference:
        name, steps = parse_reference(req.reference)
        if name in family_solvers(fam):
            options = fam.sample_options(sampler=name, steps=steps)
            ref_point = (name, steps, options, int(fam.network_evaluations(options)))
        else:
            notes.append(f"no reference: a {fam.name} model has no solver {name!r}")
    check_cancel(cancel)
    data = build_dataset(cfg.data)
    ev = Evaluator(data.images, data.labels, data.num_classes, metrics=[MEASURE],
                   inception_path=req.inception or cfg.metrics.inception_weights or None, device=fam.device,
                   domain_steps=cfg.metrics.domain_steps, progress=progress)
    ev.reference(req.samples)   # the real features, once, before the points' progress starts
    fd = registry.value(MEASURE)
    key, title = fd.name(ev.domain), fd.label(ev.domain)

    todo = list(points)
    in_grid = next((p for p in points if ref_point and (p[0], p[3]) == (ref_point[0], ref_point[3])), None)
    if ref_point is not None and in_grid is None:
        todo.append(ref_point)
    # progress counts network evaluations (NFE x images): a 32-step point costs 32 one-step ones
    total, done = sum(p[3] for p in todo) * req.samples, 0
    scored: dict[tuple[str, int], dict] = {}
    for i, (name, steps, options, nfe) in enumerate(todo):
        check_cancel(cancel)
        stage = f"{name}, {steps} step{'s' if steps != 1 else ''} ({i + 1}/{len(todo)})"
        t0 = time.perf_counter()
        value = score_point(fam, ev, options, req.samples, cancel,
                            lambda d, t, before=done, nfe=nfe: progress(stage, before + d * nfe, total))[key]
        done += nfe * req.samples
        progress(stage, done, total)
        scored[(name, steps)] = {"solver": name, "steps": steps, "nfe": nfe, "fd": value,
                                 "seconds": round(time.perf_counter() - t0, 3),
                                 "stochastic": is_stochastic(fam, options)}
    rows = [scored[(p[0], p[1])] for p in points]
    reference = None
    if ref_point is not None:
        src = in_grid or ref_point
        reference = {**scored[(src[0], src[1])], "steps": ref_point[1]}
    summary = summarize(rows, reference, title)
    check_cancel(cancel)   # nothing is written for a sweep cancelled at its last batch
    folder = Path(req.out) if req.out else default_folder(session.checkpoint)
    record = {"checkpoint": str(session.checkpoint), "step": session.step, "family": fam.name,
              "metric": key, "metric_title": title, "extractor": ev.kind, "samples": req.samples,
              "points": rows, "reference": reference, "summary": summary, "notes": notes}
    paths = write_sweep(folder, record)
    return SweepResult(points=rows, reference=reference, summary=summary, metric=key, metric_title=title,
                       folder=str(folder), **{k: str(v) for k, v in paths.items()}, note="; ".join(notes))


def score_point(fam, ev, options, n: int, cancel: Cancel, images_done) -> dict:
    """The measures of n images drawn with `options` (the seeds every point shares), by `ev`;
    images_done(images, n) hears the sampler's steps as images, so the bar moves within a batch."""
    from engine.ops.compare import within
    drawn = [0]

    def sample(k: int, seed: int):
        inner = within(lambda _s, d, t: images_done(d, t), "", drawn[0], k, n)
        out = fam.sample(k, seed=seed, labels=fam.labels_for(k, offset=seed), use_ema=True, options=options,
                         progress=inner, cancel=cancel)
        drawn[0] += k
        images_done(drawn[0], n)
        return out

    ev.progress = lambda stage, done, total: None   # the points' own progress speaks for them
    return ev.score_sampler(sample, n, cancel=cancel)


def summarize(rows: list[dict], reference: dict | None, title: str) -> list[str]:
    """Per solver: the fewest NFE at which its FD is at most the reference's (computed from the
    points, in NFE order), or that none of its points reached it."""
    if reference is None:
        return []
    target = reference["fd"]
    ref_name = f"{reference['solver']}-{reference['steps']}"
    out = []
    for name in dict.fromkeys(r["solver"] for r in rows):
        mine = sorted((r for r in rows if r["solver"] == name), key=lambda r: r["nfe"])
        hit = next((r for r in mine if r["fd"] <= target), None)
        if hit is not None:
            out.append(f"{name}: reaches {ref_name}'s {title} {target:.4g} at {hit['nfe']} NFE "
                       f"({hit['steps']} steps, {title} {hit['fd']:.4g})")
        else:
            best = min(mine, key=lambda r: r["fd"])
            out.append(f"{name}: does not reach {ref_name}'s {title} {target:.4g} within {mine[-1]['nfe']} NFE "
                       f"(best {best['fd']:.4g} at {best['nfe']} NFE)")
    return out


# ---- the files -----------------------------------------------------------------------------------
def default_folder(checkpoint: Path) -> Path:
    """<run>/sweeps/<yyyymmdd-hhmmss> (beside the checkpoint for one outside a run folder); a
    second sweep in the same second gets -2, -3, ..."""
    from engine.ops.compare import run_dir_of
    run = run_dir_of(Path(checkpoint))
    base = (run if run is not None else Path(checkpoint).absolute().parent) / "sweeps"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, k = base / stamp, 2
    while folder.exists():
        folder, k = base / f"{stamp}-{k}", k + 1
    return folder


CSV_COLUMNS = ("solver", "steps", "nfe", "fd", "seconds", "stochastic")


def sweep_csv(record: dict) -> str:
    """One row per (solver, steps); the FD column is named by the metric (fid or fd_domain)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([record["metric"] if c == "fd" else c for c in CSV_COLUMNS])
    for r in record["points"]:
        w.writerow([r[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def write_sweep(folder: Path, record: dict) -> dict[str, Path]:
    """sweep.csv, sweep.json and sweep.png in `folder`, each written atomically (PNG last: the plot
    of the numbers already on disk)."""
    from engine.core.util import atomic_write_bytes, atomic_write_json, atomic_write_text
    from engine.ops.sweep_plot import render_sweep_png
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "sweep.csv", "json": folder / "sweep.json", "png": folder / "sweep.png"}
    atomic_write_text(paths["csv"], sweep_csv(record))
    atomic_write_json(paths["json"], record)
    atomic_write_bytes(paths["png"], render_sweep_png(record))
    return paths
