"""The training loop, the same for every family.

It owns: device and precision, seeding, the batch order, LR warm-up and cosine decay, EMA, gradient
clipping (through StepContext), logging to metrics.jsonl and stdout events, sample grids,
checkpoints (atomic, resumable to the bit on CPU), control commands, and stopping on NaN/Inf.

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
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.core import protocol
from engine.core import logkeys
from engine.core.config import ConfigError, RunConfig
from engine.data import BatchOrder, DataError, build_dataset
from engine.data.folder import skipped_warning
from engine.family.base import Batch, StepContext, build_family
from engine.family.interfaces import Reconstructor
from engine.training import checkpoint as ck
from engine.training import distributed
from engine.training.control import ControlChannel, SharedControl
from engine.training.device import device_label, resolve_precision, select_device
from engine.family.ema import ema_decay_at
from engine.core.errors import os_error_line
from engine.core.util import throttled
from engine.training.grid import make_grid, sample_grid_image, save_png
from engine.runs.rundir import RunDir

Emit = Callable[[dict], None]


def stdout_emit(ev: dict) -> None:
    sys.stdout.write(protocol.encode(ev) + "\n")
    sys.stdout.flush()


class TrainingFailed(RuntimeError):
    pass


class RunBusy(TrainingFailed):
    """Another live process is training this run directory: refused without touching its files."""


class PeerFailed(TrainingFailed):
    """Another rank of a distributed run failed; its message says which and why."""


# optimizer settings that come from the config, not from the saved state, when a run resumes
HYPERPARAMETERS = ("base_lr", "weight_decay", "betas")


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
        self.evaluator = None
        self.recorded: dict = {}   # status.json as found, before this process writes it
        self.set_up = False        # until then a failure must not rewrite a resumed run's record
        self._stepped = False      # distributed: state is broadcast again after the first step
        self._initial_weights: dict | None = None   # step 0's sampling weights (rank 0), until its grid is drawn
        self._initial_pending = False                # the same on every rank: step 0's grid is still to draw

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
        self._claim_run_dir()
        return self._checkpoint_to_resume() if self.resume else None

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
        self.phase("building the model")
        self.family = build_family(cfg, self.data.channels, self.data.resolution, self.data.class_names)
        self.family.to(self.device)
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
        self.order = BatchOrder(len(self.data), t.batch_size, t.seed, cfg.data.hflip)
        # the whole (uint8) dataset lives on the device when it is small: no per-step copies
        small = self.data.images.numel() < 2 ** 31
        self.images = self.data.images.to(self.device) if small else self.data.images
        self.labels = self.data.labels.to(self.device)
        if ckpt is not None:
            self.phase(f"restoring {ckpt.name}")
            self._restore(ckpt)
        elif d.is_main:
            if self.resume:  # starting again from step 0: the killed attempt's curve goes
                self.rd.truncate_metrics_after(0)
            cfg.save(self.rd.config_path)

    def _claim_run_dir(self) -> None:
        """Refuse a run directory another live trainer is writing; otherwise create it and clear
        the temp files that writes killed midway left behind (no other writer can be alive)."""
        if self.resume and not self.rd.path.is_dir():
            raise TrainingFailed(f"{self.rd.path}: nothing to resume: no such folder")
        self.recorded = self.rd.read_status()
        owner = self.rd.live_owner(self.recorded)
        if owner is not None:
            raise RunBusy(f"{self.rd.path}: another process (pid {owner}) is training this run; "
                          f"stop it or wait for it to end")
        self.rd.create()
        removed = self.rd.remove_stale_temp_files()
        if removed:
            self.emit(protocol.event("info", message=f"{self.rd.path}: removed {removed} temp file(s) "
                                                     f"left by writes that were interrupted"))

    def _checkpoint_to_resume(self) -> ck.Checkpoint | None:
        """The newest checkpoint that can be read, with a warning for each newer one that cannot
        (left in place). None for a run stopped before its first checkpoint: it starts again."""
        found = self.rd.checkpoints()
        if not found:
            if not self.rd.config_path.is_file():
                raise TrainingFailed(f"{self.rd.path}: nothing to resume: no config.toml and no checkpoint")
            self.emit(protocol.event("warning", message=f"{self.rd.path}: the run has no checkpoint yet (it was "
                                                        f"interrupted before the first one): starting it again "
                                                        f"from step 0 with its config"))
            return None
        errors = []
        for _, path in reversed(found):
            try:
                ckpt = ck.load_checkpoint(path)
            except ck.CheckpointError as e:
                errors.append(str(e))
                continue
            for err in errors:
                self.emit(protocol.event("warning", message=f"skipping a checkpoint that cannot be read: {err}; "
                                                            f"resuming from {path.name} instead (the bad file "
                                                            f"is kept)"))
            return ckpt
        more = f" (nor can the {len(errors) - 1} older ones)" if len(errors) > 1 else ""
        raise ck.CheckpointError(errors[0] + more)

    def _restore(self, ckpt: ck.Checkpoint) -> None:
        ck.load_weights_into(self.family, ckpt)
        changed = self._restore_optimizers(ckpt)
        if self.scaler is not None and ckpt.meta.get("scaler"):
            self.scaler.load_state_dict(ckpt.meta["scaler"])
        self._restore_batch_order(ckpt)
        self._restore_rng(ckpt)
        self.step = ckpt.step
        self.last_saved_step = self.last_sampled_step = self.step
        self.last_ckpt = ckpt.path  # not necessarily the newest file: see _checkpoint_to_resume
        if self.dist.is_main:
            self.rd.truncate_metrics_after(self.step)
        self._report_changes(ckpt, changed)

    def _restore_rng(self, ckpt: ck.Checkpoint) -> None:
        """Each rank continues its own random streams. A run resumed on more processes than it was
        saved from gives the new ranks fresh streams (seeded by rank), and says so; the batches
        continue exactly either way, since the batch order is global."""
        d = self.dist
        saved = ckpt.meta.get("world_size", 1)
        saved = saved if isinstance(saved, int) and not isinstance(saved, bool) and saved > 0 else 1
        if ck.has_rng(ckpt, d.rank) or d.rank == 0:
            ck.restore_rng(ckpt, self.generator, self.device, rank=d.rank)
        fresh = [r for r in range(d.world_size) if not ck.has_rng(ckpt, r)]
        noise = (f"the noise of rank{'s' if len(fresh) > 1 else ''} {', '.join(map(str, fresh))} starts a fresh "
                 f"stream") if fresh else ""
        if saved != d.world_size:
            b = self.cfg.training.batch_size
            self.emit(protocol.event("info", message=(
                f"{ckpt.name} was saved by {saved} process{'es' if saved != 1 else ''}, this run has "
                f"{d.world_size}: the global batch stays training.batch_size = {b} ({b // d.world_size} per "
                f"process) and the batch order continues where it was" + (f"; {noise}" if noise else ""))))
        elif fresh:  # saved by rank 0 alone, on an interrupt
            self.emit(protocol.event("info", message=f"{ckpt.name} holds rank 0's random state only: {noise}"))

    def _restore_optimizers(self, ckpt: ck.Checkpoint) -> list[str]:
        """Load each optimizer's saved state, then put back the hyperparameters the config gives
        (the saved state carries the old ones: an edited lr would be silently ignored). Returns
        what changed, e.g. "unet base_lr 0.002 -> 0.001"; unchanged values are left untouched."""
        changed = []
        for name, opt in self.optimizers.items():
            wanted = [{k: g[k] for k in HYPERPARAMETERS if k in g} for g in opt.param_groups]
            ck.load_optimizer(name, opt, ckpt)
            for group, want in zip(opt.param_groups, wanted):
                for key, value in want.items():
                    if _normal(group.get(key)) != _normal(value):
                        changed.append(f"{name} {key} {group.get(key)} -> {value}")
                        group[key] = value
        return changed

    def _restore_batch_order(self, ckpt: ck.Checkpoint) -> None:
        state = ckpt.require("batch_order", dict, "a table with 'epoch' and 'pos'")
        epoch, pos = state.get("epoch"), state.get("pos")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (epoch, pos)):
            raise ck.CheckpointError(f"{ckpt.json_name}: field 'batch_order' is {state!r}; "
                                     f"expected whole numbers 'epoch' and 'pos'")
        trained_on = ckpt.meta["data"].get("images")
        if trained_on is not None and trained_on != len(self.data):  # the data changed: its order cannot continue
            self.emit(protocol.event("warning", message=f"{ckpt.name} was trained on {trained_on} images, the "
                                                        f"data now has {len(self.data)}: the batch order starts "
                                                        f"a new epoch"))
            self.order.load_state({"epoch": epoch + 1, "pos": 0})
        else:
            self.order.load_state(state)

    def _report_changes(self, ckpt: ck.Checkpoint, optimizer_changes: list[str]) -> None:
        """Say which config fields differ from the checkpoint's: they all take effect from here."""
        diffs = ck.config_differences(ckpt.meta["config"], self.cfg.to_dict(),
                                      ("data", "model", "training", "sampling", "metrics"))
        if len(diffs) == 1:
            key, old, new = diffs[0]
            message = f"{key} changed {ck.fmt_value(old)} -> {ck.fmt_value(new)} since the checkpoint: applied"
        elif diffs:
            message = "changed since the checkpoint, applied: " + ", ".join(
                f"{key} {ck.fmt_value(old)} -> {ck.fmt_value(new)}" for key, old, new in diffs)
        elif optimizer_changes:  # not explained by the recorded config: say what was set
            message = "optimizer settings differ from the checkpoint's, set from the config: " + \
                      ", ".join(optimizer_changes)
        else:
            return
        # a changed optimizer setting changes where training goes: worth a warning
        self.emit(protocol.event("warning" if optimizer_changes else "info", message=message))

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
        """fn(*args) on rank 0 alone; then every rank learns whether it failed (one small broadcast)
        and the others raise PeerFailed with its message. fn must call no collective."""
        d = self.dist
        if not d.enabled:
            return fn(*args)
        result, error = None, None
        if d.is_main:
            try:
                result = fn(*args)
            except Exception as e:
                error = e
        message = d.broadcast_bytes(_error_line(error).encode("utf-8") if error is not None else None)
        if error is not None:
            raise error
        if message:
            raise PeerFailed(f"rank 0 failed: {message.decode('utf-8', 'replace')}")
        return result

    def _agree(self, error: Exception | None) -> None:
        """After work every rank does that may fail on some: all raise, or none does."""
        if not self.dist.enabled:
            if error is not None:
                raise error
            return
        found = self.dist.first_error(None if error is None else _error_line(error))
        if error is not None:
            raise error
        if found is not None:
            raise PeerFailed(f"rank {found[0]} failed: {found[1]}")

    def save(self) -> Path:
        """A checkpoint of this step (every rank calls it; rank 0 writes it)."""
        self._check_ranks_agree()
        rng = self._rng_tensors()
        self._main(self._write_checkpoint, rng)
        self.last_ckpt = ck.checkpoint_paths(self.rd.checkpoint_stem(self.step))[0]
        self.last_saved_step = self.step
        return self.last_ckpt

    def _check_ranks_agree(self) -> None:
        """Every rank should hold the same weights, averages and buffers (same start, same averaged
        gradients). Checked at each checkpoint with two sums per network (one small all-gather); a
        difference is reported and healed from rank 0, whose state the checkpoint keeps."""
        d = self.dist
        if not d.enabled:
            return
        parts = {f"weights of {n}": m for n, m in self.family.networks.items()}
        parts.update({f"EMA of {n}": m for n, m in (self.family.ema or {}).items()})
        sums = {}
        for label, m in parts.items():
            total = torch.zeros(2, dtype=torch.float64, device=self.device)
            for t in (*m.parameters(), *m.buffers()):
                if t.is_floating_point():
                    t64 = t.detach().double()  # one tensor at a time: no second copy of the model
                    total += torch.stack([t64.sum(), (t64 * t64).sum()])
            sums[label] = total
        differ = d.mismatched(sums)
        if differ:
            self.emit(protocol.event("warning", message=f"the processes' {', '.join(differ)} differed at step "
                                                        f"{self.step}; set to rank 0's, which the checkpoint keeps"))
            d.broadcast_state(self.family.networks, self.family.ema)

    def _rng_tensors(self, alone: bool = False) -> dict[str, torch.Tensor]:
        """Every rank's random states (rank 0's as in a single-process run, rank r's under
        rng.rank{r}.*), gathered to all ranks as safetensors bytes. `alone`: this rank's only."""
        d = self.dist
        mine = ck.rng_tensors(self.generator, self.device, rank=d.rank)
        if not d.enabled or alone:
            return mine
        out: dict[str, torch.Tensor] = {}
        for blob in d.all_gather_bytes(st_save({k: v.contiguous() for k, v in mine.items()})):
            out.update(st_load(blob))
        return out

    def _write_checkpoint(self, rng: dict[str, torch.Tensor]) -> Path:
        tensors = {}
        tensors.update({f"net.{k}": v for k, v in self.family.networks.state_dict().items()})
        if self.family.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.family.ema.state_dict().items()})
        opt_meta = {}
        for name, opt in self.optimizers.items():
            ts, js = ck.optimizer_to_flat(name, opt)
            tensors.update(ts)
            opt_meta[name] = js
        self._check_state_finite(tensors)
        tensors.update(rng)
        meta = {"step": self.step, "family": self.family.name, "config": self.cfg.to_dict(),
                "config_hash": self.cfg.hash(), "ema": self.family.ema is not None,
                "optimizers": opt_meta, "scaler": self.scaler.state_dict() if self.scaler else None,
                "batch_order": self.order.state(), "world_size": self.dist.world_size,
                "data": {"channels": self.data.channels, "resolution": self.data.resolution,
                         "class_names": self.data.class_names, "images": len(self.data)},
                "capabilities": self.family.capabilities().to_dict(),
                "metrics": getattr(self, "last_metrics", {}), "time": time.time()}
        path = ck.save_checkpoint(self.rd.checkpoint_stem(self.step), tensors, meta)
        self.last_ckpt, self.last_saved_step = path, self.step
        self.rd.prune_checkpoints(self.cfg.training.keep_checkpoints, upto=self.step)
        self.emit(protocol.event("checkpoint", step=self.step, path=str(path)))
        return path

    def _check_state_finite(self, tensors: dict[str, torch.Tensor]) -> None:
        """A checkpoint counts as good only if all its weights, averages and optimizer state are
        finite: a NaN can reach Adam's state or the EMA while the logged losses still look fine.
        One isfinite per tensor and a single sync; run only when saving."""
        groups: dict[str, list[torch.Tensor]] = {}
        for key, v in tensors.items():
            if v.is_floating_point():
                groups.setdefault(_state_label(key), []).append(v)
        if not groups:
            return
        flags = [torch.stack([torch.isfinite(v).all() for v in vs]).all().to(self.device) for vs in groups.values()]
        bad = [label for label, ok in zip(groups, torch.stack(flags).tolist()) if not ok]
        if bad:
            raise TrainingFailed(f"the {' and the '.join(bad)} {'has' if len(bad) == 1 else 'have'} NaN/Inf at "
                                 f"step {self.step}, so no checkpoint was written; training stopped. "
                                 f"Try a lower training.lr or training.grad_clip.")

    def sample_grid(self) -> Path:
        """The fixed-seed grid of this step: drawn and written by rank 0 (every rank calls it)."""
        self._main(self._write_sample_grid, self.step)
        self.last_sampled_step = self.step
        return self.rd.sample_path(self.step)

    def _keep_initial_weights(self) -> None:
        """Step 0's grid is drawn after the first logged step, so that a slow grid (many sampling
        steps on a CPU) never holds the first loss point back: keep the weights it is drawn from."""
        self._initial_pending = True
        if self.dist.is_main:
            nets = self.family.nets(use_ema=True)
            self._initial_weights = {k: v.detach().clone() for k, v in nets.state_dict().items()}

    def _initial_grid(self) -> None:
        """Draw step 0's grid from the kept weights (every rank calls it; rank 0 draws)."""
        if not self._initial_pending:
            return
        self.phase("drawing the step-0 sample grid")
        self._main(self._write_initial_grid)
        self._initial_weights, self._initial_pending = None, False
        self.last_sampled_step = 0

    def _write_initial_grid(self) -> None:
        nets = self.family.nets(use_ema=True)
        now = {k: v.detach().clone() for k, v in nets.state_dict().items()}
        nets.load_state_dict(self._initial_weights)
        try:
            self._write_sample_grid(0)
        finally:
            nets.load_state_dict(now)

    def _write_sample_grid(self, step: int) -> None:
        s = self.cfg.sampling
        path = self.rd.sample_path(step)
        save_png(sample_grid_image(self.family, s.grid_size, seed=s.seed, use_ema=True, options=s), path)
        recon = self._write_recon_grid(step) if isinstance(self.family, Reconstructor) else None
        self.emit(protocol.event("sample", step=step, path=str(path),
                                 **({"recon": str(recon)} if recon else {})))

    RECON_IMAGES = 10   # one row of inputs over one row of their reconstructions

    def _write_recon_grid(self, step: int) -> Path:
        """The first held-out images (training ones when the run keeps none out) over their
        reconstructions: the same images at every step, so the grids compare over training."""
        on = self.heldout if self.heldout is not None else self.data
        idx = torch.arange(min(self.RECON_IMAGES, len(on)))
        x = on.float_batch(idx)
        labels = on.labels[idx].tolist() if getattr(self.family, "num_classes", 0) else None
        rec = self.family.reconstruct(x, labels)
        path = self.rd.recon_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(make_grid(torch.cat([x.cpu(), rec]), len(idx), scale=1), path)
        return path

    def _final_evaluation(self, total: int) -> None:
        """The finished run's last score. A run shorter than one evaluation interval has had none:
        its first would build the feature network (minutes on a CPU) for a few steps' model, so it
        is skipped, and the run says so and how to score it."""
        m = self.cfg.metrics
        if total < m.every:
            self.emit(protocol.event("info", message=(
                f"no evaluation: the run ({total} steps) is shorter than the evaluation interval (metrics.every = "
                f"{m.every}); score it with Evaluate in the Sample tab or `genlab-engine eval --checkpoint …`")))
            return
        self.evaluate(f"final evaluation at step {self.step}")

    def evaluate(self, what: str = "") -> dict | None:
        """Score EMA samples against the real data (metrics section); logs a row and an event.
        Rank 0 scores while the other ranks wait (every rank calls it)."""
        self.phase(what or f"evaluating at step {self.step}")
        row = self._main(self._evaluate)
        self.last_evaluated_step = self.step
        return row

    def _evaluate(self) -> dict:
        from engine.metrics.evaluate import RunEvaluation
        m = self.cfg.metrics
        t0 = time.perf_counter()
        if self.evaluator is None:
            self.evaluator = RunEvaluation(
                m, self.data, self.heldout, self.device,
                progress=throttled(lambda stage, done, total: self.emit(
                    protocol.event("eval_progress", step=self.step, stage=stage, done=done, total=total)), 0.25),
                on_extractor=lambda kind, note: self.emit(
                    protocol.event("warning" if kind == "domain" else "info", message=note)))
        scores, extra_row = self.evaluator.run(self.family)
        row = {"step": self.step, "time": round(time.time(), 3), **logkeys.quality(scores),
               "eval_s": round(time.perf_counter() - t0, 2), "eval_samples": m.samples, **extra_row}
        self.rd.append_metrics(row)
        self.emit(protocol.event("eval", **row))
        return row

    def _handle(self, cmds: list[str]) -> bool:
        """Act on control commands. Returns True when the run must stop."""
        stop = False
        for c in cmds:
            if c == "pause" and self.state == "running":
                self.set_state("paused")
            elif c == "resume" and self.state == "paused":
                self.set_state("running")
            elif c == "stop":
                stop = True
            elif c == "sample-now":
                self._check_finite()
                self.sample_grid()
            elif c == "save-now":
                self._check_finite()
                self.save()
        return stop

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
            n_in_window, window_start, overhead = 0, time.perf_counter(), 0.0
            run_start = time.perf_counter()
            stop_at = min(total, until_step) if until_step is not None else total
            while self.step < stop_at:
                cmds = self.control.poll(self.step)
                if cmds and self._handle(cmds):
                    return self._stop("stopped by request")
                while self.state == "paused":
                    pause_t0 = time.perf_counter()
                    if self.dist.is_main:  # the other ranks wait in the exchange below
                        time.sleep(0.05)
                    if self._handle(self.control.poll(self.step, force=True)):
                        return self._stop("stopped by request")
                    overhead += time.perf_counter() - pause_t0
                losses = self._train_step()
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                    counts[k] = counts.get(k, 0) + 1
                n_in_window += 1
                self.step += 1
                first_log = self._initial_pending  # the first loss point comes before step 0's grid
                if self.step % t.log_every == 0 or self.step == stop_at or first_log:
                    self._check_finite()
                    sums = self.dist.all_reduce_mean(sums)  # the logged loss is the global batch's
                    now = time.perf_counter()
                    busy = max(1e-9, now - window_start - overhead)
                    img_s = n_in_window * t.batch_size / busy
                    row = {"step": self.step, "time": round(time.time(), 3),
                           "elapsed_s": round(now - run_start, 3),
                           **{k: float(v) / counts[k] for k, v in sums.items()},
                           "lr": self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"],
                           "img_per_s": round(img_s, 2),
                           "eta_s": round((total - self.step) * t.batch_size / img_s, 1)}
                    for name, gn in self.ctx.grad_norms.items():
                        row[f"grad/{name}"] = float(gn)
                    self.last_metrics = row
                    self._main(self._log, row)
                    sums, counts, n_in_window, window_start, overhead = {}, {}, 0, time.perf_counter(), 0.0
                extra_t0 = time.perf_counter()
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
                overhead += time.perf_counter() - extra_t0
            self._check_finite()
            self._initial_grid()   # a run that never stepped still gets its step-0 grid
            if self.last_sampled_step != self.step:
                self.sample_grid()
            if self.cfg.metrics.every and self.last_evaluated_step != self.step and self.step == total:
                self._final_evaluation(total)
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
            return self._stop("interrupted", alone=True)
        except Exception as e:  # OOM, a bug, a rank gone: the run fails cleanly, the last checkpoint stays
            if self.dist.enabled and distributed.is_peer_lost(e):  # the failing rank says why, not this one
                return self._fail(f"another process of this distributed run failed or was killed (its error is "
                                  f"in its output; torchrun names it): {distributed.short_error(e)}")
            traceback.print_exc(file=sys.stderr)
            return self._fail(f"{type(e).__name__}: {e}")

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
        batch = Batch(x, self.labels[idx.to(self.labels.device)])
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
        return losses

    def _stop(self, message: str, *, alone: bool = False) -> RunResult:
        """Save and stop. Every rank calls it at the same step, unless `alone` (an interrupt, which
        reaches each rank anywhere): then no collective, and rank 0 saves its own random state only."""
        alone = alone and self.dist.enabled
        try:
            self._check_finite(alone)
            if self.last_saved_step != self.step:
                if not alone:
                    self.save()
                elif self.dist.is_main:
                    self._write_checkpoint(self._rng_tensors(alone=True))
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


def _error_line(e: BaseException) -> str:
    """An error as the other ranks are told it: ours in their words, anything else with its type."""
    if isinstance(e, OSError):
        return os_error_line(e)
    text = str(e).strip()
    if isinstance(e, (TrainingFailed, ConfigError, DataError, ck.CheckpointError)) and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _normal(v):
    """Optimizer values as compared: betas come back from JSON as a list, not a tuple."""
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _state_label(key: str) -> str:
    """What a checkpoint tensor belongs to, in words: net.G.* -> "weights of G"."""
    kind, _, rest = key.partition(".")
    owner = rest.split(".", 1)[0]
    return {"net": f"weights of {owner}", "ema": f"EMA of {owner}",
            "optim": f"optimizer state of {owner}"}.get(kind, key)


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, until_step: int | None = None,
          emit: Emit = stdout_emit, listen_stdin: bool = False,
          dist: distributed.Distributed | None = None) -> RunResult:
    """Train (or resume) a run. `dist`: this process's rank under torchrun; default, the process
    group this process joined (distributed.init_from_env), or a single process."""
    return Trainer(cfg, run_dir, resume=resume, emit=emit, listen_stdin=listen_stdin, dist=dist).run(until_step)
