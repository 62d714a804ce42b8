"""The training queue's store (engine/runs/queue.py): what one TrainingQueue writes another reads,
edits never lose each other's changes, and a broken queue.json is one error naming it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from engine.core.config import RunConfig
from engine.runs.queue import LOCK_FILE, QueueError, TrainingQueue


def cfg(name: str = "a", family: str = "ddpm") -> dict:
    return RunConfig(name=name).replace(model={"family": family}).to_dict()


def test_add_move_remove_and_pause_persist_across_a_fresh_queue(tmp_path):
    q = TrainingQueue(tmp_path)
    a, b = q.add(cfg("a")), q.add(cfg("b", "vae"), time_budget_s=30)
    c = q.add(cfg("c"))
    assert (a.name, a.family, a.state, a.time_budget_s) == ("a", "ddpm", "queued", 0)
    assert (b.family, b.time_budget_s) == ("vae", 30)
    q.move(c.id, -1)
    q.move(a.id, +5)             # clamped to the end
    q.remove(b.id)
    q.set_paused(True)

    fresh = TrainingQueue(tmp_path)
    assert [e.name for e in fresh.entries()] == ["c", "a"]
    assert fresh.paused is True
    assert fresh.entries()[1].config == a.config
    fresh.set_paused(False)
    assert q.paused is False
    with pytest.raises(QueueError, match="no entry"):
        q.remove("nope")


def test_a_running_entry_is_not_removed_and_reads_interrupted_when_its_runner_is_gone(tmp_path):
    q = TrainingQueue(tmp_path)
    e = q.add(cfg())
    q.acquire_runner()
    try:
        assert q.runner_pid() == os.getpid()
        assert q.start_next().id == e.id
        with pytest.raises(QueueError, match="is running"):
            q.remove(e.id)
        assert q.entries()[0].state == "running"
    finally:
        q.release_runner()
    assert q.runner_pid() is None
    assert q.entries()[0].state == "interrupted"     # no runner behind it any more


def test_a_second_runner_is_refused_and_a_dead_runners_lock_is_taken_over(tmp_path):
    q = TrainingQueue(tmp_path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        record = {"pid": live.pid, "host": socket.gethostname(), "since": time.time()}
        (tmp_path / "queue.runner").write_text(json.dumps(record))
        assert q.runner_pid() == live.pid
        with pytest.raises(QueueError, match=f"already running \\(pid {live.pid}\\)"):
            q.acquire_runner()
    finally:
        live.kill()
        live.wait()
    assert q.runner_pid() is None       # its process is gone: the lock is stale
    q.acquire_runner()
    try:
        assert TrainingQueue(tmp_path).runner_pid() == os.getpid()
    finally:
        q.release_runner()
    assert not (tmp_path / "queue.runner").exists()


def test_a_comparison_is_one_group_over_its_entries(tmp_path):
    q = TrainingQueue(tmp_path)
    g = q.add_comparison([cfg("a", "ddpm"), cfg("b", "vae")], time_budget_s=20, n=50)
    entries = q.entries()
    assert [e.id for e in entries] == g.entries
    assert all(e.group == g.id and e.time_budget_s == 20 for e in entries)
    assert [(x.id, x.n, x.state) for x in q.groups()] == [(g.id, 50, "waiting")]
    with pytest.raises(QueueError, match="at least 2"):
        q.add_comparison([cfg()], time_budget_s=10, n=10)
    other_data = RunConfig(name="s").replace(data={"dataset": "shapes"}).to_dict()
    with pytest.raises(QueueError, match="same data"):
        q.add_comparison([cfg(), other_data], time_budget_s=10, n=10)


def test_clear_drops_ended_entries_but_keeps_those_a_comparison_waits_for(tmp_path):
    q = TrainingQueue(tmp_path)
    done, queued = q.add(cfg("done")), q.add(cfg("queued"))
    g = q.add_comparison([cfg("x"), cfg("y", "vae")], time_budget_s=5, n=10)
    q.update_entry(done.id, state="done")
    q.update_entry(g.entries[0], state="done")
    q.clear_ended()
    assert [e.name for e in q.entries()] == ["queued", "x", "y"]
    q.update_group(g.id, state="done")
    q.update_entry(g.entries[1], state="failed")
    q.clear_ended()
    assert [e.id for e in q.entries()] == [queued.id]
    assert q.groups() == []


def test_a_bad_config_is_one_queue_error(tmp_path):
    q = TrainingQueue(tmp_path)
    with pytest.raises(QueueError, match="training.steps"):
        q.add(RunConfig(name="bad").to_dict() | {"training": {"steps": -1}})
    assert q.entries() == []


@pytest.mark.parametrize("text, problem", [("{not json", "not valid JSON"), ('[1, 2]', "not a GenLab queue"),
                                           ('{"entries": [{"name": "x"}]}', "entry 1 has no id")])
def test_a_corrupt_queue_file_is_one_error_naming_it_and_is_left_alone(tmp_path, text, problem):
    (tmp_path / "queue.json").write_text(text)
    q = TrainingQueue(tmp_path)
    for action in (q.entries, lambda: q.add(cfg())):
        with pytest.raises(QueueError) as err:
            action()
        line = str(err.value)
        assert str(tmp_path / "queue.json") in line and problem in line and "\n" not in line
    assert (tmp_path / "queue.json").read_text() == text
    assert not (tmp_path / LOCK_FILE).exists()


def test_two_queues_editing_the_same_file_lose_no_add(tmp_path):
    queues = [TrainingQueue(tmp_path), TrainingQueue(tmp_path)]
    config = cfg()

    def add_many(q, tag):
        for i in range(15):
            q.add({**config, "name": f"{tag}{i}"})

    threads = [threading.Thread(target=add_many, args=(q, tag)) for q, tag in zip(queues, "xy")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [e.name for e in TrainingQueue(tmp_path).entries()]
    assert sorted(names) == sorted([f"x{i}" for i in range(15)] + [f"y{i}" for i in range(15)])
    assert len({e.id for e in queues[0].entries()}) == 30


def test_a_lock_left_by_a_killed_editor_is_broken(tmp_path):
    lock = tmp_path / LOCK_FILE
    lock.write_text("12345")
    os.utime(lock, (0, 0))         # long past the stale age
    q = TrainingQueue(tmp_path)
    q.add(cfg())
    assert len(q.entries()) == 1 and not lock.exists()
