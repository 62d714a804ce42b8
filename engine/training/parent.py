"""Loading a run's parent checkpoint (two-stage runs: latent diffusion over a VAE, a prior over a
tokenizer), checked: a missing parent, one of a family the child does not accept, one trained on
other images than the child's, or one whose weights file changed since the child trained on it is
a ConfigError in one line naming the file. The parent is frozen (engine/family/parent.py) and never
becomes part of the child's weights; the child's checkpoints record its path and hash.

Also the default parent: a preset may name `default_parent_preset`; `genlab-engine train` without
a parent trains that preset first (on the child's data) and uses it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.core.config import RunConfig, load_preset
from engine.core.parents import DEFAULT_PARENT_PRESET, checkpoint_run_dir, parent_of, takes_parent
from engine.core.schema import ConfigError
from engine.family.base import Family, family_class
from engine.family.parent import ENCODED_DIR, Parent, file_sha256, freeze
from engine.runs.rundir import RunDir
from engine.training import checkpoint as ck


def resolve_parent(path: str | Path) -> Path:
    """The parent's checkpoint file: the path itself (.safetensors, .json or the stem), or a run
    folder's newest checkpoint."""
    p = Path(path).expanduser()
    if p.is_dir():
        if not (p / "config.toml").is_file():
            raise ConfigError(f"{p}: model.parent is a folder but not a run folder (no config.toml)")
        newest = RunDir(p).latest_checkpoint()
        if newest is None:
            raise ConfigError(f"{p}: model.parent names a run that has no checkpoint yet")
        return newest.resolve()
    st = ck.checkpoint_paths(p)[0]
    if not st.is_file():
        raise ConfigError(f"{st}: model.parent: parent checkpoint not found")
    return st.resolve()


def check_parent(cfg: RunConfig, *, channels: int | None = None, resolution: int | None = None) -> Path:
    """The parent's checkpoint file, checked against the child from its JSON alone (no tensors
    read): its family, and its images (channels and resolution, when given)."""
    child = family_class(cfg.family)
    path_text = parent_of(cfg.model)
    if not path_text:
        raise ConfigError(f"model.parent is empty: a {child.name} model trains on a parent checkpoint of family "
                          f"{' or '.join(child.parent_families)}; give one (--parent PATH, or a run folder)")
    path = resolve_parent(path_text)
    try:
        meta = ck.peek_checkpoint(path).meta
    except ck.CheckpointError as e:
        raise ConfigError(f"model.parent: {e}") from None
    family = ck.json_family(meta)
    if family not in child.parent_families:
        raise ConfigError(f"{path}: a {family} checkpoint cannot be the parent of a {child.name} model; it takes "
                          f"a parent of family {' or '.join(child.parent_families)}")
    data = meta["data"]
    if channels is not None and resolution is not None and (data["channels"], data["resolution"]) != (
            channels, resolution):
        raise ConfigError(f"{path}: the parent was trained on {data['channels']}-channel {data['resolution']}px "
                          f"images, this run's data are {channels}-channel {resolution}px; set data.resolution "
                          f"and data.color as the parent's")
    return path


def load_parent(cfg: RunConfig, device="cpu", *, channels: int | None = None, resolution: int | None = None,
                expected: dict | None = None) -> Parent | None:
    """The run's parent, loaded frozen on `device`; None for a family that takes no parent. Refused
    as check_parent says, and, for a child that has trained on it (`expected`: the record in the
    child's checkpoint), when the file's content hash is not the one recorded."""
    if not family_class(cfg.family).wants_parent(cfg.model):
        return None
    path = check_parent(cfg, channels=channels, resolution=resolution)
    sha = file_sha256(path)
    if expected and expected.get("sha256") and expected["sha256"] != sha:
        raise ConfigError(f"{path}: the parent checkpoint changed since this run trained on it (sha256 "
                          f"{str(expected['sha256'])[:12]}… then, {sha[:12]}… now); put the original file back "
                          f"or train a new run on this parent")
    try:
        fam, ckpt = ck.family_from_checkpoint(path, str(device))
    except ck.CheckpointError as e:
        raise ConfigError(f"model.parent: {e}") from None
    return Parent(freeze(fam), path, sha, fam.name, ckpt.step, checkpoint_run_dir(path))


def load_run_parent(cfg: RunConfig, ckpt: ck.Checkpoint | None, device, data,
                    phase: Callable[[str], None]) -> tuple[Parent | None, RunConfig]:
    """The training run's parent checkpoint, frozen (None for a family that takes none), and the
    run's config. A run that starts records the checkpoint file in model.parent (a run folder named
    there becomes its newest checkpoint); a resumed one (ckpt) must find it as its checkpoint
    recorded it. data: the run's dataset (its images must be the parent's)."""
    expected = ckpt.meta.get("parent") if ckpt is not None else None
    if not family_class(cfg.family).wants_parent(cfg.model):
        return None, cfg
    phase("loading the parent checkpoint")
    parent = load_parent(cfg, device, channels=data.channels, resolution=data.resolution,
                         expected=expected if isinstance(expected, dict) else None)
    if parent_of(cfg.model) != str(parent.path):
        cfg = cfg.replace(model={"parent": str(parent.path)})
    return parent, cfg


def prepare_data_with_parent(family: Family, parent: Parent, cfg: RunConfig, data, run_dir: Path,
                             phase: Callable[[str], None], say: Callable[[str], None]) -> None:
    """The family's once-before-training pass over the data with its parent (Family.prepare_data:
    ldm encodes the images, reflow draws its pairs), cached in the run's encoded/ folder."""
    phase(f"preparing the data with the parent {parent.path.name}")
    family.prepare_data(data.images, data.labels, cache_dir=run_dir / ENCODED_DIR,
                        data_config=cfg.to_dict()["data"], hflip=cfg.data.hflip, say=say)


def with_default_parent(cfg: RunConfig, runs_root: str | Path, say: Callable[[str], None],
                        emit: Callable[[dict], None] | None = None) -> RunConfig:
    """cfg, or, when it takes a parent, names none and has a default_parent_preset: that preset
    trained first (on cfg's data and device, in runs_root) and cfg with the new run as its parent.
    The parent's training reads no commands from stdin: a reader thread would outlive it and take
    the child's (the app's Stop ends this phase by ending the process; the parent run resumes)."""
    model = cfg.to_dict()["model"]
    preset = model.get(DEFAULT_PARENT_PRESET) or ""
    if not takes_parent(model) or parent_of(model) or not preset or not family_class(cfg.family).wants_parent(model):
        return cfg
    from engine.runs.rundir import new_run_dir
    from engine.training.loop import train
    pcfg = load_preset(preset).replace(data=cfg.to_dict()["data"], training={"device": cfg.training.device})
    run_dir = new_run_dir(runs_root, pcfg.name)
    say(f"no parent given: training the default parent preset {preset!r} first ({pcfg.training.steps} steps) "
        f"into {run_dir}")
    res = train(pcfg, run_dir, emit=emit or (lambda e: None))
    if res.state != "finished":
        raise ConfigError(f"the default parent {preset!r} did not finish ({res.state}: {res.message}); "
                          f"its run folder: {run_dir}")
    say(f"parent {preset!r} trained: {res.last_checkpoint}")
    return cfg.replace(model={"parent": str(run_dir)})
