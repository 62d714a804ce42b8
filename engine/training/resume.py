"""Claiming a run directory and resuming from its checkpoint: refuse a folder another live process
trains, clear what interrupted writes left, pick the newest readable checkpoint, and put back the
optimizers (with the config's hyperparameters), the batch order and every rank's random streams,
saying what changed since the checkpoint."""
from __future__ import annotations

from typing import Callable

from engine.core import protocol
from engine.runs.rundir import RunDir
from engine.training import checkpoint as ck
from engine.training.errors import RunBusy, TrainingFailed

Emit = Callable[[dict], None]

# optimizer settings that come from the config, not from the saved state, when a run resumes
HYPERPARAMETERS = ("base_lr", "weight_decay", "betas")


def claim_run_dir(rd: RunDir, resume: bool, emit: Emit) -> dict:
    """Refuse a run directory another live trainer is writing; otherwise create it and clear the
    temp files that writes killed midway left behind (no other writer can be alive). Returns
    status.json as it was found, before this process writes it."""
    if resume and not rd.path.is_dir():
        raise TrainingFailed(f"{rd.path}: nothing to resume: no such folder")
    recorded = rd.read_status()
    owner = rd.live_owner(recorded)
    if owner is not None:
        raise RunBusy(f"{rd.path}: another process (pid {owner}) is training this run; stop it or wait for it to end")
    rd.create()
    removed = rd.remove_stale_temp_files()
    if removed:
        emit(protocol.event("info", message=f"{rd.path}: removed {removed} temp file(s) left by writes that "
                                            f"were interrupted"))
    return recorded


def checkpoint_to_resume(rd: RunDir, emit: Emit) -> ck.Checkpoint | None:
    """The newest checkpoint that can be read, with a warning for each newer one that cannot (left
    in place). None for a run stopped before its first checkpoint: it starts again."""
    found = rd.checkpoints()
    if not found:
        if not rd.config_path.is_file():
            raise TrainingFailed(f"{rd.path}: nothing to resume: no config.toml and no checkpoint")
        emit(protocol.event("warning", message=f"{rd.path}: the run has no checkpoint yet (it was interrupted "
                                               f"before the first one): starting it again from step 0 with its "
                                               f"config"))
        return None
    errors = []
    for _, path in reversed(found):
        try:
            ckpt = ck.load_checkpoint(path)
        except ck.CheckpointError as e:
            errors.append(str(e))
            continue
        for err in errors:
            emit(protocol.event("warning", message=f"skipping a checkpoint that cannot be read: {err}; resuming "
                                                   f"from {path.name} instead (the bad file is kept)"))
        return ckpt
    more = f" (nor can the {len(errors) - 1} older ones)" if len(errors) > 1 else ""
    raise ck.CheckpointError(errors[0] + more)


def restore_optimizers(optimizers: dict, ckpt: ck.Checkpoint) -> list[str]:
    """Load each optimizer's saved state, then put back the hyperparameters the config gives (the
    saved state carries the old ones: an edited lr would be silently ignored). Returns what
    changed, e.g. "unet base_lr 0.002 -> 0.001"; unchanged values are left untouched."""
    changed = []
    for name, opt in optimizers.items():
        wanted = [{k: g[k] for k in HYPERPARAMETERS if k in g} for g in opt.param_groups]
        ck.load_optimizer(name, opt, ckpt)
        for group, want in zip(opt.param_groups, wanted):
            for key, value in want.items():
                if _normal(group.get(key)) != _normal(value):
                    changed.append(f"{name} {key} {group.get(key)} -> {value}")
                    group[key] = value
    return changed


def restore_batch_order(order, ckpt: ck.Checkpoint, images: int, emit: Emit) -> None:
    """Continue the batch order where the checkpoint left it; a new epoch when the data changed."""
    state = ckpt.require("batch_order", dict, "a table with 'epoch' and 'pos'")
    epoch, pos = state.get("epoch"), state.get("pos")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (epoch, pos)):
        raise ck.CheckpointError(f"{ckpt.json_name}: field 'batch_order' is {state!r}; "
                                 f"expected whole numbers 'epoch' and 'pos'")
    trained_on = ckpt.meta["data"].get("images")
    if trained_on is not None and trained_on != images:  # the data changed: its order cannot continue
        emit(protocol.event("warning", message=f"{ckpt.name} was trained on {trained_on} images, the data now "
                                               f"has {images}: the batch order starts a new epoch"))
        order.load_state({"epoch": epoch + 1, "pos": 0})
    else:
        order.load_state(state)


def restore_rng(ckpt: ck.Checkpoint, generator, device, dist, batch_size: int, emit: Emit) -> None:
    """Each rank continues its own random streams. A run resumed on more processes than it was
    saved from gives the new ranks fresh streams (seeded by rank), and says so; the batches
    continue exactly either way, since the batch order is global."""
    saved = ckpt.meta.get("world_size", 1)
    saved = saved if isinstance(saved, int) and not isinstance(saved, bool) and saved > 0 else 1
    if ck.has_rng(ckpt, dist.rank) or dist.rank == 0:
        ck.restore_rng(ckpt, generator, device, rank=dist.rank)
    fresh = [r for r in range(dist.world_size) if not ck.has_rng(ckpt, r)]
    noise = (f"the noise of rank{'s' if len(fresh) > 1 else ''} {', '.join(map(str, fresh))} starts a fresh "
             f"stream") if fresh else ""
    if saved != dist.world_size:
        b = batch_size
        emit(protocol.event("info", message=(
            f"{ckpt.name} was saved by {saved} process{'es' if saved != 1 else ''}, this run has "
            f"{dist.world_size}: the global batch stays training.batch_size = {b} ({b // dist.world_size} per "
            f"process) and the batch order continues where it was" + (f"; {noise}" if noise else ""))))
    elif fresh:  # saved by rank 0 alone, on an interrupt
        emit(protocol.event("info", message=f"{ckpt.name} holds rank 0's random state only: {noise}"))


def report_changes(ckpt: ck.Checkpoint, config: dict, optimizer_changes: list[str], emit: Emit) -> None:
    """Say which config fields differ from the checkpoint's: they all take effect from here."""
    diffs = ck.config_differences(ckpt.meta["config"], config, ("data", "model", "training", "sampling", "metrics"))
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
    emit(protocol.event("warning" if optimizer_changes else "info", message=message))


def _normal(v):
    """Optimizer values as compared: betas come back from JSON as a list, not a tuple."""
    return tuple(v) if isinstance(v, (list, tuple)) else v
