"""Parent checkpoints of two-stage runs (engine/training/parent.py, engine/family/parent.py), with
latent diffusion (engine/families/ldm) over a tiny VAE as the example: a missing, wrong-family or
changed parent is one line naming the file; the run records its parent (config, checkpoints, runs
index); the parent stays frozen and out of the child's weights; the dataset is encoded once and the
cache is reused on resume; a preset's default parent is trained first when none is given."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.core.parents import checkpoint_run_dir
from engine.core.schema import ConfigError
from engine.family.parent import ENCODED_DIR, file_sha256
from engine.runs.index import RunsIndex
from engine.training import checkpoint as ck
from engine.training.loop import Trainer, train
from engine.training.parent import with_default_parent
from tests.conftest import TINY_RES, tiny_family_config, tiny_parent


def copied_parent(tmp_path):
    """A copy of the session's tiny VAE checkpoint (its two files) that a test may change."""
    src = tiny_parent("vae")
    dest = tmp_path / "parent" / src.name
    dest.parent.mkdir()
    for a in ck.checkpoint_paths(src):
        shutil.copy(a, dest.parent / a.name)
    return dest


def child(tmp_path, parent, **training):
    return tiny_family_config("ldm", **training).replace(model={"parent": str(parent)})


def one_line(msg: str) -> str:
    assert "\n" not in msg, msg
    return msg


# ---- refused parents -----------------------------------------------------------------------------
def test_a_missing_parent_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "step_000002.safetensors"
    res = train(child(tmp_path, missing), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed"
    assert str(missing) in one_line(res.message) and "not found" in res.message


def test_an_empty_parent_says_what_the_family_needs(tmp_path):
    res = train(tiny_family_config("ldm").replace(model={"parent": ""}), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed" and "model.parent is empty" in one_line(res.message) and "vae" in res.message


def test_a_wrong_family_parent_is_one_line_naming_the_file(tmp_path, tiny_runs):
    ddpm = tiny_runs["ddpm"].checkpoint
    res = train(child(tmp_path, ddpm), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed"
    assert str(ddpm.resolve()) in one_line(res.message)
    assert "a ddpm checkpoint cannot be the parent of a ldm model" in res.message


def test_a_parent_of_other_images_is_refused(tmp_path):
    cfg = child(tmp_path, tiny_parent("vae")).replace(data={"resolution": 2 * TINY_RES})
    res = train(cfg, tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed" and "8px" in one_line(res.message) and "16px" in res.message


# ---- a child run and its parent ------------------------------------------------------------------
@pytest.fixture(scope="module")
def child_run(tmp_path_factory):
    """A tiny ldm run on a run folder of a tiny VAE (resolved to its newest checkpoint), stopped at
    step 1 and resumed to 2: (trainer of the resumed part, run dir, parent checkpoint, encoded
    files and their mtimes after the first part)."""
    root = tmp_path_factory.mktemp("child")
    parent_ckpt = tiny_parent("vae")
    parent_run = checkpoint_run_dir(parent_ckpt)
    before = {k: v.clone() for k, v in load_file(parent_ckpt).items()}
    cfg = tiny_family_config("ldm").replace(model={"parent": str(parent_run)})
    first = Trainer(cfg, root / "ldm", emit=lambda e: None)
    assert first.run(until_step=1).state == "stopped"
    assert first.family.encoded_from_cache is False
    encoded = sorted((root / "ldm" / ENCODED_DIR).glob("*.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in encoded]
    resumed = Trainer(cfg, root / "ldm", resume=True, emit=lambda e: None)
    res = resumed.run()
    assert res.state == "finished", res.message
    return resumed, root / "ldm", parent_ckpt, encoded, mtimes, before


def test_the_run_records_its_parent_in_config_checkpoint_and_runs_index(child_run):
    trainer, run_dir, parent_ckpt, *_ = child_run
    cfg_text = (run_dir / "config.toml").read_text()
    assert f'parent = "{parent_ckpt.resolve()}"' in cfg_text     # the run folder became its checkpoint
    meta = json.loads(ck.checkpoint_paths(trainer.last_ckpt)[1].read_text())
    assert meta["parent"]["path"] == str(parent_ckpt.resolve())
    assert meta["parent"]["sha256"] == file_sha256(parent_ckpt)
    assert meta["parent"]["family"] == "vae" and meta["parent"]["run"] == str(checkpoint_run_dir(parent_ckpt))
    s = RunsIndex().summary(run_dir)
    assert s.parent == str(parent_ckpt.resolve()) and s.parent_run == checkpoint_run_dir(parent_ckpt)


def test_the_parent_is_frozen_and_never_saved_into_the_child(child_run):
    trainer, _, parent_ckpt, _, _, before = child_run
    vae = trainer.family.parent.family
    assert all(not p.requires_grad for p in vae.networks.parameters())
    assert not vae.networks.training
    after = load_file(parent_ckpt)
    assert all(torch.equal(before[k], after[k]) for k in before)   # its file untouched
    saved = ck.load_checkpoint(trainer.last_ckpt).tensors
    nets = {k.split(".")[1] for k in saved if k.startswith(("net.", "ema."))}
    assert nets == {"denoiser"}, nets
    assert trainer.family.num_parameters() == sum(p.numel() for p in trainer.family.networks.parameters())


def test_the_dataset_is_encoded_once_and_the_cache_reused_on_resume(child_run):
    trainer, run_dir, _, encoded, mtimes, _ = child_run
    assert len(encoded) == 1
    assert trainer.family.encoded_from_cache is True
    assert sorted((run_dir / ENCODED_DIR).glob("*.safetensors")) == encoded
    assert [p.stat().st_mtime_ns for p in encoded] == mtimes
    latents = load_file(encoded[0])["mean"]
    assert latents.shape == (len(trainer.data), trainer.family.latent_dim)
    # the scale factor is 1/std of those latents, and the checkpoint carries it
    assert trainer.family.latent_scale == pytest.approx(1 / float(latents.std()), rel=1e-5)
    fam, _ = ck.family_from_checkpoint(trainer.last_ckpt, "cpu")
    assert fam.latent_scale == pytest.approx(trainer.family.latent_scale)


def test_samples_decode_through_the_parent_to_finite_images_of_the_datas_shape(child_run):
    trainer, *_ = child_run
    fam, _ = ck.family_from_checkpoint(trainer.last_ckpt, "cpu")
    x = fam.sample(4, seed=1, labels=[0, 1, 2, 3], guidance_scale=2.0)
    assert x.shape == (4, 1, TINY_RES, TINY_RES) and torch.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1


def test_a_changed_parent_is_caught_on_load_and_on_resume(tmp_path):
    parent = copied_parent(tmp_path)
    cfg = child(tmp_path, parent, steps=2)
    assert train(cfg, tmp_path / "run", emit=lambda e: None).state == "finished"
    last = ck.checkpoint_paths(sorted((tmp_path / "run" / "checkpoints").glob("*.safetensors"))[-1])[0]
    # the same file, its weights changed (e.g. the parent run was continued into it)
    tensors = load_file(parent)
    key = next(k for k in tensors if k.startswith("net.") and tensors[k].is_floating_point())
    tensors[key] = tensors[key] + 1
    save_file(tensors, parent, metadata={ck.TENSOR_FAMILY: "vae"})
    with pytest.raises(ConfigError) as e:
        ck.family_from_checkpoint(last, "cpu")
    assert str(parent.resolve()) in one_line(str(e.value)) and "changed since this run trained on it" in str(e.value)
    res = Trainer(cfg.replace(training={"steps": 3}), tmp_path / "run", resume=True, emit=lambda e: None).run()
    assert res.state == "failed" and "changed since this run trained on it" in res.message


# ---- the default parent ------------------------------------------------------------------------------
def test_without_a_parent_the_default_parent_preset_is_trained_first_and_used(tmp_path, monkeypatch):
    import engine.training.parent as parent_mod
    tiny_vae = tiny_family_config("vae")
    asked = []
    monkeypatch.setattr(parent_mod, "load_preset", lambda name: asked.append(name) or tiny_vae)
    cfg = tiny_family_config("ldm").replace(model={"parent": "", "default_parent_preset": "vae-digits"})
    said = []
    got = with_default_parent(cfg, tmp_path / "runs", said.append)
    assert asked == ["vae-digits"]
    assert "training the default parent preset 'vae-digits' first" in said[0]
    parent_run = checkpoint_run_dir(got.model.parent)
    assert parent_run is not None and parent_run.parent == tmp_path / "runs"
    assert train(got, tmp_path / "child", emit=lambda e: None).state == "finished"
    # a parent given, or a family that takes none: nothing is trained
    assert with_default_parent(got, tmp_path / "runs", said.append) is got
    assert len(said) == 2


def test_cli_parent_flag_is_refused_for_a_family_without_parents(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "engine", "train", "--preset", "ddpm-digits", "--parent", "x",
                          "--runs-root", str(tmp_path), "--no-stdin"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "--parent x: a ddpm model takes no parent checkpoint" in out.stderr
