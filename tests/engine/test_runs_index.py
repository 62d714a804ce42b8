"""The runs index (engine/runs/index.py): what the runs browser lists, and its file operations
(engine/runs/fileops.py)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core import util
from engine.core.config import RunConfig
from engine.runs.fileops import RunBusyError, default_trash_for, export_checkpoint, export_config, rename_run, trash
from engine.core.artifacts import ArtifactSpec, SAMPLES
from engine.runs.index import (RunsIndex, better, higher_is_better, list_artifact_images, list_samples, read_curves,
                               scan_runs)
from tests.conftest import tiny_config


def write_png(path: Path, shade: int, size: int = 8) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (shade, 255 - shade, 80)).save(path)


def make_run(root: Path, name: str, *, family: str = "ddpm", rows=(), status: dict | None = None,
             checkpoints=(), samples=(), dataset: str = "digits") -> Path:
    """A run directory written by hand, the way a shell-started or older run leaves it."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "samples").mkdir(exist_ok=True)
    cfg = tiny_config() if family == "ddpm" else RunConfig(name=name).replace(model={"family": family})
    cfg.replace(data={"dataset": dataset}).save(run / "config.toml")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if status is not None:
        (run / "status.json").write_text(json.dumps(status))
    for s in checkpoints:
        add_checkpoint(run, s)
    for s in samples:
        write_png(run / "samples" / f"step_{s:06d}.png", (s * 37) % 256)
    return run


def add_checkpoint(run: Path, step: int) -> Path:
    stem = run / "checkpoints" / f"step_{step:06d}"
    stem.with_suffix(".safetensors").write_bytes(b"\0" * 16)
    stem.with_suffix(".json").write_text(json.dumps({"step": step}))
    return stem.with_suffix(".safetensors")


def live_status(**kw) -> dict:
    """status.json of a run this very process trains (its pid is alive and older than the record)."""
    return {"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(), **kw}


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_trained_run_lists_with_state_family_steps_checkpoints_samples_and_loss(tmp_path):
    from engine.training.loop import train
    cfg = tiny_config(training={"steps": 10, "log_every": 2, "sample_every": 5, "checkpoint_every": 5})
    train(cfg, tmp_path / "runs" / "20240101-000000-tiny", listen_stdin=False, emit=lambda ev: None)
    make_run(tmp_path / "runs", "20230101-000000-old", family="gan", status={"state": "finished", "step": 3})
    (tmp_path / "runs" / "not-a-run").mkdir()          # no config, no status: not listed
    (tmp_path / "runs" / ".trash").mkdir()             # hidden: not listed

    runs = scan_runs(tmp_path / "runs")
    assert [r.name for r in runs] == ["20240101-000000-tiny", "20230101-000000-old"]   # newest first
    r = runs[0]
    assert (r.state, r.family, r.dataset, r.step, r.total_steps, r.live) == ("finished", "ddpm", "digits", 10, 10, False)
    assert [s for s, _ in r.checkpoints] == [5, 10] and all(p.is_file() for _, p in r.checkpoints)
    assert [s for s, _ in r.samples] == [0, 5, 10]
    assert r.loss_key == "loss/mse" and len(r.loss_tail) == 6 and all(v > 0 for v in r.loss_tail)
    curves = read_curves(r.path, ("loss/",))
    steps, times, values = curves["loss/mse"]
    assert list(steps) == [1, 2, 4, 6, 8, 10] and list(values) == pytest.approx(r.loss_tail)
    assert all(times[1:] >= times[:-1])
    assert runs[1].family == "gan" and runs[1].loss_key == "loss/D"
    assert scan_runs(tmp_path / "nowhere") == []


def test_best_metric_direction_legacy_names_and_a_short_loss_tail(tmp_path):
    rows = [{"step": s, "loss_d": 1.0 / s, "loss_g": 2.0} for s in range(1, 21)]
    rows[2].update(fid=30.0, precision=0.2)           # old bare names, outside the kept tail
    rows[9].update(fid=12.0, fid_std=0.1, precision=0.6)
    rows[15].update(fid=15.0, precision=0.4, recall=0.3)
    run = make_run(tmp_path, "gan-run", family="gan", rows=rows, status={"state": "finished", "step": 20})
    s = RunsIndex(tail=4).summary(run)
    assert s.best == {"quality/fid": (12.0, 10), "quality/precision": (0.6, 10), "quality/recall": (0.3, 16)}
    assert s.headline_metric() == ("quality/fid", 12.0, 10)
    assert s.loss_key == "loss/D" and s.loss_tail == pytest.approx([1 / 17, 1 / 18, 1 / 19, 1 / 20])
    # the rule, in one place
    assert not higher_is_better("quality/fd_domain") and not higher_is_better("quality/bits_per_dim")
    assert higher_is_better("quality/recall_domain") and higher_is_better("quality/is")
    assert better("quality/kid", 0.1, 0.2) and better("quality/precision", 0.7, 0.5)


def test_the_index_follows_a_growing_run_and_a_truncated_log(tmp_path):
    run = make_run(tmp_path, "live", rows=[{"step": 1, "loss/mse": 1.0}], status=live_status(step=1, total_steps=9),
                   samples=[0])
    index = RunsIndex()
    s = index.summary(run)
    assert s.live and s.state == "running" and s.loss_tail == [1.0] and [k for k, _ in s.samples] == [0]
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 2, "loss/mse": 0.5, "quality/fd_domain": 3.0}) + "\n")
        f.write('{"step": 3, "loss/m')                      # a line being written: not read yet
    add_checkpoint(run, 2)
    write_png(run / "samples" / "step_000002.png", 9)
    s = index.summary(run)
    assert s.loss_tail == [1.0, 0.5] and s.best == {"quality/fd_domain": (3.0, 2)}
    assert [k for k, _ in s.checkpoints] == [2] and [k for k, _ in s.samples] == [0, 2]
    # a resume dropped the lines after its checkpoint: the file is read again from its start
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss/mse": 0.9}) + "\n")
    assert index.summary(run).loss_tail == [0.9] and index.summary(run).best == {}
    # the process died: the next scan says so without any file changing
    (run / "status.json").write_text(json.dumps({**live_status(step=2), "pid": dead_pid()}))
    assert index.summary(run).state == "interrupted"
    assert index.summary(run).recorded_state == "running"


def test_an_artifacts_images_are_its_own_folders_and_the_samples_are_one_artifact(tmp_path):
    run = make_run(tmp_path, "vae", samples=[0, 10])
    for step in (0, 5, 10):
        write_png(run / "samples" / "recon" / f"step_{step:06d}.png", 40)
    (run / "samples" / "recon" / ".step_000015.png.1234.tmp").write_bytes(b"\x89PNG")   # being written: not listed
    (run / "samples" / "recon" / "notes.txt").write_text("not an image of a step")
    recon = ArtifactSpec("recon", "reconstructions", "samples/recon", "recon {step}")
    assert list_artifact_images(run, recon) == [(s, run / "samples" / "recon" / f"step_{s:06d}.png") for s in (0, 5, 10)]
    # the sample grids: samples/ itself, not the reconstructions in its subfolder
    assert list_samples(run) == list_artifact_images(run, SAMPLES) == [
        (0, run / "samples" / "step_000000.png"), (10, run / "samples" / "step_000010.png")]
    assert list_artifact_images(run, ArtifactSpec("hist", "histogram", "samples/hist", "{step}")) == []   # none yet


def test_wall_time_continues_across_a_resume(tmp_path):
    rows = [{"step": 1, "elapsed_s": 1.0, "loss/mse": 1}, {"step": 2, "elapsed_s": 2.0, "loss/mse": 1},
            {"step": 3, "elapsed_s": 0.5, "loss/mse": 1}, {"step": 4, "elapsed_s": 1.5, "loss/mse": 1, "lr": 0.1}]
    run = make_run(tmp_path, "resumed", rows=rows)
    steps, times, _ = read_curves(run, ("loss/mse",))["loss/mse"]
    assert list(times) == [1.0, 2.0, 2.5, 3.5]
    assert set(read_curves(run, ("lr", "loss/"))) == {"lr", "loss/mse"}


def test_rename_moves_the_folder_and_refuses_a_live_run_or_a_bad_name(tmp_path):
    run = make_run(tmp_path, "a", checkpoints=[4])
    (run / "status.json").write_text(json.dumps({"state": "finished", "step": 4,
                                                 "last_checkpoint": str(run / "checkpoints" / "step_000004.safetensors")}))
    new = rename_run(run, "better-name")
    assert new == tmp_path / "better-name" and not run.exists() and (new / "config.toml").is_file()
    assert json.loads((new / "status.json").read_text())["last_checkpoint"] == str(
        new / "checkpoints" / "step_000004.safetensors")
    for bad in ("", "x/y", "..", ".hidden"):
        with pytest.raises(ValueError):
            rename_run(new, bad)
    make_run(tmp_path, "taken")
    with pytest.raises(FileExistsError):
        rename_run(new, "taken")
    live = make_run(tmp_path, "live", status=live_status())
    with pytest.raises(RunBusyError, match="live run"):
        rename_run(live, "other")
    other_host = make_run(tmp_path, "cluster", status={"state": "running", "pid": 1, "host": "node-17"})
    with pytest.raises(RunBusyError, match="node-17"):
        rename_run(other_host, "other")
    assert live.is_dir() and other_host.is_dir()


def test_trash_keeps_what_a_file_manager_needs_to_restore_and_refuses_a_live_run(tmp_path):
    bin_ = tmp_path / "Trash"
    runs = tmp_path / "runs"
    a = make_run(runs, "a", status={"state": "finished"})
    moved = trash(a, bin_)
    assert not a.exists() and moved == bin_ / "files" / "a" and (moved / "config.toml").is_file()
    info = (bin_ / "info" / "a.trashinfo").read_text()
    assert info.startswith("[Trash Info]\n") and f"Path={a}" in info and "DeletionDate=" in info
    again = make_run(runs, "a")                           # the same name again: both are kept
    assert trash(again, bin_) == bin_ / "files" / "a.2" and (bin_ / "info" / "a.2.trashinfo").is_file()
    live = make_run(runs, "live", status=live_status())
    with pytest.raises(RunBusyError):
        trash(live, bin_)
    assert live.is_dir() and not (bin_ / "info" / "live.trashinfo").exists()


def test_the_default_trash_is_the_users_on_linux(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    run = make_run(tmp_path / "runs", "r")
    where = default_trash_for(run)
    if sys.platform.startswith("linux"):
        assert where == tmp_path / "data" / "Trash"
    else:
        assert where == tmp_path / "runs" / ".trash"


def test_exports_rerun_headless(tmp_path):
    run = make_run(tmp_path, "r", checkpoints=[7])
    out = export_config(run, tmp_path / "out.toml")
    assert out.read_text().startswith("# exported from") and "--config out.toml" in out.read_text()
    assert RunConfig.load(out).to_dict() == RunConfig.load(run / "config.toml", stored=True).to_dict()
    (tmp_path / "folder").mkdir()
    assert export_config(run, tmp_path / "folder") == tmp_path / "folder" / "r.toml"
    ck = export_checkpoint(run / "checkpoints" / "step_000007.safetensors", tmp_path / "mine.safetensors")
    assert ck.read_bytes() == b"\0" * 16 and json.loads(ck.with_suffix(".json").read_text()) == {"step": 7}
    with pytest.raises(FileNotFoundError):
        export_checkpoint(run / "checkpoints" / "step_000099.safetensors", tmp_path)


def test_an_export_that_fails_half_way_leaves_no_partial_file(tmp_path, monkeypatch):
    """A copy that dies part way (a full disk, a pulled drive) leaves the destination as it was,
    the earlier export included, and no temp file; the error names the destination."""
    run = make_run(tmp_path, "r", checkpoints=[7])
    ck = run / "checkpoints" / "step_000007.safetensors"
    ck.write_bytes(bytes(range(256)) * 64)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.safetensors").write_bytes(b"an earlier export")
    real_copy = shutil.copyfileobj

    def dies_half_way(src, dst, *args):
        if not src.name.endswith(".safetensors"):
            return real_copy(src, dst, *args)
        dst.write(src.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write(): no file name

    monkeypatch.setattr(util.shutil, "copyfileobj", dies_half_way)
    with pytest.raises(OSError) as e:
        export_checkpoint(ck, out / "mine.safetensors")
    monkeypatch.undo()
    assert e.value.filename == str(out / "mine.safetensors")
    assert (out / "mine.safetensors").read_bytes() == b"an earlier export"
    assert sorted(p.name for p in out.iterdir()) == ["mine.json", "mine.safetensors"]  # no temp file

    def no_room(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(util.os, "fsync", no_room)
    with pytest.raises(OSError):
        export_config(run, out / "r.toml")
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["mine.json", "mine.safetensors"]


def test_an_export_is_on_disk_file_and_folder_before_it_returns(tmp_path, monkeypatch):
    """Exports go through engine/core/util's atomic writes: the copy and the rename that puts it in
    place are fsynced (file, then folder), so a crash right after cannot leave an empty file."""
    run = make_run(tmp_path, "r", checkpoints=[7])
    synced = []
    real_fsync = os.fsync

    def recording(fd):
        synced.append(stat.S_IFMT(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(util.os, "fsync", recording)
    export_checkpoint(run / "checkpoints" / "step_000007.safetensors", tmp_path / "mine.safetensors")
    assert synced.count(stat.S_IFREG) == 2  # the .safetensors and its .json
    if sys.platform != "win32":
        assert synced.count(stat.S_IFDIR) == 2
    synced.clear()
    export_config(run, tmp_path / "r.toml")
    assert stat.S_IFREG in synced
    monkeypatch.undo()
    assert (tmp_path / "mine.safetensors").read_bytes() == b"\0" * 16
