"""The training queue in the GUI: the Runs tab's Queue view (app/panels/run_queue.py) lists what
queue.json holds and follows its changes, Up / Down / Remove / Pause edit the file, a live runner is
shown rather than doubled, Stop queue pauses the queue and stops the run through its control file;
Add to queue on the Train tab and in the run actions; the Compare families on this data… dialog
(app/compare_dialog.py) queues a group of presets on the current data; the Families view fills from
the group's comparisons/<id>.json once it is written."""
from __future__ import annotations

import json
import os
import socket
import time

import pytest
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from app.compare_dialog import CompareFamiliesDialog, comparison_configs
from app.panels.run_queue import QueueView
from app.panels.runs import RunsBrowser
from app.panels.training_panel import TrainingPanel
from engine.core.config import ConfigError, load_preset
from engine.core.protocol import CONTROL_FILE
from engine.runs.queue import QUEUE_FILE, TrainingQueue, comparison_path
from tests.app.test_family_compare_panel import ROWS
from tests.engine.test_runs_index import make_run

SHAPES = load_preset("ddpm-shapes").to_dict()["data"]   # a data section other than the presets' digits


def cfg(name: str, preset: str = "ddpm-digits") -> dict:
    return {**load_preset(preset).to_dict(), "name": name}


def names(view: QueueView) -> list[str]:
    return [view.table.item(r, 1).text() for r in range(view.table.rowCount())]


def states(view: QueueView) -> list[str]:
    return [view.table.item(r, 3).text() for r in range(view.table.rowCount())]


def fake_runner(root, pid: int | None = None) -> None:
    """A live runner's lock file (this test process stands in for `genlab-engine queue run`)."""
    (root / "queue.runner").write_text(json.dumps({"pid": pid or os.getpid(), "host": socket.gethostname(),
                                                   "since": time.time()}))


@pytest.fixture
def view(qtbot, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    v = QueueView(root, poll_ms=50)
    qtbot.addWidget(v)
    v.resize(900, 400)
    v.show()
    return v


def test_the_view_lists_what_queue_json_holds_and_follows_its_changes(qtbot, view):
    q = TrainingQueue(view.runs_root)   # another writer: a headless `genlab-engine queue`, say
    assert view.table.rowCount() == 0
    a = q.add(cfg("first"), time_budget_s=120)
    q.add(cfg("second", "vae-digits"))
    qtbot.waitUntil(lambda: names(view) == ["first", "second"], timeout=3000)
    row = [view.table.item(0, c).text() for c in range(view.table.columnCount())]
    assert row[:6] == ["1", "first", "ddpm", "queued", "2 min", ""]
    assert view.table.item(1, 2).text() == "vae" and states(view) == ["queued", "queued"]
    assert "2 queued" in view.status.text() and "Run queue" in view.status.text()
    assert view.run_btn.isEnabled() and not view.stop_btn.isEnabled()
    q.update_entry(a.id, state="failed", message="boom: one line")
    qtbot.waitUntil(lambda: states(view) == ["failed", "queued"], timeout=3000)
    assert view.table.item(0, 7).text() == "boom: one line"
    # a corrupt file is one line naming it, not an empty queue written over it
    (view.runs_root / QUEUE_FILE).write_text("{nope")
    qtbot.waitUntil(lambda: view.message.isVisible(), timeout=3000)
    assert str(view.runs_root / QUEUE_FILE) in view.message.text()
    assert (view.runs_root / QUEUE_FILE).read_text() == "{nope"


def test_up_down_remove_pause_change_the_file(qtbot, view):
    q = TrainingQueue(view.runs_root)
    ids = [q.add(cfg(n)).id for n in ("a", "b", "c")]
    view.refresh()
    view.select(ids[2])
    assert not view.down_btn.isEnabled() and view.up_btn.isEnabled()
    view.up_btn.click()
    assert [e.name for e in q.entries()] == ["a", "c", "b"] and names(view) == ["a", "c", "b"]
    assert view.selected_id() == ids[2]   # the moved entry stays selected
    view.up_btn.click()
    assert [e.name for e in q.entries()] == ["c", "a", "b"] and not view.up_btn.isEnabled()
    view.down_btn.click()
    assert [e.name for e in q.entries()] == ["a", "c", "b"]
    view.select(ids[0])
    view.remove_btn.click()
    assert [e.name for e in q.entries()] == ["c", "b"] and names(view) == ["c", "b"]
    assert "removed a" in view.message.text()
    view.pause_btn.click()
    assert q.paused and view.pause_btn.text() == "Resume queue" and "paused" in view.status.text()
    view.pause_btn.click()
    assert not q.paused and view.pause_btn.text() == "Pause queue"
    q.update_entry(ids[1], state="done")
    view.refresh()
    view.clear_btn.click()
    assert [e.name for e in q.entries()] == ["c"]


def test_a_live_runner_is_shown_not_doubled_and_stop_queue_stops_its_run(qtbot, view, tmp_path):
    q = TrainingQueue(view.runs_root)
    e = q.add(cfg("training-now"))
    q.add(cfg("next"))
    run = make_run(view.runs_root, "20240101-000000-training-now")
    fake_runner(view.runs_root)
    q.update_entry(e.id, state="running", run_dir=str(run), started=time.time() - 65)
    view.refresh()
    assert states(view) == ["running", "queued"] and view.table.item(0, 6).text() == run.name
    assert f"runner: process {os.getpid()}" in view.status.text() and "training: training-now" in view.status.text()
    assert not view.run_btn.isEnabled() and view.stop_btn.isEnabled()
    started = []
    view.job.run_queue = lambda root: started.append(root)
    assert view.run_queue() is False and started == []
    assert f"already works on this folder (process {os.getpid()})" in view.message.text()
    view.select(e.id)
    assert not view.remove_btn.isEnabled()   # a running entry stays until its run is stopped
    view.stop_btn.click()
    assert q.paused   # the runner starts nothing more and ends
    assert (run / CONTROL_FILE).read_text().split() == ["stop"]
    assert "stopping training-now" in view.message.text()
    # the runner gone: its running entry reads as interrupted; Run queue resumes the paused queue
    (view.runs_root / "queue.runner").unlink()
    view.refresh()
    assert states(view)[0] == "interrupted" and view.run_btn.isEnabled()
    assert view.run_queue() is True and started == [view.runs_root] and not q.paused


def test_a_double_click_on_an_entry_with_a_run_folder_opens_the_run(qtbot, view):
    q = TrainingQueue(view.runs_root)
    run = make_run(view.runs_root, "20240101-000000-done")
    e = q.add(cfg("done"))
    q.add(cfg("waiting"))
    q.update_entry(e.id, state="done", run_dir=str(run))
    view.refresh()
    opened = []
    view.open_run.connect(opened.append)
    view.table.itemDoubleClicked.emit(view.table.item(1, 1))   # no run folder yet: nothing
    view.table.itemDoubleClicked.emit(view.table.item(0, 1))
    assert opened == [str(run)]


def test_add_to_queue_on_the_train_tab_queues_the_panels_config(qtbot, tmp_path):
    root = tmp_path / "runs"
    config = load_preset("vae-digits").replace(name="my-vae", data=SHAPES, training={"steps": 77})
    panel = TrainingPanel(root, lambda: config)
    qtbot.addWidget(panel)
    TrainingQueue(root).add(cfg("before"))
    panel.budget.setValue(3)
    with qtbot.waitSignal(panel.queued) as got:
        panel.queue_btn.click()
    [_, e] = TrainingQueue(root).entries()
    assert got.args == [e.id]
    assert e.name == "my-vae" and e.family == "vae" and e.time_budget_s == 180 and e.state == "queued"
    assert e.config["training"]["steps"] == 77 and e.config["data"]["dataset"] == "shapes"
    assert panel.ack.text() == "queued as #2 — see Runs ▸ Queue"
    assert not panel.job.is_running()   # queued, not started


def test_add_to_queue_in_the_run_actions_queues_continuing_the_run(qtbot, tmp_path):
    root = tmp_path / "runs"
    run = make_run(root, "20240101-000000-tiny", checkpoints=[10])
    b = RunsBrowser(root, trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    b.select_run(run)
    b.actions.extra_steps.setValue(300)
    assert b.actions.queue_btn.isEnabled()
    b.actions.queue_btn.click()
    [e] = TrainingQueue(root).entries()
    assert e.continue_run == str(run) and e.more_steps == 300 and e.config is None
    assert "queued as #1" in b.actions.message.text()
    b.show_queue()
    assert b.tabs.currentWidget() is b.queue_view and names(b.queue_view) == [e.name]


def test_the_compare_dialog_queues_the_chosen_presets_on_the_current_data(qtbot, tmp_path):
    root = tmp_path / "runs"
    dlg = CompareFamiliesDialog(root, SHAPES)
    qtbot.addWidget(dlg)
    assert "shapes at 32x32" in dlg.intro.text()
    assert not dlg.buttons.button(QDialogButtonBox.Ok).isEnabled()   # nothing picked yet
    dlg.set_checked(["dcgan-digits", "vae-digits"])
    assert dlg.buttons.button(QDialogButtonBox.Ok).isEnabled()
    dlg.all_budget.setValue(1.5)
    dlg.all_budget_btn.click()
    dlg.n.setValue(200)
    dlg.accept()
    assert dlg.result() == QDialog.Accepted
    q = TrainingQueue(root)
    [g] = q.groups()
    entries = q.entries()
    assert g.id == dlg.group.id and g.n == 200 and g.entries == [e.id for e in entries]
    assert [(e.name, e.family, e.time_budget_s, e.group) for e in entries] == [
        ("dcgan-digits", "gan", 90.0, g.id), ("vae-digits", "vae", 90.0, g.id)]
    for e in entries:   # the whole data section is the current one, the rest is the preset's
        assert e.config["data"] == {**SHAPES}
        assert e.config["model"] == load_preset(e.name).to_dict()["model"]
    assert g.id in dlg.summary and "dcgan-digits, vae-digits" in dlg.summary and "200 samples" in dlg.summary


def test_the_compare_dialog_says_what_is_wrong_and_stays_open(qtbot, tmp_path):
    dlg = CompareFamiliesDialog(tmp_path / "runs", SHAPES)
    qtbot.addWidget(dlg)
    dlg.set_checked(["vae-digits"])
    assert dlg.queue_comparison() is None and "two or more" in dlg.message.text()
    with pytest.raises(ConfigError, match="preset dcgan-digits on shapes at 7x7: data.resolution = 7"):
        comparison_configs(["vae-digits", "dcgan-digits"], {**SHAPES, "resolution": 7}, [60, 60])
    dlg = CompareFamiliesDialog(tmp_path / "runs", {**SHAPES, "resolution": 7})
    qtbot.addWidget(dlg)
    dlg.set_checked(["vae-digits", "dcgan-digits"])
    dlg.accept()
    assert dlg.result() != QDialog.Accepted and dlg.group is None
    assert dlg.message.text().startswith("✖ preset dcgan-digits on shapes at 7x7")
    assert TrainingQueue(tmp_path / "runs").entries() == []


def test_the_families_view_fills_from_the_queued_comparisons_result(qtbot, tmp_path):
    root = tmp_path / "runs"
    b = RunsBrowser(root, trash_dir=tmp_path / "trash", poll_ms=50)
    qtbot.addWidget(b)
    b.config_provider = lambda: load_preset("ddpm-shapes")

    def accept(dlg):
        dlg.set_checked(["dcgan-digits", "vae-digits"])
        return dlg.queue_comparison() is not None
    b.exec_dialog = accept
    b.family_compare.plan_btn.click()
    [g] = TrainingQueue(root).groups()
    fc = b.family_compare
    assert b.tabs.currentWidget() is fc and fc.watching == comparison_path(root, g.id)
    assert fc.table.rowCount() == 0 and f"Waiting for the queued comparison {g.id}" in fc.note.text()
    assert [e.group for e in TrainingQueue(root).entries()] == [g.id, g.id]
    # the runner writes the compare command's result event, with the group and its runs
    result = comparison_path(root, g.id)
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps({"event": "result", "rows": ROWS, "n": 20, "csv": None, "seconds": 41.0,
                                  "group": g.id, "runs": [str(root / "run-ddpm"), str(root / "run-vae")]}))
    qtbot.waitUntil(lambda: fc.table.rowCount() == 2, timeout=5000)
    assert [fc.table.item(i, 0).text() for i in (0, 1)] == ["ddpm", "vae"] and len(fc.plotted) == 2
    assert f"the queued comparison {g.id}" in fc.header.text() and str(result) in fc.header.text()
    # its entries offer the comparison again from the Queue view
    TrainingQueue(root).update_group(g.id, state="done", result=str(result))
    fc.show_result({"rows": [], "n": 0})
    b.queue_view.refresh()
    b.queue_view.select(g.entries[0])
    assert b.queue_view.compare_btn.isEnabled()
    b.queue_view.compare_btn.click()
    assert b.tabs.currentWidget() is fc and fc.table.rowCount() == 2


def test_each_preset_keeps_its_own_time_budget(qtbot, tmp_path):
    dlg = CompareFamiliesDialog(tmp_path / "runs", SHAPES)
    qtbot.addWidget(dlg)
    dlg.set_checked(["dcgan-digits", "vae-digits"])
    dlg.budgets["dcgan-digits"].setValue(1)
    dlg.budgets["vae-digits"].setValue(3)
    assert dlg.queue_comparison() is not None
    got = [(e.name, e.time_budget_s, e.config["training"]["time_budget_s"]) for e in TrainingQueue(tmp_path / "runs").entries()]
    assert got == [("dcgan-digits", 60.0, 60.0), ("vae-digits", 180.0, 180.0)]
    assert "1–3 min each" in dlg.summary


def test_run_queue_trains_a_tiny_entry_and_the_run_appears_in_the_list(qtbot, tmp_path):
    """One real `genlab-engine queue run` from the Run queue button: a 2-step run of 8x8 digits."""
    from tests.engine.test_family_compare import tiny
    root = tmp_path / "runs"
    b = RunsBrowser(root, trash_dir=tmp_path / "trash", poll_ms=100)
    qtbot.addWidget(b)
    b.show()
    b.show_queue()
    v = b.queue_view
    e = TrainingQueue(root).add(tiny("vae").replace(name="queued-vae", training={"steps": 2}).to_dict())
    v.refresh()
    events = []
    v.job.changed.connect(events.append)
    with qtbot.waitSignal(v.job.finished, timeout=120_000) as ended:
        v.run_btn.click()
        assert not v.run_btn.isEnabled() and v.stop_btn.isEnabled()
    assert ended.args == [0, ""], v.job.stderr_tail()
    [done] = TrainingQueue(root).entries()
    assert done.id == e.id and done.state == "done" and done.run_dir
    assert [(ev["entry"], ev["state"]) for ev in events if ev["event"] == "queue"][-1] == (e.id, "done")
    qtbot.waitUntil(lambda: states(v) == ["done"], timeout=5000)
    qtbot.waitUntil(lambda: b.run_item(done.run_dir) is not None, timeout=5000)   # in the runs list by itself
    assert "runner ended" in v.message.text() and v.runner is None
