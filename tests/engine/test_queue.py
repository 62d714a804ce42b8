"""The training queue's runner and CLI: entries train one after another in `genlab-engine train`
children, the queue file is the truth between runners, a Stop sent to a run ends only that entry,
and a comparison group's runs are compared once the last has ended."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from engine.core.config import RunConfig
from engine.runs.queue import QueueError, TrainingQueue
from engine.runs.queue_runner import QueueRunner
from engine.runs.rundir import RunDir, send_control
from tests.conftest import ROOT, tiny_config, tiny_family_config


@pytest.fixture(autouse=True)
def children_import_this_checkout(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def small(name: str, **training) -> dict:
    return tiny_config(name=name, training={"steps": 4, "checkpoint_every": 0, **training},
                       sampling={"grid_size": 2}).to_dict()


def run_queue(root, on_event=None) -> list[dict]:
    events = []

    def emit(ev):
        events.append(ev)
        if on_event is not None:
            on_event(ev)
    QueueRunner(root, emit=emit).run()
    return events


def entry_events(events, entry_id) -> list[dict]:
    return [e for e in events if e["event"] == "queue" and e["entry"] == entry_id]


def test_entries_train_in_order_and_a_pause_stops_the_runner_after_the_current_one(tmp_path):
    q = TrainingQueue(tmp_path)
    a, b, c = q.add(small("first")), q.add(small("second")), q.add(small("third"))

    def pause_when_second_starts(ev):
        if ev["event"] == "queue" and ev["entry"] == b.id and ev["state"] == "running":
            TrainingQueue(tmp_path).set_paused(True)    # as the GUI would, from another object
    events = run_queue(tmp_path, pause_when_second_starts)

    order = [(e["entry"], e["state"]) for e in events if e["event"] == "queue"]
    assert order == [(a.id, "running"), (a.id, "done"), (b.id, "running"), (b.id, "done")]
    assert events[-1] == {"event": "runner", "state": "stopped", "message": "the queue is paused", "entries": 2}
    fresh = TrainingQueue(tmp_path)             # what a reload from disk sees
    got = {e.id: e for e in fresh.entries()}
    assert [e.id for e in fresh.entries()] == [a.id, b.id, c.id] and fresh.paused
    assert (got[a.id].state, got[b.id].state, got[c.id].state) == ("done", "done", "queued")
    assert got[a.id].ended <= got[b.id].started   # the second started after the first had ended
    for e in (got[a.id], got[b.id]):
        assert e.message == "finished 4 steps" and e.run_dir.startswith(str(tmp_path))
        assert [s for s, _ in RunDir(e.run_dir).checkpoints()] == [4]
    assert got[c.id].run_dir is None


def test_a_stop_sent_to_the_running_run_ends_that_entry_and_the_runner_goes_on(tmp_path):
    q = TrainingQueue(tmp_path)
    long, after = q.add(small("long", steps=1_000_000)), q.add(small("after", steps=2))

    def stop_it(run_dir):
        config = os.path.join(run_dir, "config.toml")
        deadline = time.monotonic() + 120
        while not os.path.exists(config) and time.monotonic() < deadline:
            time.sleep(0.05)
        send_control(run_dir, "stop")           # what the Train tab's Stop and `genlab-engine control` do

    def on_event(ev):
        if ev["event"] == "queue" and ev["entry"] == long.id and ev["state"] == "running":
            threading.Thread(target=stop_it, args=(ev["run_dir"],), daemon=True).start()
    events = run_queue(tmp_path, on_event)
    ended = {e["entry"]: e for e in events if e["event"] == "queue" and e["state"] != "running"}
    assert ended[long.id]["state"] == "stopped" and ended[long.id]["message"] == "stopped by request"
    assert ended[after.id]["state"] == "done"
    st = RunDir(ended[long.id]["run_dir"]).read_status()
    assert st["state"] == "stopped" and RunDir(ended[long.id]["run_dir"]).checkpoints()[-1][0] == st["step"]


def test_a_comparison_of_two_families_on_a_time_budget_writes_its_table(tmp_path):
    q = TrainingQueue(tmp_path)
    configs = [tiny_family_config(f, steps=1_000_000).to_dict() for f in ("ddpm", "vae")]
    g = q.add_comparison(configs, time_budget_s=1.5, n=10)
    events = run_queue(tmp_path)

    runs = [e for e in q.entries() if e.id in g.entries]
    for e in runs:
        assert e.state == "stopped" and e.message.startswith("time budget of 1.5 s reached at step "), e.message
    group = q.groups()[0]
    assert group.state == "done" and group.message == ""
    path = tmp_path / "comparisons" / f"{g.id}.json"
    assert group.result == str(path)
    table = json.loads(path.read_text())
    assert table["group"] == g.id and table["n"] == 10 and table["runs"] == [e.run_dir for e in runs]
    assert [r["family"] for r in table["rows"]] == ["ddpm", "vae"]
    assert [e["state"] for e in events if e["event"] == "group"] == ["comparing", "done"]


def test_a_group_with_fewer_than_two_checkpoints_fails_in_one_line_naming_what_was_left_out(tmp_path, tiny_runs):
    q = TrainingQueue(tmp_path)
    g = q.add_comparison([small("kept"), small("broken")], time_budget_s=0, n=10)
    kept, broken = g.entries
    q.update_entry(kept, state="done", run_dir=str(tiny_runs["ddpm"].result.run_dir))
    q.update_entry(broken, state="failed", message="the loss became NaN")
    events = run_queue(tmp_path)
    group = q.groups()[0]
    assert group.state == "failed" and "\n" not in group.message
    assert group.message == "fewer than 2 runs ended with a checkpoint (1); broken left out (failed: the loss became NaN)"
    assert events[-2]["event"] == "group" and events[-2]["state"] == "failed"
    assert not (tmp_path / "comparisons").exists()


def test_a_runner_marks_an_entry_whose_runner_died_interrupted_and_a_second_runner_is_refused(tmp_path):
    q = TrainingQueue(tmp_path)
    e = q.add(small("orphan"))
    q.update_entry(e.id, state="running")        # its runner was killed: no queue.runner file is live
    q.set_paused(True)
    events = run_queue(tmp_path)
    assert [(x["entry"], x["state"]) for x in events if x["event"] == "queue"] == [(e.id, "interrupted")]
    assert q.entries()[0].state == "interrupted"
    q.acquire_runner()
    try:
        r = engine("queue", "run", "--runs-root", str(tmp_path))
    finally:
        q.release_runner()
    assert r.returncode == 2 and r.stderr.strip() == (f"genlab-engine: error: {tmp_path}: a queue runner is "
                                                      f"already running (pid {os.getpid()})")


# ---- the command line ---------------------------------------------------------------------------
def engine(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)


def test_cli_add_list_move_remove_and_a_bad_preset(tmp_path):
    root = str(tmp_path)
    r = engine("queue", "add", "--preset", "vae-digits", "--budget", "60", "--set", "training.steps=7",
               "--runs-root", root)
    assert r.returncode == 0, r.stderr
    r2 = engine("queue", "add", "--preset", "ddpm-digits", "--name", "mine", "--runs-root", root)
    listed = json.loads(engine("queue", "list", "--json", "--runs-root", root).stdout)
    first, second = listed["entries"]
    assert r.stdout.strip() == f"queued {first['id']} vae-digits (vae), budget 60 s"
    assert (first["family"], first["time_budget_s"], first["config"]["training"]["steps"]) == ("vae", 60, 7)
    assert (second["name"], second["state"], listed["paused"], listed["runner_pid"]) == ("mine", "queued", False, None)
    assert r2.returncode == 0
    assert engine("queue", "move", second["id"], "--up", "--runs-root", root).returncode == 0
    assert engine("queue", "remove", first["id"], "--runs-root", root).returncode == 0
    assert engine("queue", "pause", "--runs-root", root).returncode == 0
    assert [(e.name, e.state) for e in TrainingQueue(tmp_path).entries()] == [("mine", "queued")]
    assert TrainingQueue(tmp_path).paused

    bad = engine("queue", "add", "--preset", "nope", "--runs-root", root)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith("genlab-engine: error: unknown preset 'nope'")
    gone = engine("queue", "remove", "nope", "--runs-root", root)
    assert gone.returncode == 2 and gone.stderr.strip() == f"genlab-engine: error: {tmp_path / 'queue.json'}: no entry 'nope'"
    other = engine("queue", "compare", "--presets", "ddpm-digits", "ddpm-shapes", "--budget", "5", "--runs-root", root)
    assert other.returncode == 2 and "same data" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    assert len(TrainingQueue(tmp_path).entries()) == 1


def test_cli_compare_queues_one_group_and_a_corrupt_queue_is_one_line(tmp_path):
    root = str(tmp_path)
    r = engine("queue", "compare", "--presets", "ddpm-digits", "vae-digits", "--budget", "30", "--n", "100",
               "--runs-root", root)
    assert r.returncode == 0, r.stderr
    q = TrainingQueue(tmp_path)
    (g,) = q.groups()
    assert (g.n, [e.family for e in q.entries()], {e.time_budget_s for e in q.entries()}) == (100, ["ddpm", "vae"], {30})
    (tmp_path / "queue.json").write_text("{oops")
    r = engine("queue", "list", "--runs-root", root)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "queue.json") in r.stderr and "not valid JSON" in r.stderr
    with pytest.raises(QueueError):
        q.entries()


def test_sigterm_to_the_runner_stops_its_run_with_a_checkpoint_and_marks_the_entry_interrupted(tmp_path):
    q = TrainingQueue(tmp_path)
    e, later = q.add(small("long", steps=1_000_000)), q.add(small("later"))
    runner = subprocess.Popen([sys.executable, "-m", "engine", "queue", "run", "--runs-root", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run_dir = q.entry(e.id).run_dir
            if run_dir and RunDir(run_dir).read_status().get("state") == "running":
                break
            time.sleep(0.1)
        assert q.runner_pid() == runner.pid
        runner.terminate()
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, err
    got = q.entry(e.id)
    st = RunDir(got.run_dir).read_status()
    assert got.state == "interrupted" and got.message.startswith(f"the queue runner was stopped; the run stopped at "
                                                                 f"step {st['step']}")
    assert st["state"] == "stopped" and RunDir(got.run_dir).checkpoints()[-1][0] == st["step"]
    assert q.entry(later.id).state == "queued" and q.runner_pid() is None
    assert json.loads(out.splitlines()[-1])["message"] == "stopped by a signal"


def test_the_next_runner_resumes_an_interrupted_entry_in_its_own_run_with_the_budget_left(tmp_path):
    """The queue survives its runner (the window closed, a SIGTERM): an interrupted entry is taken
    up again where its checkpoint left it, in the same run folder, for what is left of its budget;
    one whose budget was spent before the interruption ends there."""
    q = TrainingQueue(tmp_path)
    cut = q.add(small("cut", steps=3))
    run_queue(tmp_path)
    spent = q.add(small("spent", steps=3))   # the same run again, in a folder of its own
    shutil.copytree(q.entry(cut.id).run_dir, tmp_path / "spent-run")
    q.update_entry(spent.id, run_dir=str(tmp_path / "spent-run"))
    runs = {e.id: RunDir(e.run_dir) for e in q.entries()}
    # as if the runner had been stopped at step 3 of 6 (and 3 of 5), their budgets on
    for e, steps, budget in ((cut, 6, 3600.0), (spent, 5, 1e-3)):
        rd = runs[e.id]
        RunConfig.load(rd.config_path, stored=True).replace(training={"steps": steps}).save(rd.config_path)
        q.update_entry(e.id, state="interrupted", time_budget_s=budget)
    events = run_queue(tmp_path)

    assert [(x["entry"], x["state"]) for x in events if x["event"] == "queue"] == [
        (cut.id, "running"), (cut.id, "done"), (spent.id, "stopped")]
    got = {e.id: e for e in q.entries()}
    assert got[cut.id].run_dir == str(runs[cut.id].path) and runs[cut.id].read_status()["step"] == 6
    assert runs[cut.id].checkpoints()[-1][0] == 6
    left = RunConfig.load(runs[cut.id].config_path, stored=True).training.time_budget_s
    assert 3500 < left < 3600                      # the budget less what the first 3 steps took
    assert got[spent.id].message.startswith("its time budget of 0.001 s was spent")
    assert runs[spent.id].read_status()["step"] == 3  # not trained again
    assert sorted(p.name for p in tmp_path.iterdir() if (p / "config.toml").is_file()) == sorted(
        r.path.name for r in runs.values())          # no new run folder
