"""Post-hoc EMA during training (training.posthoc_ema; EDM2, Karras et al. 2024): beside the classic
EMA (engine/family/ema.py), two (or a few) power-function EMA profiles of the same networks, each
moved every step with β_t = (1 − 1/t)^(γ+1) (engine/training/power_ema.py), and every
training.posthoc_ema_every steps a snapshot of all of them in the run's phema/ folder
(engine/runs/posthoc_files.py). After training, `genlab-engine ema RUN --sigma-rel S`
(engine/ops/posthoc_ema.py) combines the snapshots into the EMA of any σ_rel.

The profiles' current values also go into every training checkpoint (phema.* tensors, with
phema.sigma_rels naming the profiles), so a resumed run goes on averaging where it stopped."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.core import protocol
from engine.core.util import atomic_write_bytes, atomic_write_json
from engine.runs.posthoc_files import snapshot_stem, snapshots
from engine.training.power_ema import beta, gamma_of

SNAPSHOT_FORMAT = "genlab-phema-snapshot"
SNAPSHOT_VERSION = 1
STATE_PREFIX = "phema."
SIGMAS_KEY = "phema.sigma_rels"   # a checkpoint's tensor naming its profiles, in order


class PowerEMA:
    """The power-function EMA profiles of the networks the family averages for sampling
    (family.ema's, else all of them): parameters are averaged, buffers (running statistics,
    counters) are copied from the live networks when a snapshot is taken, as the classic EMA's are."""

    def __init__(self, family, sigma_rels: list[float]):
        self.family_name = family.name
        self.sigma_rels = [float(s) for s in sigma_rels]
        self.gammas = [gamma_of(s) for s in self.sigma_rels]
        averaged = family.ema if family.ema is not None else family.networks
        live = family.networks.state_dict(keep_vars=True)   # the live tensors themselves, not copies
        params = {k for k, _ in family.networks.named_parameters()}
        self.keys = list(averaged.state_dict().keys())
        self._averaged = [k for k in self.keys if k in params and live[k].is_floating_point()]
        self._copied = [k for k in self.keys if k not in self._averaged]
        self._live = live
        self._networks = family.networks
        self.profiles: list[dict[str, torch.Tensor]] = [
            {k: live[k].detach().clone() for k in self.keys} for _ in self.sigma_rels]

    @torch.no_grad()
    def update(self, t: int) -> None:
        """After the optimizer step that makes t steps (t >= 1)."""
        src = [self._live[k].detach() for k in self._averaged]
        for gamma, profile in zip(self.gammas, self.profiles):
            # θ̂ += (1 − β)(θ − θ̂), fused; at t = 1, β = 0 and θ̂ becomes θ_1
            torch._foreach_lerp_([profile[k] for k in self._averaged], src, 1.0 - beta(gamma, t))

    @torch.no_grad()
    def _sync_buffers(self) -> None:
        live = self._networks.state_dict()   # read again: a module may have replaced a buffer
        for profile in self.profiles:
            for k in self._copied:
                profile[k].copy_(live[k])

    # ---- checkpoints (resume) ------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The profiles as checkpoint tensors: phema.<i>.<key>, and phema.sigma_rels."""
        self._sync_buffers()
        out = {SIGMAS_KEY: torch.tensor(self.sigma_rels, dtype=torch.float64)}
        for i, profile in enumerate(self.profiles):
            out.update({f"{STATE_PREFIX}{i}.{k}": v for k, v in profile.items()})
        return out

    @torch.no_grad()
    def restore(self, tensors: dict[str, torch.Tensor]) -> str | None:
        """Load the profiles a checkpoint holds. None when they were loaded, else why not (the
        profiles then start again from the live weights)."""
        saved = tensors.get(SIGMAS_KEY)
        if saved is None:
            return "the checkpoint holds none (it was trained without training.posthoc_ema)"
        if [round(float(s), 6) for s in saved.tolist()] != [round(s, 6) for s in self.sigma_rels]:
            return (f"the checkpoint's profiles are sigma_rel {', '.join(f'{s:g}' for s in saved.tolist())}, "
                    f"the config asks for {', '.join(f'{s:g}' for s in self.sigma_rels)}")
        loaded = []
        for i, profile in enumerate(self.profiles):
            part = {}
            for k, v in profile.items():
                got = tensors.get(f"{STATE_PREFIX}{i}.{k}")
                if got is None or got.shape != v.shape:
                    return f"its tensor {STATE_PREFIX}{i}.{k} is missing or of another shape"
                part[k] = got
            loaded.append(part)
        for profile, part in zip(self.profiles, loaded):
            for k, v in part.items():
                profile[k].copy_(v)
        return None

    # ---- snapshots -----------------------------------------------------------------------------
    def snapshot(self, run_dir: str | Path, step: int) -> Path:
        """phema/step_NNNNNN.safetensors (every profile) and its JSON, written last, each atomically."""
        self._sync_buffers()
        stem = snapshot_stem(run_dir, step)
        stem.parent.mkdir(parents=True, exist_ok=True)
        flat = {f"{i}.{k}": v.detach().cpu().contiguous() for i, p in enumerate(self.profiles) for k, v in p.items()}
        st_path, js_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
        atomic_write_bytes(st_path, st_save(flat))
        atomic_write_json(js_path, {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "step": step,
                                    "family": self.family_name, "sigma_rels": self.sigma_rels,
                                    "gammas": self.gammas, "buffers": self._copied})
        return st_path


def start(training, family, run_dir: Path, tensors: dict[str, torch.Tensor] | None, step: int,
          emit: Callable[[dict], None], writes: bool) -> PowerEMA | None:
    """The run's post-hoc EMA (None when training.posthoc_ema is off), its profiles restored from a
    resumed checkpoint's `tensors`. `writes` (rank 0): snapshots after `step`, written by an
    attempt that did not reach a checkpoint, are removed (training writes them again)."""
    if not training.posthoc_ema:
        return None
    tracker = PowerEMA(family, training.posthoc_ema)
    if tensors is not None:
        why = tracker.restore(tensors)
        if why:
            # from the weights of now: θ_step then stands in for the steps before it, with the weight
            # (step/t)^(γ+1) a profile gives them, and the snapshots already written stay valid
            emit(protocol.event("warning", message=f"training.posthoc_ema: the power-function EMA profiles start "
                                                   f"again at step {step} from the weights of that step: {why}"))
    if writes:
        for s, path in snapshots(run_dir):
            if s > step:
                for p in (path.with_suffix(".json"), path):   # JSON first: a half-removed snapshot is incomplete
                    p.unlink(missing_ok=True)
    return tracker


# ---- reading snapshots back ----------------------------------------------------------------------
class SnapshotError(ValueError):
    """A snapshot that cannot be read: one line naming the file."""


def read_snapshot_meta(path: Path) -> dict:
    js = Path(path).with_suffix(".json")
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SnapshotError(f"{js}: cannot read the post-hoc EMA snapshot's metadata ({e})") from None
    sig = meta.get("sigma_rels") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{js}: not a GenLab post-hoc EMA snapshot")
    if not (isinstance(meta.get("step"), int) and meta["step"] >= 1) or not (
            isinstance(sig, list) and sig and all(isinstance(s, (int, float)) for s in sig)):
        raise SnapshotError(f"{js}: its 'step' or 'sigma_rels' field is missing or wrong")
    return meta


def read_snapshot_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(Path(path).read_bytes())
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read it ({e.strerror})") from None
    except Exception as e:  # safetensors raises its own error types
        raise SnapshotError(f"{path}: cannot read safetensors ({str(e).splitlines()[0][:200]})") from None
