"""The controls of a training run tell the truth: a pause (or a grid drawn on request) does not count
toward images/s or the ETA; Sample now and Save now act while paused, without resuming; Stop writes
the final sample grid beside its checkpoint."""
import json

import pytest

from engine.runs.rundir import RunDir, send_control
from engine.training.artifacts import ArtifactWriter
from engine.training.loop import Trainer, train
from tests.conftest import ManualClock

STEP_S = 0.01   # each training step takes this long on the test's clock
GRID_S = 5.0    # and each grid this long
BATCH = 16

pytestmark = pytest.mark.usefixtures("commands_read_at_every_step")


def _rows(run):
    return [json.loads(line) for line in RunDir(run).metrics_path.read_text().splitlines()]


def test_a_pause_and_a_grid_drawn_on_request_do_not_count_toward_images_per_s_or_the_eta(tmp_path, tiny_cfg,
                                                                                          monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    clock, events = ManualClock(), []
    cfg = tiny_cfg.replace(training={"steps": 40, "log_every": 5, "checkpoint_every": 0, "batch_size": BATCH},
                           sampling={"grid_size": 2})
    trainer = Trainer(cfg, run, emit=events.append)
    trainer.clock = clock
    step = Trainer._train_step

    def timed_step(self):
        clock.t += STEP_S
        return step(self)
    monkeypatch.setattr(Trainer, "_train_step", timed_step)
    write = ArtifactWriter.write

    def timed_write(self, at):
        clock.t += GRID_S
        return write(self, at)
    monkeypatch.setattr(ArtifactWriter, "write", timed_write)
    handle = Trainer._handle

    def handle_and_wait(self, cmds):
        if self.state == "paused":
            clock.t += 1.0   # every poll while paused: a long pause in all
            polls["paused"] += 1
            if polls["paused"] == 30:
                send_control(run, "resume")
        return handle(self, cmds)
    polls = {"paused": 0}
    monkeypatch.setattr(Trainer, "_handle", handle_and_wait)

    def emit(ev):
        events.append(ev)
        if ev["event"] == "metrics" and ev["step"] == 10:
            send_control(run, "sample-now")     # drawn while running, between steps
        if ev["event"] == "metrics" and ev["step"] == 20:
            send_control(run, "pause")
    trainer.emit = emit
    assert trainer.run().state == "finished"
    assert polls["paused"] >= 30 and any(e["event"] == "sample" and 10 <= e["step"] < 15 for e in events)
    rows = [r for r in _rows(run) if "img_per_s" in r]
    expected = BATCH / STEP_S
    assert [r["img_per_s"] for r in rows] == pytest.approx([expected] * len(rows), rel=1e-6), rows
    for r in rows:   # the ETA of the steps left at that speed
        assert r["eta_s"] == pytest.approx((40 - r["step"]) * BATCH / expected, abs=0.1)
    # the wall time since the start counts everything, the pause included
    assert rows[-1]["elapsed_s"] >= 30


def test_sample_now_and_save_now_act_while_paused_without_resuming(tmp_path, tiny_cfg):
    run = tmp_path / "run"
    run.mkdir()
    seen, paused_at = [], {}

    def emit(ev):
        seen.append(ev)
        if ev["event"] == "metrics" and ev["step"] == 10:
            send_control(run, "pause")
        if ev["event"] == "status" and ev["state"] == "paused":
            paused_at["step"] = ev["step"]
            send_control(run, "sample-now")
            send_control(run, "save-now")
        if ev["event"] == "checkpoint" and "step" in paused_at:
            send_control(run, "stop")   # the test ends here; nothing ever sent "resume"

    res = train(tiny_cfg.replace(training={"steps": 100, "checkpoint_every": 0}, sampling={"grid_size": 2}), run,
                emit=emit)
    after_pause = seen[next(i for i, e in enumerate(seen) if e["event"] == "status" and e["state"] == "paused"):]
    kinds = [(e["event"], e.get("state")) for e in after_pause]
    assert ("status", "running") not in kinds                   # never resumed
    assert ("sample", None) in kinds and ("checkpoint", None) in kinds
    assert not any(e["event"] == "metrics" for e in after_pause)   # and trained no step meanwhile
    step = paused_at["step"]
    assert res.state == "stopped" and res.step == step
    assert RunDir(run).sample_path(step).exists()
    assert [s for s, _ in RunDir(run).checkpoints()] == [step]


def test_stop_writes_the_final_grid_beside_its_checkpoint(tmp_path, tiny_cfg):
    run = tmp_path / "run"
    run.mkdir()
    events = []

    def emit(ev):
        events.append(ev)
        if ev["event"] == "metrics" and ev["step"] == 13:
            send_control(run, "stop")

    cfg = tiny_cfg.replace(training={"steps": 100, "log_every": 1, "sample_every": 5, "checkpoint_every": 0},
                           sampling={"grid_size": 2})
    res = train(cfg, run, emit=emit)
    assert res.state == "stopped" and res.step == 13
    rd = RunDir(run)
    assert [s for s, _ in rd.checkpoints()] == [13]
    assert sorted(p.name for p in rd.samples_dir.glob("*.png")) == [
        "step_000000.png", "step_000005.png", "step_000010.png", "step_000013.png"]
    # the checkpoint first (a process killed while drawing keeps it), the grid, then the state
    order = [e["event"] for e in events if e["event"] in ("checkpoint", "sample", "status")][-3:]
    assert order == ["checkpoint", "sample", "status"]
    assert json.loads(rd.status_path.read_text())["state"] == "stopped"
