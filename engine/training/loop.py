"""The training loop, the same for every family.

It owns: device and precision, seeding, the batch order, LR warm-up and cosine decay, EMA, gradient
clipping (through StepContext), logging to metrics.jsonl and stdout events, control commands, and
stopping on NaN/Inf. Its other jobs live beside it: claiming the run folder and resuming
(resume.py), a two-stage run's parent checkpoint (parent.py), the family's training artifacts
(artifacts.py), evaluation passes (evaluation.py), what a checkpoint holds (saving.py,
checkpoint.py), images/s and the ETA (throughput.py), training.compile's first step (compile.py),
the processes of a distributed run (distributed.py) and their failing together (errors.py).

Under torchrun it is one of K ranks (engine/training/distributed.py). Every rank runs the same
code, in lockstep at every collective: each takes its slice of the global batch, gradients are
averaged in StepContext.optimize, losses are averaged before logging. Rank 0 alone writes the run
directory, prints events and reads control commands. Work only rank 0 does goes through
`_main()`, which tells every rank afterwards whether it failed, so a failed write ends all ranks
together instead of leaving them waiting; no collective is ever called inside it.
"""
from __future__ import annotations

import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from engine.core import protocol
from engine.core.config import ConfigError, RunConfig
from engine.data import BatchOrder, DataError, build_dataset
from engine.data.folder import skipped_warning
from engine.family.base import Batch, StepContext, build_family
from engine.training import checkpoint as ck
from engine.training import distributed, posthoc_ema
from engine.training.control import ControlChannel, SharedControl
from engine.training.device import device_label, resolve_precision, select_device
from engine.family.ema import ema_decay_at
from engine.core.errors import os_error_line
from engine.runs.rundir import RunDir
from engine.training.artifacts import ArtifactWriter
from engine.training.parent import load_run_parent, prepare_data_with_parent
from engine.training.compile import compiled_first_step, start_compiling
from engine.training.throughput import Throughput
from engine.training.errors import RunBusy, TrainingFailed, agree, rank0_alone
from engine.training.evaluation import RunEvaluation, skip_final_evaluation
from engine.training.saving import check_state_finite, ranks_agree, rng_tensors, state_tensors
from engine.training.resume import (checkpoint_to_resume, claim_run_dir, report_changes, restore_batch_order,
                                    restore_optimizers, restore_rng)

Emit = Callable[[dict], None]


def stdout_emit(ev: dict) -> None:
    sys.stdout.write(protocol.encode(ev) + "\n")
    sys.stdout.flush()


@dataclass
class RunResult:
    state: str           # finished / stopped / failed
    step: int
    run_dir: Path
    message: str = ""
    last_checkpoint: Path | None = None


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to min_ratio at `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class Trainer:
    def __init__(self, cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, emit: Emit = stdout_emit,
                 listen_stdin: bool = False, dist: distributed.Distributed | None = None):
        self.dist = dist if dist is not None else distributed.current()
        # only rank 0 speaks: the other ranks' outcome is their exit code and one line on stderr
        self.cfg, self.emit = cfg, (emit if self.dist.is_main else _silent)
        self.rd = RunDir(run_dir)
        self.resume = resume
        self.listen_stdin = listen_stdin
        self.step = 0
        self.state = "starting"
        self.last_ckpt: Path | None = None
        self.last_saved_step = -1
        self.last_sampled_step = -1
        self.last_evaluated_step = -1
        self.last_snapshot_step = -1   # the post-hoc EMA snapshot last written (training.posthoc_ema)
        self.recorded: dict = {}   # status.json as found, before this process writes it
        self.parent = None         # a two-stage run's frozen parent (engine/family/parent.py)
        self.set_up = False        # until then a failure must not rewrite a resumed run's record
        self._stepped = False      # distributed: state is broadcast again after the first step
        self._initial_pending = False  # every rank: step 0's artifacts are still to draw (after the first step)
        self._budget_spent = False     # rank 0: the time budget's stop was sent
        self.clock = time.perf_counter  # what images/s is timed with (a test's clock replaces it)
        self._compile_pending = False  # training.compile: the first step, which compiles, is still to come
        self.compile_s: float | None = None

    # ---- setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        t, d = self.cfg.training, self.dist
        d.check_batch(t.batch_size)  # the same on every rank: no need to agree on it
        # rank 0 claims the run folder and reads the checkpoint; the others get its bytes
        ckpt = self._main(self._prepare_run_dir)
        if d.enabled and self.resume:
            payload = d.broadcast_bytes(ck.to_bytes(ckpt) if d.is_main and ckpt is not None else None)
            if not d.is_main:
                ckpt = ck.from_bytes(payload) if payload else None
        error = None
        try:
            self._build(ckpt)
        except Exception as e:  # a rank that cannot build (its GPU, its copy of the data) stops all
            error = e
        self._agree(error)
        # equal on every rank by construction (same seed, same checkpoint); made certain
        d.broadcast_state(self.family.networks, self.family.ema)
        self.control = SharedControl(ControlChannel(self.rd, self.listen_stdin) if d.is_main else None, d)
        self.set_up = True

    def _prepare_run_dir(self) -> ck.Checkpoint | None:
        self.recorded = claim_run_dir(self.rd, self.resume, self.emit)
        return checkpoint_to_resume(self.rd, self.emit) if self.resume else None

    def _build(self, ckpt: ck.Checkpoint | None) -> None:
        cfg, t, d = self.cfg, self.cfg.training, self.dist
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        torch.manual_seed(t.seed)  # the same weights on every rank
        self.device = d.local_device(select_device(t.device))
        self.precision, amp_dtype, needs_scaler = resolve_precision(t.precision, self.device)
        self.phase("loading data")
        self.data, self.heldout = build_dataset(cfg.data).split(cfg.data.holdout, cfg.data.seed)
        if self.data.skipped:
            self.emit(protocol.event("warning", message=skipped_warning(self.data.name, self.data.skipped,
                                                                         self.data.scanned)))
        self.parent, self.cfg = load_run_parent(self.cfg, ckpt, self.device, self.data, self.phase)
        cfg = self.cfg   # the parent's checkpoint file is now recorded in model.parent
        self.phase("building the model")
        self.family = build_family(cfg, self.data.channels, self.data.resolution, self.data.class_names,
                                   parent=self.parent)
        self.family.to(self.device)
        if self.parent is not None:
            prepare_data_with_parent(self.family, self.parent, cfg, self.data, self.rd.path, self.phase,
                                     say=lambda m: self.emit(protocol.event("info", message=m)))
        self.optimizers = self.family.make_optimizers()
        for opt in self.optimizers.values():
            for g in opt.param_groups:
                g.setdefault("base_lr", g["lr"])
        self.scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
        # noise and augmentation: a stream per rank (rank 0's is a single-process run's)
        self.generator = torch.Generator(device=self.device).manual_seed(t.seed + 1 + d.rank)
        if d.rank:  # dropout and anything else drawn from the global generator, likewise
            torch.manual_seed(t.seed + d.rank)
        self.ctx = StepContext(self.device, self.generator, self.optimizers, amp_dtype=amp_dtype,
                               scaler=self.scaler, grad_clip=t.grad_clip,
                               reduce_grads=d.average_gradients if d.enabled else None)
        self.ctx.world_size = d.world_size
        self.ctx.collectives = d if d.enabled else None
        self.order = BatchOrder(len(self.data), t.batch_size, t.seed, cfg.data.hflip)
        # the whole (uint8) dataset lives on the device when it is small: no per-step copies
        small = self.data.images.numel() < 2 ** 31
        self.images = self.data.images.to(self.device) if small else self.data.images
        self.labels = self.data.labels.to(self.device)
        self.artifacts = ArtifactWriter(self.family, self.rd, cfg.sampling, self.data, self.heldout, self.emit)
        self.evaluation = RunEvaluation(cfg.metrics, self.data, self.heldout, self.device, self.rd, self.emit)
        if ckpt is not None:
            self.phase(f"restoring {ckpt.name}")
            self._restore(ckpt)
        elif d.is_main:
            if self.resume:  # starting again from step 0: the killed attempt's curve goes
                self.rd.truncate_metrics_after(0)
            cfg.save(self.rd.config_path)
        if d.is_main:
            self.artifacts.declare()
        self.phema = posthoc_ema.start(t, self.family, self.rd.path, ckpt.tensors if ckpt else None, self.step,
                                       self.emit, writes=d.is_main)   # training.posthoc_ema, else None
        self._compile_pending = t.compile and start_compiling(self.family.networks, self.device, self.emit)

    def _compiling_step(self) -> dict[str, torch.Tensor]:
        """The first step of a compiled run: timed as the compile time, or retaken eagerly where
        compiling fails (engine/training/compile.py)."""
        self._compile_pending = False
        losses, self.compile_s = compiled_first_step(self._train_step, networks=self.family.networks,
                                                     optimizers=self.optimizers, order=self.order,
                                                     generator=self.generator, device=self.device, clock=self.clock,
                                                     emit=self.emit)
        return losses

    def _restore(self, ckpt: ck.Checkpoint) -> None:
        ck.load_weights_into(self.family, ckpt)
        changed = restore_optimizers(self.optimizers, ckpt)
        if self.scaler is not None and ckpt.meta.get("scaler"):
            self.scaler.load_state_dict(ckpt.meta["scaler"])
        restore_batch_order(self.order, ckpt, len(self.data), self.emit)
        restore_rng(ckpt, self.generator, self.device, self.dist, self.cfg.training.batch_size, self.emit)
        self.step = ckpt.step
        self.last_saved_step = self.last_sampled_step = self.step
        self.last_ckpt = ckpt.path  # not necessarily the newest file: see checkpoint_to_resume
        if self.dist.is_main:
            self.rd.truncate_metrics_after(self.step)
        report_changes(ckpt, self.cfg.to_dict(), changed, self.emit)

    # ---- pieces -------------------------------------------------------------------------------
    def phase(self, what: str) -> None:
        """Say what the engine is doing now ("loading data", "drawing the first sample grid"), so
        the GUI's status is never a silent wait."""
        self.emit(protocol.event("phase", what=what, step=self.step))

    def status(self, state: str, message: str = "", **extra) -> None:
        """Set the state on this rank; rank 0 writes status.json and says it. No collective: for
        _fail, and inside _main."""
        self.write_status(state, message, **extra)
        self.emit(protocol.event("status", state=state, step=self.step, message=message))

    def set_state(self, state: str, message: str = "") -> None:
        """status() at a point every rank reaches together: a failed write stops every rank."""
        self.state = state
        self._main(self.status, state, message)

    def write_status(self, state: str, message: str = "", **extra) -> None:
        self.state = state
        if not self.dist.is_main:
            return
        t = self.cfg.training
        fields = dict(state=state, step=self.step, total_steps=t.steps, pid=os.getpid(),
                      device=device_label(self.device) if hasattr(self, "device") else "",
                      precision=getattr(self, "precision", ""), world_size=self.dist.world_size, message=message,
                      last_checkpoint=str(self.last_ckpt) if self.last_ckpt else None)
        self.rd.write_status(**{**fields, **extra})

    # ---- distributed: work rank 0 does alone --------------------------------------------------------
    def _main(self, fn: Callable, *args):
        """fn(*args) on rank 0 alone; every rank learns whether it failed (errors.rank0_alone)."""
        return rank0_alone(self.dist, fn, *args)

    def _agree(self, error: Exception | None) -> None:
        """After work every rank does that may fail on some: all raise, or none does."""
        agree(self.dist, error)

    def save(self) -> Path:
        """A checkpoint of this step (every rank calls it; rank 0 writes it)."""
        ranks_agree(self.family, self.dist, self.device, self.step, self.emit)
        rng = rng_tensors(self.generator, self.device, self.dist)
        self._main(self._write_checkpoint, rng)
        self.last_ckpt = ck.checkpoint_paths(self.rd.checkpoint_stem(self.step))[0]
        self.last_saved_step = self.step
        return self.last_ckpt

    def _write_checkpoint(self, rng: dict[str, torch.Tensor]) -> Path:
        tensors, opt_meta = state_tensors(self.family, self.optimizers)
        if self.phema is not None:   # a resumed run goes on with its power-function EMA profiles
            tensors.update(self.phema.state_tensors())
        check_state_finite(tensors, self.device, self.step)
        tensors.update(rng)
        meta = {"step": self.step, "family": self.family.name, "config": self.cfg.to_dict(),
                "config_hash": self.cfg.hash(), "ema": self.family.ema is not None,
                "optimizers": opt_meta, "scaler": self.scaler.state_dict() if self.scaler else None,
                "batch_order": self.order.state(), "world_size": self.dist.world_size,
                "data": {"channels": self.data.channels, "resolution": self.data.resolution,
                         "class_names": self.data.class_names, "images": len(self.data)},
                "capabilities": self.family.capabilities().to_dict(),
                "metrics": getattr(self, "last_metrics", {}), "time": time.time()}
        if self.parent is not None:   # its path and content hash: a changed parent is caught on load
            meta["parent"] = self.parent.record()
        path = ck.save_checkpoint(self.rd.checkpoint_stem(self.step), tensors, meta)
        self.last_ckpt, self.last_saved_step = path, self.step
        self.rd.prune_checkpoints(self.cfg.training.keep_checkpoints, upto=self.step)
        self.emit(protocol.event("checkpoint", step=self.step, path=str(path)))
        return path

    def sample_grid(self) -> Path:
        """This step's artifacts: drawn and written by rank 0 (every rank calls it)."""
        self._main(self.artifacts.write, self.step)
        self.last_sampled_step = self.step
        return self.rd.sample_path(self.step)

    def _keep_initial_weights(self) -> None:
        """Step 0's artifacts are drawn after the first logged step, so that a slow grid (many
        sampling steps on a CPU) never holds the first loss point back: keep the weights they are
        drawn from."""
        self._initial_pending = True
        if self.dist.is_main:
            self.artifacts.keep_initial_weights()

    def _initial_grid(self) -> None:
        """Draw step 0's artifacts from the kept weights (every rank calls it; rank 0 draws)."""
        if not self._initial_pending:
            return
        self.phase("drawing the step-0 sample grid")
        self._main(self.artifacts.write_initial)
        self._initial_pending = False
        self.last_sampled_step = 0

    def _final_evaluation(self, total: int) -> None:
        """The finished run's last score, unless the run is shorter than one evaluation interval."""
        skip = skip_final_evaluation(self.cfg.metrics, total)
        if skip:
            self.emit(protocol.event("info", message=skip))
            return
        self.evaluate(f"final evaluation at step {self.step}")

    def evaluate(self, what: str = "") -> dict | None:
        """Score EMA samples against the real data (metrics section); logs a row and an event.
        Rank 0 scores while the other ranks wait (every rank calls it)."""
        self.phase(what or f"evaluating at step {self.step}")
        row = self._main(self.evaluation.run, self.family, self.step)
        self.last_evaluated_step = self.step
        return row

    def _handle(self, cmds: list[str]) -> str | None:
        """Act on control commands. Returns why the run must stop, or None."""
        stop = None
        for c in cmds:
            if c == "pause" and self.state == "running":
                self.set_state("paused")
            elif c == "resume" and self.state == "paused":
                self.set_state("running")
            elif c == "stop":
                stop = stop or "stopped by request"
            elif c == distributed.TIME_BUDGET:
                stop = stop or f"time budget of {self.cfg.training.time_budget_s:g} s reached at step {self.step}"
            elif c == "sample-now":
                self._check_finite()
                self.sample_grid()
            elif c == "save-now":
                self._check_finite()
                self.save()
        return stop

    def _check_budget(self, speed: Throughput) -> None:
        """Rank 0 tells every rank to stop once training.time_budget_s seconds of training (pauses,
        grids, evaluations and checkpoints left out) are spent; they stop at the next exchange of
        commands, all at the same step."""
        budget = self.cfg.training.time_budget_s
        if budget and self.dist.is_main and not self._budget_spent and speed.training_s() >= budget:
            self._budget_spent = True
            self.control.add(distributed.TIME_BUDGET)

    def _check_finite(self, alone: bool = False) -> None:
        """Stop on a NaN/Inf loss seen since the start, on any rank (`alone`: this rank's only)."""
        bad = self.bad_flag if alone else self.dist.any(self.bad_flag)
        if bad.item():  # a CPU-GPU sync: done only at log/save/sample points
            raise TrainingFailed(f"the loss became NaN or Inf before step {self.step}; training stopped. "
                                 f"Try a lower training.lr or training.grad_clip.")

    # ---- the loop -----------------------------------------------------------------------------
    def run(self, until_step: int | None = None) -> RunResult:
        try:
            self.setup()
        except RunBusy as e:  # the other process owns status.json
            return self._fail(str(e), write_status=False)
        except (ConfigError, DataError, ck.CheckpointError, TrainingFailed) as e:
            return self._fail(str(e))
        except OSError as e:  # a folder that cannot be made, a full disk: one line, no traceback
            return self._fail(os_error_line(e))
        t = self.cfg.training
        total = t.steps
        # every rank's device, for the GUI (a collective: every rank calls it, outside _main)
        devices = [b.decode() for b in self.dist.all_gather_bytes(device_label(self.device).encode())]
        self.emit(protocol.event("started", run_dir=str(self.rd.path), device=device_label(self.device),
                                 devices=devices,
                                 precision=self.precision, step=self.step, total_steps=total,
                                 params=self.family.num_parameters(), dataset=self.data.name,
                                 images=len(self.data), classes=self.data.class_names,
                                 capabilities=self.family.capabilities().to_dict(),
                                 world_size=self.dist.world_size))
        self.bad_flag = torch.zeros((), dtype=torch.bool, device=self.device)
        try:
            self.set_state("running")
            if self.step == 0 and self.last_sampled_step < 0:
                self._keep_initial_weights()   # its grid follows the first loss point
            sums: dict[str, torch.Tensor] = {}
            counts: dict[str, int] = {}
            speed = Throughput(t.batch_size, self.clock)
            stop_at = min(total, until_step) if until_step is not None else total
            while self.step < stop_at:
                with speed.excluded():   # commands and a pause are not training time
                    cmds = self.control.poll(self.step)
                    why = self._handle(cmds) if cmds else None
                    if why:
                        return self._stop(why)
                    while self.state == "paused":   # sample-now and save-now act here, without resuming
                        if self.dist.is_main:  # the other ranks wait in the exchange below
                            time.sleep(0.05)
                        why = self._handle(self.control.poll(self.step, force=True))
                        if why:
                            return self._stop(why)
                compiling = self._compile_pending
                losses = self._compiling_step() if compiling else self._train_step()
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                    counts[k] = counts.get(k, 0) + 1
                speed.count_step()
                self.step += 1
                first_log = self._initial_pending  # the first loss point comes before step 0's grid
                if self.step % t.log_every == 0 or self.step == stop_at or first_log:
                    self._check_finite()
                    sums = self.dist.all_reduce_mean(sums)  # the logged loss is the global batch's
                    row = self._row({k: float(v) / counts[k] for k, v in sums.items()}, speed)
                    self.last_metrics = row
                    self._main(self._log, row)
                    sums, counts = {}, {}
                    speed.new_window()
                elif compiling:   # the compile time stays out of the next row's images/s
                    speed.new_window()
                with speed.excluded():
                    self._scheduled(first_log)
                self._check_budget(speed)
            self._check_finite()
            self._initial_grid()   # a run that never stepped still gets its step-0 grid
            if self.last_sampled_step != self.step:
                self.sample_grid()
            if self.cfg.metrics.every and self.last_evaluated_step != self.step and self.step == total:
                self._final_evaluation(total)
            self.snapshot_phema()
            if self.last_saved_step != self.step:
                self.save()
            if self.step < total:
                return self._stop(f"stopped at step {self.step}")
            self.set_state("finished", f"finished {total} steps")
            return RunResult("finished", self.step, self.rd.path, last_checkpoint=self.last_ckpt)
        except TrainingFailed as e:
            return self._fail(str(e))
        except OSError as e:  # disk full, permissions: the files say what; a traceback would not help
            return self._fail(os_error_line(e))
        except KeyboardInterrupt:  # the other ranks are anywhere: rank 0 saves on its own
            return self._stop("interrupted", alone=True, artifacts=False)
        except Exception as e:  # OOM, a bug, a rank gone: the run fails cleanly, the last checkpoint stays
            if self.dist.enabled and distributed.is_peer_lost(e):  # the failing rank says why, not this one
                return self._fail(f"another process of this distributed run failed or was killed (its error is "
                                  f"in its output; torchrun names it): {distributed.short_error(e)}")
            traceback.print_exc(file=sys.stderr)
            return self._fail(f"{type(e).__name__}: {e}")

    def _row(self, losses: dict[str, float], speed: Throughput) -> dict:
        """The metrics.jsonl row of this step: the window's mean losses, speed and ETA."""
        img_s = speed.images_per_s()
        row = {"step": self.step, "time": round(time.time(), 3), "elapsed_s": round(speed.elapsed_s(), 3),
               **losses, "lr": self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"],
               "img_per_s": round(img_s, 2),
               "eta_s": round(self._eta_s(speed, img_s), 1)}
        for name, gn in self.ctx.grad_norms.items():
            row[f"grad/{name}"] = float(gn)
        return row

    def _eta_s(self, speed: Throughput, img_s: float) -> float:
        """Time to the last step, or to the end of the time budget when that comes first."""
        eta = speed.eta_s(self.cfg.training.steps - self.step, img_s)
        budget = self.cfg.training.time_budget_s
        return min(eta, max(0.0, budget - speed.training_s())) if budget else eta

    def _scheduled(self, first_log: bool) -> None:
        """What this step is due for after training it: step 0's grid (after the first loss
        point), a grid, an evaluation pass, a checkpoint."""
        t = self.cfg.training
        if first_log:
            self._initial_grid()
        if t.sample_every and self.step % t.sample_every == 0:
            self._check_finite()
            self.sample_grid()
        if self.cfg.metrics.every and self.step % self.cfg.metrics.every == 0:
            self._check_finite()
            self.evaluate()
        if t.checkpoint_every and self.step % t.checkpoint_every == 0:
            self._check_finite()
            self.save()
        if self.phema is not None and self.step % t.posthoc_ema_every == 0:
            self.snapshot_phema()

    def snapshot_phema(self, *, alone: bool = False) -> None:
        """The post-hoc EMA snapshot of this step, unless one was just taken (or nothing was
        trained): at the run's end and on stop too, so its last steps are in some snapshot."""
        if self.phema is None or self.step < 1 or self.last_snapshot_step == self.step:
            return
        if alone:   # an interrupt: no collective, rank 0 writes it
            if self.dist.is_main:
                self.phema.snapshot(self.rd.path, self.step)
        else:
            self._main(self.phema.snapshot, self.rd.path, self.step)
        self.last_snapshot_step = self.step

    def _log(self, row: dict) -> None:
        self.rd.append_metrics(row)
        self.write_status(self.state, img_per_s=row["img_per_s"], eta_s=row["eta_s"])
        self.emit(protocol.event("metrics", total_steps=self.cfg.training.steps, **row))

    def _train_step(self) -> dict[str, torch.Tensor]:
        t = self.cfg.training
        factor = lr_factor(self.step, t.steps, t.warmup_steps, t.min_lr_ratio)
        for opt in self.optimizers.values():
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
        idx, flips = self.order.next()
        idx, flips = self.dist.shard(idx), self.dist.shard(flips)  # this rank's part of the global batch
        idx = idx.to(self.images.device)
        x = self.images[idx].to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if flips is not None:
            x = torch.where(flips.to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        batch = Batch(x, self.labels[idx.to(self.labels.device)], index=idx, flips=flips)
        self.ctx.step = self.step
        losses = self.family.training_step(batch, self.ctx)
        losses = {k: v.detach().float() for k, v in losses.items()}
        for v in losses.values():
            self.bad_flag |= ~torch.isfinite(v)
        if self.dist.enabled:
            self.dist.average_buffers(self.family.networks)  # running statistics, w average, ADA counters
            if not self._stepped:  # data-dependent initialisation (ActNorm) happens in a first step
                self.dist.broadcast_state(self.family.networks, self.family.ema)
                self._stepped = True
        if self.family.ema is not None:
            self.family.update_ema(ema_decay_at(self.step, t.ema_decay))
        if self.phema is not None:
            self.phema.update(self.step + 1)
        return losses

    def _stop(self, message: str, *, alone: bool = False, artifacts: bool = True) -> RunResult:
        """Save, draw the final artifacts (the Train tab and the runs browser show the model as it
        stopped, not an older grid), and stop. The checkpoint comes first: a process killed while
        drawing keeps it. Every rank calls it at the same step, unless `alone` (an interrupt, which
        reaches each rank anywhere): then no collective, and rank 0 saves its own random state only.
        `artifacts`: False for an interrupt, which should end at once."""
        alone = alone and self.dist.enabled
        try:
            self._check_finite(alone)
            self.snapshot_phema(alone=alone)
            if self.last_saved_step != self.step:
                if not alone:
                    self.save()
                elif self.dist.is_main:
                    self._write_checkpoint(rng_tensors(self.generator, self.device, self.dist, alone=True))
            if artifacts and not alone:
                self._initial_grid()
                if self.last_sampled_step != self.step:
                    self.phase(f"drawing the sample grid of step {self.step}")
                    self.sample_grid()
            if alone:
                self.status("stopped", message)
            else:
                self.set_state("stopped", message)
        except TrainingFailed as e:
            return self._fail(str(e))
        except OSError as e:
            return self._fail(os_error_line(e))
        return RunResult("stopped", self.step, self.rd.path, message, self.last_ckpt)

    def _fail(self, message: str, *, write_status: bool = True) -> RunResult:
        if self.last_ckpt:
            message += f"{'' if message.endswith('.') else '.'} The last good checkpoint is kept: {self.last_ckpt}"
        kept = {}
        if self.resume and not self.set_up:  # a refused resume trained nothing: "failed at step 0" would lie
            step = self.recorded.get("step")
            self.step = step if isinstance(step, int) and not isinstance(step, bool) else 0
            kept = {"last_checkpoint": self.recorded.get("last_checkpoint")}
        if write_status and self.rd.path.is_dir():  # a folder never made stays unmade
            try:
                self.status("failed", message, **kept)
            except OSError:  # e.g. the disk is full: the error event and the result still say it
                pass
        self.emit(protocol.event("error", message=message))
        return RunResult("failed", self.step, self.rd.path, message, self.last_ckpt)


def _silent(ev: dict) -> None:
    """The events of ranks other than 0: rank 0 says everything once."""


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, until_step: int | None = None,
          emit: Emit = stdout_emit, listen_stdin: bool = False,
          dist: distributed.Distributed | None = None) -> RunResult:
    """Train (or resume) a run. `dist`: this process's rank under torchrun; default, the process
    group this process joined (distributed.init_from_env), or a single process."""
    return Trainer(cfg, run_dir, resume=resume, emit=emit, listen_stdin=listen_stdin, dist=dist).run(until_step)
