"""Post-hoc EMA reconstruction (EDM2, Karras et al. 2024): the EMA of any σ_rel, at the time of one
of a run's snapshots, as the least-squares combination of the power-function EMA profiles the
run stored while training (training.posthoc_ema; engine/training/posthoc_ema.py). Written as a
checkpoint that samples like the run's others: the run's checkpoint of that step (else its newest)
with its EMA weights (ema.*) replaced by the reconstruction, less the optimizer and random state
(it is never resumed from). `genlab-engine ema RUN --sigma-rel S` and the runs browser's
"Reconstruct EMA…" run it; reading one snapshot at a time, it holds two copies of the weights."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.core.config import POSTHOC_SIGMA_MAX
from engine.family.progress import Cancel, StageProgress, check_cancel

# a reconstructed checkpoint is not a training state: what only resuming reads is left out
_TRAINING_STATE = ("optimizers", "scaler", "batch_order")


@dataclass
class EmaRequest:
    run: str                 # the run folder (its phema/ snapshots and checkpoints/)
    sigma_rel: float         # the EMA length to reconstruct (EDM2's σ_rel, relative to the training time)
    step: int = 0            # the snapshot step to reconstruct at (0: the newest)
    out: str = ""            # the checkpoint to write ("": checkpoints/step_NNNNNN-ema-0pXXX in the run)

    def check(self) -> None:
        if not 0 < self.sigma_rel <= POSTHOC_SIGMA_MAX:
            raise ValueError(f"sigma_rel = {self.sigma_rel:g} must be in (0, {POSTHOC_SIGMA_MAX}] (EDM2's range; "
                             f"0.05 and 0.1 are its usual profiles)")
        if self.step < 0:
            raise ValueError(f"step = {self.step} must be a snapshot's step, or 0 for the newest")
        name = Path(self.out).name.removesuffix(".safetensors")
        if self.out and "." in name:   # the .json beside it is found by replacing the suffix
            raise ValueError(f"{self.out}: a checkpoint's name may not hold a dot before .safetensors; "
                             f"name it e.g. {name.replace('.', 'p')}.safetensors")


@dataclass
class EmaResult:
    checkpoint: str          # the reconstructed checkpoint (.safetensors)
    step: int                # the training step it is the EMA at
    sigma_rel: float
    snapshots: int           # how many snapshots were combined
    profiles: list           # the σ_rel of the stored profiles
    base: str                # the training checkpoint its networks and metadata come from


def run(session, req: EmaRequest, progress: StageProgress, cancel: Cancel) -> EmaResult:
    from engine.runs.posthoc_files import reconstructed_stem, snapshots
    req.check()   # before torch is imported: a bad request is answered at once
    import torch

    from engine.runs.rundir import RunDir
    from engine.training import checkpoint as ck
    from engine.training.posthoc_ema import SnapshotError, read_snapshot_meta, read_snapshot_tensors
    from engine.training.power_ema import posthoc_coefficients

    run_dir = Path(req.run)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run folder")
    found = snapshots(run_dir)
    if not found:
        raise ValueError(f"{run_dir}: no post-hoc EMA snapshots (phema/): train the run with "
                         f"training.posthoc_ema = true")
    steps = [s for s, _ in found]
    out_step = req.step or steps[-1]
    if out_step not in steps:
        raise ValueError(f"{run_dir}: no snapshot at step {out_step}; its snapshots are at steps "
                         f"{', '.join(map(str, steps))}")
    try:
        used = [(s, p, read_snapshot_meta(p)) for s, p in found if s <= out_step]
    except SnapshotError as e:
        raise ValueError(str(e)) from None
    inputs = [(s, sigma) for s, _, meta in used for sigma in meta["sigma_rels"]]
    coef = posthoc_coefficients([s for s, _ in inputs], [sigma for _, sigma in inputs], out_step, req.sigma_rel)

    base_path = _base_checkpoint(RunDir(run_dir), out_step)
    base = ck.load_checkpoint(base_path)
    prefix = "ema." if base.prefixed("ema.") else "net."
    target = base.prefixed(prefix)
    last_meta = used[-1][2]
    buffers = set(last_meta.get("buffers") or [])

    sums: dict[str, torch.Tensor] = {}
    copied: dict[str, torch.Tensor] = {}
    k = 0
    for i, (step, path, meta) in enumerate(used):
        check_cancel(cancel)
        progress("combining snapshots", i, len(used))
        try:
            tensors = read_snapshot_tensors(path)
        except SnapshotError as e:
            raise ValueError(str(e)) from None
        for j in range(len(meta["sigma_rels"])):
            weight = float(coef[k])
            k += 1
            for key, ref in target.items():
                v = tensors.get(f"{j}.{key}")
                if v is None or v.shape != ref.shape:
                    raise ValueError(f"{path}: its tensor {j}.{key} is missing or not of the shape of "
                                     f"{base_path.name}'s {prefix}{key}: the snapshot is of another model")
                if key in buffers or not v.is_floating_point():
                    if step == out_step:   # buffers (running statistics, counters) as at the output's time
                        copied[key] = v
                elif key in sums:
                    sums[key].add_(v.double(), alpha=weight)   # float64: the weights can be large with either sign
                else:
                    sums[key] = v.double() * weight
    progress("combining snapshots", len(used), len(used))
    check_cancel(cancel)

    averaged = {key: sums[key].to(ref.dtype) if key in sums else copied[key] for key, ref in target.items()}
    tensors = {k: v for k, v in base.tensors.items() if k.startswith("net.") or k.startswith("ema.")}
    tensors.update({prefix + key: v for key, v in averaged.items()})
    meta = {k: v for k, v in base.meta.items() if k not in _TRAINING_STATE and k not in ("format", "version")}
    meta.update(step=out_step, ema=prefix == "ema.",
                posthoc_ema={"sigma_rel": req.sigma_rel, "step": out_step, "snapshots": len(used),
                             "profiles": sorted({sigma for _, sigma in inputs}), "base_checkpoint": base_path.name})
    stem = Path(req.out) if req.out else reconstructed_stem(run_dir, out_step, req.sigma_rel)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = ck.save_checkpoint(stem, tensors, meta)
    return EmaResult(str(written), out_step, req.sigma_rel, len(used), sorted({s for _, s in inputs}), str(base_path))


def _base_checkpoint(rd, step: int) -> Path:
    """The run's training checkpoint of `step`, else its newest one."""
    found = rd.checkpoints()
    if not found:
        raise ValueError(f"{rd.path}: the run has no checkpoint to take the model's networks and metadata from")
    return dict(found).get(step, found[-1][1])
