"""The runs browser shows a two-stage run's parent (engine/core/parents.py): a "parent:" line in the
run's header, a link that selects the parent run (listing its folder when it is elsewhere), and the
parent's path in the run's tooltip. Run folders are written by hand, as a shell or a cluster leaves them."""
from __future__ import annotations

from app.panels.run_tree import C_NAME, PARENT_LINK
from app.panels.runs import RunsBrowser
from engine.core.config import RunConfig
from tests.engine.test_runs_index import add_checkpoint, make_run


def child_run(root, name, parent: str):
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    RunConfig(name=name).replace(model={"family": "ldm", "parent": parent}).save(run / "config.toml")
    (run / "status.json").write_text('{"state": "finished", "step": 2, "total_steps": 2}')
    return run


def test_a_child_run_shows_its_parent_and_the_link_selects_the_parent_run(qtbot, tmp_path):
    runs, elsewhere = tmp_path / "runs", tmp_path / "vae-runs"
    parent = make_run(elsewhere, "20240101-000000-vae-digits", family="vae",
                      status={"state": "finished", "step": 4, "total_steps": 4})
    ckpt = add_checkpoint(parent, 4)
    child = child_run(runs, "20240102-000000-ldm-digits", str(ckpt))
    b = RunsBrowser(runs, trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    assert b.run_item(parent) is None     # its folder is not listed yet
    b.select_run(child)
    text = b.header.text()
    assert f"parent: <a href='{PARENT_LINK}'>20240101-000000-vae-digits</a> (step_000004.safetensors)" in text
    assert f"parent: {ckpt}" in b.run_item(child).toolTip(C_NAME)

    b.header.linkActivated.emit(PARENT_LINK)     # what a click on the link sends
    assert b.current is not None and b.current.path == parent
    assert b.tree.current_run() == parent and b.run_item(parent).isSelected()
    assert elsewhere in b.folders()                # listed now, as "Add folder…" would
    assert "parent:" not in b.header.text()        # a VAE has no parent


def test_a_parent_outside_any_run_is_shown_as_its_path_without_a_link(qtbot, tmp_path):
    loose = tmp_path / "models" / "vae.safetensors"
    child = child_run(tmp_path / "runs", "20240102-000000-ldm", str(loose))
    b = RunsBrowser(tmp_path / "runs", trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    b.select_run(child)
    assert f"parent: {loose}" in b.header.text() and "<a href" not in b.header.text()
    assert not b.select_parent()
