"""The runs browser's "Reflow this run…" (app/panels/run_actions.py): offered for runs whose family
can be reflowed (asked of its config section, engine/core/reflow.py), it fills the Model panel with
a reflow child of the run's checkpoint, on the Train tab, ready to start."""
from __future__ import annotations

from app.panels.runs import RunsBrowser
from tests.engine.test_runs_index import make_run


def test_reflow_is_offered_for_flow_matching_runs_only_and_fills_a_child_config(qtbot, tmp_path, faked):
    root = tmp_path / "runs"
    fm = make_run(root, "20240101-000000-fm", family="flow_matching", checkpoints=[5, 10],
                  status={"state": "finished", "step": 10, "total_steps": 10})
    fresh = make_run(root, "20240102-000000-fm-fresh", family="flow_matching",
                     status={"state": "running", "step": 0, "total_steps": 10})
    ddpm = make_run(root, "20240103-000000-ddpm", checkpoints=[5], status={"state": "finished", "step": 5,
                                                                           "total_steps": 5})
    b = RunsBrowser(root, trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    b.select_run(ddpm)
    assert b.actions.reflow_btn.isHidden()
    b.select_run(fresh)                       # no checkpoint yet: nothing to reflow
    assert not b.actions.reflow_btn.isHidden() and not b.actions.reflow_btn.isEnabled()
    b.select_run(fm)
    assert b.actions.reflow_btn.isEnabled()
    with qtbot.waitSignal(b.reflow_run) as sig:
        b.actions.reflow_btn.click()
    newest = fm / "checkpoints" / "step_000010.safetensors"
    assert sig.args == [str(fm), str(newest)]

    _, w = faked
    w.show_tab("runs")
    w.reflow_config(*sig.args)
    assert w.current_tab() == "train" and "reflow child of 20240101-000000-fm" in w.status_label.text()
    cfg = w.build_config()
    assert cfg is not None and cfg.family == "flow_matching"
    assert cfg.model.reflow is True and cfg.model.parent == str(newest) and cfg.name.endswith("-reflow")

    w.reflow_config(str(ddpm), str(ddpm / "checkpoints" / "step_000005.safetensors"))
    assert "cannot reflow 20240103-000000-ddpm" in w.status_label.text()
