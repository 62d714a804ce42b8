"""Checkpoints: safetensors for tensors plus a JSON for everything else, each written atomically.
Nothing is ever unpickled. The JSON is written last: a checkpoint without its JSON is incomplete."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.config import RunConfig
from engine.util import atomic_write_bytes, atomic_write_json

FORMAT = "genlab-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    pass


@dataclass
class Checkpoint:
    meta: dict
    tensors: dict[str, torch.Tensor] = field(repr=False)

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.meta["config"], stored=True)

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix)
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def checkpoint_paths(stem: Path) -> tuple[Path, Path]:
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def optimizer_to_flat(name: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Optimizer state as (tensors, json): per-parameter tensors by key, the rest as JSON."""
    sd = opt.state_dict()
    tensors, js_state = {}, {}
    for idx, st in sd["state"].items():
        js_state[str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{name}.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                js_state[str(idx)][k] = v
    return tensors, {"param_groups": sd["param_groups"], "state": js_state}


def optimizer_from_flat(name: str, js: dict, ckpt: Checkpoint) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in js["state"].items()}
    prefix = f"optim.{name}."
    for k, v in ckpt.tensors.items():
        if k.startswith(prefix):
            idx, key = k[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[key] = v
    return {"state": state, "param_groups": js["param_groups"]}


def save_checkpoint(stem: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    st_path, js_path = checkpoint_paths(stem)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(st_path, st_save(flat))
    meta = {"format": FORMAT, "version": VERSION, **meta}
    atomic_write_json(js_path, meta)
    return st_path


def load_checkpoint(path: str | Path) -> Checkpoint:
    st_path, js_path = checkpoint_paths(Path(path))
    if not st_path.is_file():
        raise CheckpointError(f"{st_path}: checkpoint not found")
    if not js_path.is_file():
        raise CheckpointError(f"{js_path}: the checkpoint's metadata file is missing (incomplete checkpoint?)")
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{js_path}: not valid JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{js_path}: not a GenLab checkpoint")
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(f"{js_path}: written by a newer GenLab (format version {meta['version']})")
    try:
        tensors = st_load(st_path.read_bytes())
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{st_path}: cannot read safetensors ({e})") from None
    return Checkpoint(meta, tensors)


def rng_tensors(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    out = {"rng.torch_cpu": torch.get_rng_state(), "rng.noise": generator.get_state()}
    if device.type == "cuda":
        out["rng.torch_cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rng(ckpt: Checkpoint, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(ckpt.tensors["rng.torch_cpu"])
    generator.set_state(ckpt.tensors["rng.noise"])
    if device.type == "cuda" and "rng.torch_cuda" in ckpt.tensors:
        torch.cuda.set_rng_state(ckpt.tensors["rng.torch_cuda"], device)


def load_weights_into(family: Any, ckpt: Checkpoint) -> None:
    family.networks.load_state_dict(ckpt.prefixed("net."))
    ema = ckpt.prefixed("ema.")
    if family.ema is not None:
        if ema:
            family.ema.load_state_dict(ema)
        else:  # a checkpoint without averages: start them from the live weights
            for name, averaged in family.ema.items():
                averaged.load_state_dict(family.networks[name].state_dict())


def family_from_checkpoint(path: str | Path, device: str = "auto"):
    """Build the family a checkpoint was trained as and load its weights, for sampling."""
    from engine.models import build_family
    from engine.training.device import select_device
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    data = ckpt.meta["data"]
    fam = build_family(cfg, data["channels"], data["resolution"], data["class_names"])
    load_weights_into(fam, ckpt)
    fam.to(select_device(device))
    return fam, ckpt
