"""Checkpoints: safetensors for tensors plus a JSON for everything else, each written atomically.
Nothing is ever unpickled. The JSON is written last: a checkpoint without its JSON is incomplete.

Every way a checkpoint can fail to load (a corrupt or foreign file, a sidecar missing a field, tensors
that do not fit the model) is a CheckpointError with one line naming the file and the problem. The
safetensors header records the family its tensors were saved as, so a JSON that names another
family (edited, or copied from another checkpoint) is refused naming both."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.core.config import ConfigError, RunConfig
from engine.core.families import DEFAULT_FAMILY
from engine.core.util import atomic_write_bytes, atomic_write_json

FORMAT = "genlab-checkpoint"
VERSION = 1
TENSOR_FAMILY = "genlab.family"   # key of the safetensors header's metadata: the family of its tensors


class CheckpointError(ValueError):
    pass


@dataclass
class Checkpoint:
    meta: dict
    tensors: dict[str, torch.Tensor] = field(repr=False)
    path: Path | None = None  # the .safetensors file it was read from
    tensor_family: str | None = None  # the family its tensors were saved as (None: written before it was recorded)

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "the checkpoint"

    @property
    def json_name(self) -> str:
        return str(checkpoint_paths(self.path)[1]) if self.path else "the checkpoint's JSON"

    @property
    def config(self) -> RunConfig:
        try:
            return RunConfig.from_dict(self.meta["config"], stored=True)
        except ConfigError as e:
            raise CheckpointError(f"{self.json_name}: its config is not valid here: {e}") from None

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix)
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def require(self, key: str, kind: type, what: str) -> Any:
        """meta[key], which must be a `kind` (the resume-only fields are checked where used)."""
        value = self.meta.get(key)
        if not isinstance(value, kind):
            raise CheckpointError(f"{self.json_name}: field {key!r} is {_missing_or(value)}; expected {what}")
        return value


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


def load_optimizer(name: str, opt: torch.optim.Optimizer, ckpt: Checkpoint) -> None:
    """Restore one optimizer's state, or a CheckpointError saying what did not fit."""
    saved = ckpt.require("optimizers", dict, "a table of optimizer states").get(name)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{ckpt.json_name}: has no state for optimizer {name!r} "
                              f"(it has: {', '.join(ckpt.meta['optimizers']) or 'none'})")
    try:
        opt.load_state_dict(optimizer_from_flat(name, saved, ckpt))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{ckpt.name}: the state of optimizer {name!r} does not fit this model "
                              f"({_first_line(e)})") from None


def save_checkpoint(stem: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    st_path, js_path = checkpoint_paths(stem)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(st_path, st_save(flat, metadata=_tensor_metadata(json_family(meta))))
    meta = {"format": FORMAT, "version": VERSION, **meta}
    atomic_write_json(js_path, meta)
    return st_path


def peek_checkpoint(path: str | Path) -> Checkpoint:
    """A checkpoint's JSON alone, checked as load_checkpoint checks it, without reading its tensors
    (cheap: e.g. to compare the configs of several checkpoints before loading any). The Checkpoint
    returned has no tensors."""
    st_path, js_path = checkpoint_paths(Path(path))
    if not st_path.is_file():
        raise CheckpointError(f"{st_path}: checkpoint not found")
    if not js_path.is_file():
        raise CheckpointError(f"{js_path}: the checkpoint's metadata file is missing (incomplete checkpoint?)")
    try:
        meta_text = js_path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{js_path}: cannot read it ({e.strerror})") from None
    return Checkpoint(_parse_meta(meta_text, js_path), {}, st_path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    meta = peek_checkpoint(path).meta
    st_path = checkpoint_paths(Path(path))[0]
    try:
        data = st_path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{st_path}: cannot read it ({e.strerror})") from None
    return _checked(Checkpoint(meta, _parse_tensors(data, st_path), st_path, _header_family(data)))


def _parse_meta(text: bytes, js_path: Path) -> dict:
    try:
        meta = json.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{js_path}: not valid JSON ({e})") from None
    _check_meta(meta, js_path)
    return meta


def json_family(meta: dict) -> str:
    """The family a checkpoint's JSON names (its config's model.family)."""
    model = (meta.get("config") or {}).get("model")
    return model.get("family", DEFAULT_FAMILY) if isinstance(model, dict) else DEFAULT_FAMILY


def _tensor_metadata(family: str | None) -> dict[str, str] | None:
    return {TENSOR_FAMILY: family} if family else None


def _header_family(data: bytes) -> str | None:
    """The family recorded in a safetensors file's header (None when it records none)."""
    try:
        n = int.from_bytes(data[:8], "little")
        family = json.loads(data[8:8 + n].decode("utf-8")).get("__metadata__", {}).get(TENSOR_FAMILY)
    except (ValueError, AttributeError):
        return None
    return family if isinstance(family, str) else None


def _checked(ckpt: Checkpoint) -> Checkpoint:
    """The checkpoint, unless its JSON names another family than its tensors were saved as."""
    named = json_family(ckpt.meta)
    if ckpt.tensor_family is not None and ckpt.tensor_family != named:
        raise CheckpointError(f"{ckpt.name}: its tensors are a {ckpt.tensor_family} model's, but its JSON "
                              f"({Path(ckpt.json_name).name}) names model.family = {named!r}: the two files are "
                              f"not of the same checkpoint (edited, or copied from another run?)")
    return ckpt


def _parse_tensors(data: bytes, st_path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(data)
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{st_path}: cannot read safetensors ({_first_line(e)})") from None


def to_bytes(ckpt: Checkpoint) -> bytes:
    """A loaded checkpoint as one byte string (to hand it to the other ranks of a distributed run):
    an 8-byte length, a JSON header (its path and metadata), then the safetensors bytes. No pickle."""
    head = json.dumps({"path": str(ckpt.path) if ckpt.path else None, "meta": ckpt.meta}).encode("utf-8")
    flat = {k: v.detach().cpu().contiguous() for k, v in ckpt.tensors.items()}
    return len(head).to_bytes(8, "little") + head + st_save(flat, metadata=_tensor_metadata(ckpt.tensor_family))


def from_bytes(data: bytes) -> Checkpoint:
    """The checkpoint to_bytes wrote, checked as load_checkpoint checks a file."""
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8:8 + n].decode("utf-8"))
    st_path = Path(head["path"]) if head.get("path") else Path("checkpoint.safetensors")
    meta = _parse_meta(json.dumps(head["meta"]).encode("utf-8"), checkpoint_paths(st_path)[1])
    return _checked(Checkpoint(meta, _parse_tensors(data[8 + n:], st_path),
                               Path(head["path"]) if head.get("path") else None, _header_family(data[8 + n:])))


def _check_meta(meta: Any, js_path: Path) -> None:
    """The fields every use of a checkpoint reads: a bad one is named here, not met as a KeyError."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{js_path}: not a GenLab checkpoint")
    version = meta.get("version", 0)
    if not _is_int(version):
        raise CheckpointError(f"{js_path}: field 'version' is {version!r}; expected an integer")
    if version > VERSION:
        raise CheckpointError(f"{js_path}: written by a newer GenLab (format version {version})")
    if not (_is_int(meta.get("step")) and meta["step"] >= 0):
        raise CheckpointError(f"{js_path}: field 'step' is {_missing_or(meta.get('step'))}; "
                              f"expected a whole number >= 0")
    for key in ("config", "data"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"{js_path}: field {key!r} is {_missing_or(meta.get(key))}; expected a table")
    data = meta["data"]
    for key, ok, what in (("channels", lambda v: _is_int(v) and v > 0, "a whole number > 0"),
                          ("resolution", lambda v: _is_int(v) and v > 0, "a whole number > 0"),
                          ("class_names", lambda v: isinstance(v, list), "a list of names")):
        if not ok(data.get(key)):
            raise CheckpointError(f"{js_path}: field 'data.{key}' is {_missing_or(data.get(key))}; expected {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _missing_or(value: Any) -> str:
    return "missing" if value is None else repr(value)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _rng_prefix(rank: int) -> str:
    """Random states of rank 0 (and of a single-process run) under rng.*, rank r under rng.rank{r}.*."""
    return "rng." if rank == 0 else f"rng.rank{rank}."


def rng_tensors(generator: torch.Generator, device: torch.device, rank: int = 0) -> dict[str, torch.Tensor]:
    p = _rng_prefix(rank)
    out = {f"{p}torch_cpu": torch.get_rng_state(), f"{p}noise": generator.get_state()}
    if device.type == "cuda":
        out[f"{p}torch_cuda"] = torch.cuda.get_rng_state(device)
    return out


def has_rng(ckpt: Checkpoint, rank: int) -> bool:
    return f"{_rng_prefix(rank)}noise" in ckpt.tensors


def restore_rng(ckpt: Checkpoint, generator: torch.Generator, device: torch.device, rank: int = 0) -> None:
    p = _rng_prefix(rank)
    try:
        torch.set_rng_state(ckpt.tensors[f"{p}torch_cpu"])
        generator.set_state(ckpt.tensors[f"{p}noise"])
        if device.type == "cuda" and f"{p}torch_cuda" in ckpt.tensors:
            torch.cuda.set_rng_state(ckpt.tensors[f"{p}torch_cuda"], device)
    except KeyError as e:
        raise CheckpointError(f"{ckpt.name}: tensor {e.args[0]} (random number state) is missing") from None
    except (RuntimeError, TypeError) as e:
        raise CheckpointError(f"{ckpt.name}: its random number state is not valid ({_first_line(e)})") from None


# ---- weights -------------------------------------------------------------------------------------
def load_weights_into(family: Any, ckpt: Checkpoint) -> None:
    """Load the networks (and EMA) of a checkpoint; a CheckpointError in one line when they do not fit."""
    nets, ema = ckpt.prefixed("net."), ckpt.prefixed("ema.")
    problem = _tensor_mismatch(family.networks.state_dict(), nets, "net.")
    if problem is None and family.ema is not None and ema:
        problem = _tensor_mismatch(family.ema.state_dict(), ema, "ema.")
    if problem is not None:
        raise CheckpointError(mismatch_message(ckpt, family, problem))
    try:
        family.networks.load_state_dict(nets)
        if family.ema is not None:
            if ema:
                family.ema.load_state_dict(ema)
            else:  # a checkpoint without averages: start them from the live weights
                for name, averaged in family.ema.items():
                    averaged.load_state_dict(family.networks[name].state_dict())
    except RuntimeError as e:  # keys and shapes fit: something rarer; never the raw multi-line text
        raise CheckpointError(f"{ckpt.name}: its weights cannot be loaded into this model "
                              f"({_first_line(e)})") from None


def _tensor_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], prefix: str) -> str | None:
    """The first difference between a model's state dict and a checkpoint's, in words, or None."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    reshaped = [k for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    count = len(missing) + len(unexpected) + len(reshaped)
    if not count:
        return None
    if reshaped:
        k = reshaped[0]
        first = (f"tensor {prefix}{k} has shape {list(got[k].shape)} in the checkpoint, "
                 f"the model's has {list(expected[k].shape)}")
    elif missing:
        first = f"the model's tensor {prefix}{missing[0]} is not in the checkpoint"
    else:
        first = f"the checkpoint's tensor {prefix}{unexpected[0]} is not in the model"
    more = f" ({count - 1} more tensors differ)" if count > 1 else ""
    return first + more


def mismatch_message(ckpt: Checkpoint, family: Any, tensor_problem: str) -> str:
    """Why a checkpoint does not fit: the config fields (model and data) that differ between the
    checkpoint and the family's config, or, when they agree, the first tensor that differs."""
    diffs = config_differences(ckpt.meta.get("config") or {}, family.cfg.to_dict(), ("model", "data"))
    if not any(k == "model.family" for k, _, _ in diffs):
        data = ckpt.meta.get("data") or {}
        if data.get("channels") != family.channels:
            diffs.append(("image channels", data.get("channels"), family.channels))
        if len(data.get("class_names") or []) != len(family.class_names):
            diffs.append(("classes", len(data.get("class_names") or []), len(family.class_names)))
    if not diffs:
        return _network_problem(ckpt, family) or f"{ckpt.name} does not fit this model: {tensor_problem}"
    if len(diffs) == 1:
        key, old, new = diffs[0]
        return f"{ckpt.name} was trained with {key} = {fmt_value(old)}, this config has {fmt_value(new)}"
    return (f"{ckpt.name} was trained with " + ", ".join(f"{k} = {fmt_value(o)}" for k, o, _ in diffs)
            + "; this config has " + ", ".join(f"{k} = {fmt_value(n)}" for k, _, n in diffs))


def _network_problem(ckpt: Checkpoint, family: Any) -> str | None:
    """When the checkpoint's tensors hold other networks than the family its JSON names (a JSON of
    another family's checkpoint, written before the tensors recorded their family): both, in words."""
    saved = sorted({k.split(".", 1)[0] for k in ckpt.prefixed("net.")})
    expected = sorted(family.networks.keys())
    if not saved or saved == expected:
        return None
    return (f"{ckpt.name}: its tensors hold the networks {', '.join(saved)}, but a {family.name} model (the family "
            f"its JSON names) has {', '.join(expected)}: its JSON and its tensors are not of the same model")


def config_differences(old: dict, new: dict, sections: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    """(section.field, old value, new value) for each field that differs, in the config's order.
    A field the old config lacks (written before the field existed) is not a difference. When the
    model family differs, that is the only model difference named."""
    old, new = _plain(old), _plain(new)
    out = []
    for section in sections:
        o, n = old.get(section), new.get(section)
        if not isinstance(o, dict) or not isinstance(n, dict):
            continue
        if section == "model" and o.get("family", DEFAULT_FAMILY) != n.get("family", DEFAULT_FAMILY):
            out.append(("model.family", o.get("family", DEFAULT_FAMILY), n.get("family", DEFAULT_FAMILY)))
            continue
        out += [(f"{section}.{k}", o[k], v) for k, v in n.items() if k in o and o[k] != v]
    return out


def _plain(d: Any) -> Any:
    """JSON-shaped (tuples become lists), so a stored config compares equal to a live one."""
    return json.loads(json.dumps(d))


def fmt_value(v: Any) -> str:
    return repr(v) if isinstance(v, str) else json.dumps(v)


def family_from_checkpoint(path: str | Path, device: str = "auto"):
    """Build the family a checkpoint was trained as and load its weights, for sampling."""
    from engine.family.base import build_family, family_class
    from engine.training.device import select_device
    ckpt = load_checkpoint(path)
    cfg = ckpt.config
    data = ckpt.meta["data"]
    parent = None
    if family_class(cfg.family).parent_families:   # a two-stage model: its parent as it trained on it
        from engine.training.parent import load_parent
        recorded = ckpt.meta.get("parent")
        parent = load_parent(cfg, select_device(device), channels=data["channels"], resolution=data["resolution"],
                             expected=recorded if isinstance(recorded, dict) else None)
    fam = build_family(cfg, data["channels"], data["resolution"], data["class_names"], parent=parent)
    load_weights_into(fam, ckpt)
    fam.to(select_device(device))
    return fam, ckpt
