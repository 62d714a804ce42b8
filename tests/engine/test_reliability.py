"""Reliability of the run directory and the training loop: every bad checkpoint or file-system
problem ends in one line naming the file, an interrupted run can always be continued, and nothing
stale or half-written is left behind."""
import errno
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from engine.core import util
from engine.family.base import build_family
from engine.families.ddpm.model import DDPMFamily
from engine.runs.rundir import RunDir, effective_status
from engine.training import checkpoint as ck
from engine.training.loop import Trainer, train
from tests.conftest import tiny_config


def one_line(text: str) -> bool:
    return "\n" not in text and "Traceback" not in text and "state_dict" not in text


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run (checkpoints at steps 10 and 20), copied by tests that change it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    res = train(tiny_config(training={"steps": 20, "checkpoint_every": 10}), run, emit=lambda e: None)
    assert res.state == "finished"
    return run


def copy_run(trained, tmp_path):
    return shutil.copytree(trained, tmp_path / "run")


# ---- 1. checkpoints that do not fit the model -----------------------------------------------------
def test_a_checkpoint_that_does_not_fit_the_model_gives_one_line(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    newest = RunDir(run).latest_checkpoint()
    status_before = json.loads((run / "status.json").read_text())

    # resume after editing the model in config.toml: names the field, keeps the run's record
    res = train(tiny_config(model={"base_channels": 16}), run, resume=True, emit=lambda e: None)
    assert res.state == "failed" and one_line(res.message), res.message
    assert res.message.startswith(f"{newest} was trained with model.base_channels = 8, this config has 16")
    status = json.loads((run / "status.json").read_text())
    assert status["step"] == 20 == status_before["step"] and status["state"] == "failed"
    assert status["last_checkpoint"] == status_before["last_checkpoint"]

    ckpt = ck.load_checkpoint(newest)
    # another family
    gan = build_family(tiny_config(model={"family": "gan", "g_channels": 8, "d_channels": 8, "max_channels": 16,
                                          "z_dim": 8}), 1, 8, [str(i) for i in range(10)])
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_weights_into(gan, ckpt)
    assert one_line(str(e.value)) and "was trained with model.family = 'ddpm', this config has 'gan'" in str(e.value)
    # other image channels (the data changed, the config did not)
    rgb = build_family(tiny_config(), 3, 8, [str(i) for i in range(10)])
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_weights_into(rgb, ckpt)
    assert one_line(str(e.value)) and "image channels = 1, this config has 3" in str(e.value)
    # an unrelated safetensors file beside a valid JSON: the configs agree, so the tensor is named
    save_file({"weight": torch.zeros(3)}, str(newest))
    with pytest.raises(ck.CheckpointError) as e:
        ck.family_from_checkpoint(newest, "cpu")
    msg = str(e.value)
    assert one_line(msg) and msg.startswith(f"{newest} does not fit this model: the model's tensor net.unet.")
    assert msg.endswith(f"is not in the checkpoint ({len(ckpt.prefixed('net.')) - 1} more tensors differ)")


# ---- 2. a bad JSON sidecar --------------------------------------------------------------------------
@pytest.mark.parametrize("edit, field", [
    (lambda m: m.pop("config"), "'config'"),
    (lambda m: m.pop("data"), "'data'"),
    (lambda m: m.update(step="abc"), "'step'"),
    (lambda m: m.update(step=2.5), "'step'"),
    (lambda m: m["data"].pop("channels"), "'data.channels'"),
])
def test_a_bad_json_sidecar_names_the_file_and_the_field(trained, tmp_path, edit, field):
    src = RunDir(trained).latest_checkpoint()
    st = shutil.copy(src, tmp_path / src.name)
    meta = json.loads(src.with_suffix(".json").read_text())
    edit(meta)
    js = tmp_path / src.with_suffix(".json").name
    js.write_text(json.dumps(meta))
    for load in (ck.load_checkpoint, lambda p: ck.family_from_checkpoint(p, "cpu")):
        with pytest.raises(ck.CheckpointError) as e:
            load(st)
        assert one_line(str(e.value)) and str(e.value).startswith(f"{js}: field {field}"), str(e.value)


# ---- 3. a run killed before its first checkpoint ---------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_starts_again_from_step_0(tmp_path):
    cfg = tiny_config(training={"steps": 10, "checkpoint_every": 0})
    run = tmp_path / "run"
    rd = RunDir(run).create()
    cfg.save(rd.config_path)  # what a kill at step 7 leaves: config, status "running", a curve, no checkpoint
    rd.write_status(state="running", step=7, pid=dead_pid(), total_steps=10)
    rd.append_metrics({"step": 5, "loss/mse": 1.0})
    events = []
    res = train(cfg, run, resume=True, emit=events.append)
    assert res.state == "finished" and res.step == 10, res.message
    assert any(e["event"] == "warning" and "no checkpoint yet" in e["message"] and "step 0" in e["message"]
               for e in events)
    steps = [json.loads(l)["step"] for l in rd.metrics_path.read_text().splitlines()]
    assert steps == [1, 5, 10]  # the killed attempt's row went; each step once (1: the first feedback)
    # a folder that holds no run at all is still refused, and is not created
    res = train(cfg, tmp_path / "nothing", resume=True, emit=lambda e: None)
    assert res.state == "failed" and "nothing to resume" in res.message and not (tmp_path / "nothing").exists()


def test_the_command_line_says_a_resumed_run_without_a_checkpoint_starts_from_step_0(tmp_path, capsys):
    from engine.cli.main import main
    run = tmp_path / "run"
    rd = RunDir(run).create()
    tiny_config(training={"steps": 3, "checkpoint_every": 0}).save(rd.config_path)
    assert main(["train", "--resume", "--run-dir", str(run), "--no-stdin"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "warning", events[0]        # the first thing it says
    assert "no checkpoint yet" in events[0]["message"] and "from step 0" in events[0]["message"]
    assert "finished at step 3" in err


# ---- 4. a corrupt newest checkpoint ----------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "bad json"])
def test_resume_falls_back_past_a_corrupt_newest_checkpoint(trained, tmp_path, damage):
    run = copy_run(trained, tmp_path)
    rd = RunDir(run)
    bad = rd.checkpoint_stem(20)
    good_bytes = bad.with_suffix(".safetensors").read_bytes()
    if damage == "truncated":
        bad.with_suffix(".safetensors").write_bytes(good_bytes[:1000])
        bad_file = bad.with_suffix(".safetensors")
    else:
        bad.with_suffix(".json").write_text('{"format": "genlab-checkpoint", ')
        bad_file = bad.with_suffix(".json")
    damaged = bad_file.read_bytes()
    events = []
    res = train(tiny_config(training={"steps": 20, "checkpoint_every": 10, "keep_checkpoints": 1}), run,
                resume=True, until_step=15, emit=events.append)
    assert res.state == "stopped" and res.step == 15, res.message
    assert [s for s, _ in rd.checkpoints()] == [15, 20]  # the bad one cannot push out the new one
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any(str(bad_file) in w and "step_000010" in w for w in warnings), warnings
    assert bad_file.read_bytes() == damaged  # kept as it was, for a look
    # continuing to the end rewrites step 20 exactly as the uninterrupted run did
    res = train(tiny_config(training={"steps": 20, "checkpoint_every": 10}), run, resume=True, emit=lambda e: None)
    assert res.state == "finished" and res.last_checkpoint == bad.with_suffix(".safetensors")
    assert res.last_checkpoint.read_bytes() == good_bytes


# ---- 5. temp files of killed writes; a run another process is training ------------------------------
def test_stale_temp_files_are_removed_and_a_live_owner_is_refused(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    rd = RunDir(run)
    stale = [rd.checkpoints_dir / ".step_000030.safetensors.k2j3h4.tmp", run / ".status.json.abc.tmp",
             rd.samples_dir / ".step_000030.png.x1.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    keep = [run / ".hidden", rd.checkpoints_dir / "notes.tmp"]
    for p in keep:
        p.write_bytes(b"mine")

    # another live process is recorded as training it: refused, and nothing is touched
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rd.write_status(state="running", step=20, pid=other.pid)
        before = rd.status_path.read_bytes()
        events = []
        res = train(tiny_config(training={"steps": 30}), run, resume=True, emit=events.append)
        assert res.state == "failed" and one_line(res.message) and f"pid {other.pid}" in res.message
        assert rd.status_path.read_bytes() == before and all(p.exists() for p in stale)
        assert events[-1]["event"] == "error"
    finally:
        other.kill()
        other.wait()

    events = []  # its process gone, the run resumes and the leftovers go
    res = train(tiny_config(training={"steps": 30}), run, resume=True, emit=events.append)
    assert res.state == "finished", res.message
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert any(e["event"] == "info" and "removed 3 temp file" in e["message"] for e in events)


# ---- 6. a stale status ----------------------------------------------------------------------------
def test_a_dead_pid_reads_as_interrupted_on_its_own_host_only(tmp_path, trained):
    assert json.loads((trained / "status.json").read_text())["host"] == socket.gethostname()
    rd = RunDir(tmp_path)
    cases = [(dict(state="running", pid=dead_pid()), "interrupted"),
             (dict(state="paused", pid=dead_pid()), "interrupted"),
             (dict(state="running", pid=os.getpid()), "running"),
             (dict(state="running", pid=dead_pid(), host="another-machine"), "running"),
             (dict(state="finished", pid=dead_pid()), "finished"),
             (dict(state="running", pid=None), "running")]
    for fields, want in cases:
        rd.write_status(step=3, **fields)
        st = effective_status(tmp_path)
        assert st["state"] == want and st["step"] == 3, (fields, st)
    assert effective_status(tmp_path / "missing") == {}
    # a status.json from before the host was recorded: its runs were local, so its pid is judged
    rd.status_path.write_text(json.dumps({"state": "running", "step": 3, "pid": dead_pid()}))
    assert effective_status(tmp_path)["state"] == "interrupted"
    if util.process_start_time(os.getpid()) is not None:  # a pid reused by a younger process
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            rd.write_status(state="running", step=3, pid=other.pid, updated=time.time() - 60)
            assert effective_status(tmp_path)["state"] == "interrupted"
        finally:
            other.kill()
            other.wait()


# ---- 7. NaN in optimizer state --------------------------------------------------------------------
def test_nan_in_optimizer_state_blocks_the_checkpoint(tmp_path, monkeypatch):
    original = DDPMFamily.training_step
    calls = {"n": 0}

    def poisoning(self, batch, ctx):
        out = original(self, batch, ctx)
        calls["n"] += 1
        if calls["n"] == 13:  # Adam's second moment overflows; the loss stays finite (updates become 0)
            next(iter(ctx.optimizers["unet"].state.values()))["exp_avg_sq"].view(-1)[0] = math.inf
        return out

    monkeypatch.setattr(DDPMFamily, "training_step", poisoning)
    res = train(tiny_config(training={"steps": 20, "checkpoint_every": 5}), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed" and one_line(res.message)
    assert "optimizer state of unet has NaN/Inf" in res.message and "step_000010" in res.message, res.message
    assert [s for s, _ in RunDir(tmp_path / "run").checkpoints()] == [5, 10]


# ---- 8. hyperparameters edited before a resume ----------------------------------------------------
def test_an_edited_lr_takes_effect_on_resume_and_is_logged(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    events = []
    cfg = tiny_config(training={"steps": 25, "lr": 1e-3, "weight_decay": 0.01})
    t = Trainer(cfg, run, resume=True, emit=events.append)
    assert t.run().state == "finished"
    msgs = [e["message"] for e in events if e["event"] == "warning"]
    assert any("training.lr 0.003 -> 0.001" in m and "training.weight_decay 0.0 -> 0.01" in m
               and "training.steps 20 -> 25" in m for m in msgs), msgs
    group = t.optimizers["unet"].param_groups[0]
    assert group["base_lr"] == 1e-3 and group["weight_decay"] == 0.01
    meta = ck.load_checkpoint(t.last_ckpt).meta  # the record says what was used
    assert meta["config"]["training"]["lr"] == 1e-3 and meta["optimizers"]["unet"]["param_groups"][0]["base_lr"] == 1e-3

    events = []  # one change reads as one sentence; a resume that changes nothing says nothing
    assert train(tiny_config(training={"steps": 30, "lr": 1e-3, "weight_decay": 0.01}), run, resume=True,
                 emit=events.append).state == "finished"
    assert [e["message"] for e in events if e["event"] in ("info", "warning")] == [
        "training.steps changed 25 -> 30 since the checkpoint: applied"]


# ---- 9. file-system errors --------------------------------------------------------------------------
def test_a_full_disk_ends_the_run_with_one_line_naming_the_file(tmp_path, monkeypatch, capfd):
    real = ck.atomic_write_bytes

    def full(path, data):
        if str(path).endswith("step_000020.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", full)
    events = []
    res = train(tiny_config(training={"steps": 20, "checkpoint_every": 10}), tmp_path / "run", emit=events.append)
    target = tmp_path / "run" / "checkpoints" / "step_000020.safetensors"
    assert res.state == "failed" and one_line(res.message)
    assert res.message.startswith(f"{target}: ") and "space" in res.message and "free)" in res.message
    assert "step_000010" in res.message  # the last good checkpoint
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["message"] == res.message
    assert events[-1] == {"event": "error", "message": res.message}
    assert "Traceback" not in capfd.readouterr().err


def test_a_failed_write_names_the_target_and_leaves_no_temp_file(tmp_path, monkeypatch):
    def no_room(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write(): no file name

    monkeypatch.setattr(util.os, "fsync", no_room)
    with pytest.raises(OSError) as e:
        util.atomic_write_bytes(tmp_path / "x.bin", b"data")
    monkeypatch.undo()
    assert e.value.filename == str(tmp_path / "x.bin") and list(tmp_path.iterdir()) == []


def test_a_run_dir_that_cannot_be_made_gives_one_line(tmp_path, capfd):
    (tmp_path / "file").write_text("")
    events = []
    res = train(tiny_config(), tmp_path / "file" / "run", emit=events.append)
    assert res.state == "failed" and one_line(res.message)
    assert res.message.startswith(str(tmp_path / "file" / "run")), res.message
    assert events[-1] == {"event": "error", "message": res.message}
    assert "Traceback" not in capfd.readouterr().err


# ---- 10. file modes ---------------------------------------------------------------------------------
def test_written_files_follow_the_umask(trained, tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    want = 0o666 & ~umask
    assert util.FILE_MODE == want
    util.atomic_write_bytes(tmp_path / "f", b"x")
    rd = RunDir(trained)
    for p in (tmp_path / "f", rd.latest_checkpoint(), rd.latest_checkpoint().with_suffix(".json"),
              rd.status_path, rd.config_path, rd.sample_path(20)):
        assert os.stat(p).st_mode & 0o777 == want, p
