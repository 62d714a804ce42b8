"""A failed open keeps what was open, and its message names the real problem (issue 20).

A request that names a checkpoint that cannot be loaded (missing, cut short, not a checkpoint at
all, tensors of another family than its JSON names) is answered with one line, and the model the
worker held before stays loaded: the next request runs on it. The family messages: a checkpoint
whose JSON names another family than its tensors is refused naming both families, not through a
leftover field of the old family's section."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from engine.core.pnginfo import read_png_info
from engine.training import checkpoint as ck
from engine.worker import Worker


def _copy(ckpt: Path, dest: Path) -> Path:
    """A copy of a checkpoint (both files) under dest/checkpoints/, so a test may damage it."""
    dest.mkdir(parents=True, exist_ok=True)
    st, js = ck.checkpoint_paths(ckpt)
    shutil.copy(st, dest / st.name)
    shutil.copy(js, dest / js.name)
    return dest / st.name


def _broken(kind: str, tiny_runs, tmp_path: Path) -> tuple[Path, str]:
    """A checkpoint that cannot be loaded, and words its one-line error must hold."""
    if kind == "missing":
        return tmp_path / "gone" / "step_000002.safetensors", "checkpoint not found"
    if kind == "truncated":
        path = _copy(tiny_runs["vae"].checkpoint, tmp_path / "cut")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "cannot read safetensors"
    if kind == "not a checkpoint":   # an image renamed, beside a JSON that is no GenLab checkpoint's
        path = tmp_path / "photo" / "step_000002.safetensors"
        path.parent.mkdir()
        Image.new("RGB", (8, 8), (200, 10, 10)).save(path, format="PNG")
        path.with_suffix(".json").write_text(json.dumps({"hello": "world"}))
        return path, "not a GenLab checkpoint"
    if kind == "tensors of another family":   # a VAE's JSON beside a Glow's tensors
        path = _copy(tiny_runs["glow"].checkpoint, tmp_path / "mixed")
        shutil.copy(ck.checkpoint_paths(tiny_runs["vae"].checkpoint)[1], path.with_suffix(".json"))
        return path, "its tensors are a glow model's, but its JSON"
    raise AssertionError(kind)


def _one_line(ev: dict) -> bool:
    return "\n" not in ev["message"] and "Traceback" not in ev["message"] and "internal error" not in ev["message"]


@pytest.mark.parametrize("kind", ["missing", "truncated", "not a checkpoint", "tensors of another family"])
def test_a_checkpoint_that_cannot_be_loaded_leaves_the_loaded_model_serving(tiny_runs, tmp_path, kind):
    a = tiny_runs["ddpm"].checkpoint
    bad, words = _broken(kind, tiny_runs, tmp_path)
    events = []
    w = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    w.handle({"id": 1, "op": "load", "checkpoint": str(a)})
    assert events[-1]["event"] == "ready" and w.session.checkpoint == a
    held = w.session

    # a load request for it: one line naming the problem; the DDPM stays
    w.handle({"id": 2, "op": "load", "checkpoint": str(bad)})
    ev = events[-1]
    assert ev["event"] == "error" and ev["id"] == 2 and words in ev["message"] and _one_line(ev), ev
    assert w.session is held and w.family.name == "ddpm"

    # an op naming it: refused the same way, and it does not run on anything else
    w.handle({"id": 3, "op": "sample", "checkpoint": str(bad), "n": 1, "out": str(tmp_path / "no.png")})
    ev = events[-1]
    assert ev["event"] == "error" and ev["id"] == 3 and words in ev["message"] and _one_line(ev), ev
    assert not (tmp_path / "no.png").exists() and w.session is held

    # the next request runs on the model that was loaded all along
    out = tmp_path / "grid.png"
    w.handle({"id": 4, "op": "sample", "n": 2, "seed": 1, "out": str(out)})
    ev = events[-1]
    assert ev["event"] == "result" and ev["id"] == 4, ev
    info = read_png_info(out)
    assert info["checkpoint"] == str(a) and info["family"] == "ddpm"


def test_a_json_that_names_another_family_than_its_tensors_names_both(tiny_runs, tmp_path):
    # the safetensors header records the family of its tensors: the JSON of a VAE beside them is refused
    path = _copy(tiny_runs["glow"].checkpoint, tmp_path / "mixed")
    assert ck.load_checkpoint(path).tensor_family == "glow"
    shutil.copy(ck.checkpoint_paths(tiny_runs["vae"].checkpoint)[1], path.with_suffix(".json"))
    with pytest.raises(ck.CheckpointError) as e:
        ck.family_from_checkpoint(path, "cpu")
    msg = str(e.value)
    assert msg == (f"{path}: its tensors are a glow model's, but its JSON (step_000002.json) names "
                   f"model.family = 'vae': the two files are not of the same checkpoint (edited, or copied "
                   f"from another run?)")
    # the same survives the trip to the other ranks of a distributed run
    with pytest.raises(ck.CheckpointError, match="its tensors are a glow model's"):
        ck.from_bytes(ck.to_bytes(ck.Checkpoint(json.loads(path.with_suffix(".json").read_text()),
                                                ck.load_checkpoint(tiny_runs["glow"].checkpoint).tensors,
                                                path, "glow")))


def test_a_checkpoint_written_before_tensors_named_their_family_is_told_by_its_networks(tiny_runs, tmp_path):
    # no family in the header (as every checkpoint before issue 20): the networks tell the families apart
    glow = ck.load_checkpoint(tiny_runs["glow"].checkpoint)
    vae_meta = json.loads(ck.checkpoint_paths(tiny_runs["vae"].checkpoint)[1].read_text())
    stem = tmp_path / "old" / "step_000002"
    stem.parent.mkdir()
    ck.atomic_write_bytes(stem.with_suffix(".safetensors"), ck.st_save(glow.tensors))   # no metadata
    stem.with_suffix(".json").write_text(json.dumps(vae_meta))
    with pytest.raises(ck.CheckpointError) as e:
        ck.family_from_checkpoint(stem.with_suffix(".safetensors"), "cpu")
    msg = str(e.value)
    assert "its tensors hold the networks flow, but a vae model (the family its JSON names) has decoder, encoder" \
        in msg and "\n" not in msg


def test_a_json_whose_family_was_edited_names_the_family_its_fields_belong_to(tiny_runs, tmp_path):
    # model.family changed by hand, the glow fields left: the line names both families, not "unknown field"
    path = _copy(tiny_runs["glow"].checkpoint, tmp_path / "edited")
    js = path.with_suffix(".json")
    meta = json.loads(js.read_text())
    meta["config"]["model"]["family"] = "vae"
    js.write_text(json.dumps(meta))
    with pytest.raises(ck.CheckpointError) as e:
        ck.peek_checkpoint(path).config
    msg = str(e.value)
    assert msg.startswith(f"{js}: its config is not valid here: unknown field model.") and \
        "of a vae model: the model section holds glow's fields (" in msg and "while model.family = 'vae'" in msg, msg


def test_set_model_family_on_a_preset_of_another_family_switches_to_its_defaults_or_names_both(tmp_path, capsys):
    """--set model.family=X on another family's preset is handled: X's model and sampling defaults
    (the old family's fields mean nothing to X), the grid, data, training and metrics kept, and a
    note that says so; where X's defaults do not fit the preset's data, the error names both families."""
    from engine.cli.main import main
    from engine.core.config import RunConfig
    run = tmp_path / "vae-from-glow"
    assert main(["train", "--preset", "glow-digits", "--set", "model.family=vae", "--set", "training.batch_size=8",
                 "--set", "sampling.grid_size=4", "--steps", "1", "--run-dir", str(run), "--no-stdin",
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert ("note: --set model.family=vae on glow's preset glow-digits: the model and sampling sections start "
            "from vae's defaults (grid settings kept); data, training and metrics stay as they were") in err
    cfg = RunConfig.load(run / "config.toml", stored=True)
    assert cfg.family == "vae" and cfg.data.holdout == 0.1 and cfg.training.grad_clip == 50.0
    assert cfg.sampling.grid_size == 4
    # hvae's default levels do not fit ddpm-shapes' 32x32 images: one line naming both families
    assert main(["train", "--preset", "ddpm-shapes", "--set", "model.family=hvae", "--run-dir",
                 str(tmp_path / "no"), "--no-stdin"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genlab-engine: error: model.family = 'hvae' replaces 'ddpm' (the model and sampling "
                          "sections start from hvae's defaults): model.decoder_groups") and "\n" not in err
    assert not (tmp_path / "no").exists()
