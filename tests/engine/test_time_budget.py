"""training.time_budget_s: a run stops once it has trained that many seconds (a pause and a grid
drawn on request left out), the way Stop ends it: a final checkpoint and grid, status "stopped",
and a message saying why and at which step."""
import json

import pytest

from engine.core.config import RunConfig
from engine.runs.rundir import RunDir, send_control
from engine.training.artifacts import ArtifactWriter
from engine.training.loop import Trainer, train
from tests.conftest import ManualClock

STEP_S = 0.01   # each training step takes this long on the test's clock

pytestmark = pytest.mark.usefixtures("commands_read_at_every_step")


def test_the_budget_counts_training_time_only_and_stops_like_stop(tmp_path, tiny_cfg, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    clock, events = ManualClock(), []
    # 0.095 s of 0.01 s steps: the budget is spent after step 10
    cfg = tiny_cfg.replace(training={"steps": 40, "log_every": 5, "checkpoint_every": 0, "time_budget_s": 0.095},
                           sampling={"grid_size": 2})
    trainer = Trainer(cfg, run, emit=events.append)
    trainer.clock = clock
    step, write, handle = Trainer._train_step, ArtifactWriter.write, Trainer._handle

    def timed_step(self):
        clock.t += STEP_S
        return step(self)

    def timed_write(self, at):
        clock.t += 5.0                 # a grid takes far longer than the whole budget
        return write(self, at)

    def handle_and_wait(self, cmds):
        if self.state == "paused":
            clock.t += 1.0             # a long pause
            send_control(run, "resume")
        return handle(self, cmds)
    monkeypatch.setattr(Trainer, "_train_step", timed_step)
    monkeypatch.setattr(ArtifactWriter, "write", timed_write)
    monkeypatch.setattr(Trainer, "_handle", handle_and_wait)

    def emit(ev):
        events.append(ev)
        if ev["event"] == "metrics" and ev["step"] == 5:
            send_control(run, "sample-now")
            send_control(run, "pause")
    trainer.emit = emit

    result = trainer.run()
    assert (result.state, result.step) == ("stopped", 10), result.message
    assert result.message == "time budget of 0.095 s reached at step 10"
    rd = RunDir(run)
    assert [s for s, _ in rd.checkpoints()] == [10] and result.last_checkpoint == rd.checkpoints()[-1][1]
    assert rd.sample_path(10).is_file()                 # the final grid, as Stop draws it
    status = json.loads(rd.status_path.read_text())
    assert (status["state"], status["step"], status["message"]) == ("stopped", 10, result.message)
    etas = [e["eta_s"] for e in events if e["event"] == "metrics"]
    assert etas[0] <= 0.1            # the ETA is the budget's (0.085 s left), not 39 steps' (0.39 s)


def test_a_tiny_real_run_stops_on_its_budget_before_its_steps(tmp_path, tiny_cfg):
    cfg = tiny_cfg.replace(training={"steps": 1_000_000, "checkpoint_every": 0, "time_budget_s": 1.0},
                           sampling={"grid_size": 2})
    result = train(cfg, tmp_path / "run", emit=lambda e: None)
    assert result.state == "stopped" and 0 < result.step < 1_000_000
    assert result.message == f"time budget of 1 s reached at step {result.step}"
    assert [s for s, _ in RunDir(tmp_path / "run").checkpoints()] == [result.step]
    saved = RunConfig.load(tmp_path / "run" / "config.toml", stored=True)
    assert saved.training.time_budget_s == 1.0


def test_no_budget_by_default_and_a_negative_one_is_refused():
    assert RunConfig().training.time_budget_s == 0
    from engine.core.config import ConfigError
    with pytest.raises(ConfigError, match="training.time_budget_s"):
        RunConfig().replace(training={"time_budget_s": -1})
