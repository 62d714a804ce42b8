"""The runs browser (app/panels/runs.py): what a person sees of the runs under a folder, and what
its buttons do."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from app.panels.run_tree import C_BEST, C_DATASET, C_FAMILY, C_LOSS, C_NAME, C_STATE, C_STEP
from app.panels.runs import RunsBrowser
from tests.conftest import ROOT, tiny_config
from tests.engine.test_runs_index import add_checkpoint, dead_pid, live_status, make_run, write_png


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """A run trained by the command line (10 steps; samples every 5; checkpoints every 5)."""
    root = tmp_path_factory.mktemp("cli")
    cfg = tiny_config(training={"steps": 10, "log_every": 2, "sample_every": 5, "checkpoint_every": 5})
    cfg.save(root / "tiny.toml")
    run = root / "runs" / "20240102-000000-tiny"
    subprocess.run([sys.executable, "-m", "engine", "train", "--config", str(root / "tiny.toml"),
                    "--run-dir", str(run), "--no-stdin"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    return run


def row_of(b: RunsBrowser, name: str) -> dict:
    it = next(it for it in _run_items(b) if it.text(C_NAME) == name)
    return {"state": it.text(C_STATE), "family": it.text(C_FAMILY), "dataset": it.text(C_DATASET),
            "step": it.text(C_STEP), "best": it.text(C_BEST)}


def _run_items(b: RunsBrowser):
    for i in range(b.tree.topLevelItemCount()):
        top = b.tree.topLevelItem(i)
        yield from (top.child(j) for j in range(top.childCount()))


def names(b: RunsBrowser) -> list[str]:
    return [it.text(C_NAME) for it in _run_items(b)]


def browser(qtbot, root: Path, tmp_path: Path, **kw) -> RunsBrowser:
    b = RunsBrowser(root, trash_dir=tmp_path / "trash", **kw)
    qtbot.addWidget(b)
    return b


def test_the_list_shows_runs_made_by_the_cli_and_by_hand_with_their_state(qtbot, tmp_path, cli_run):
    root = cli_run.parent
    rows = [{"step": s, "loss_d": 1.0 / s, "loss_g": 2.0, **({"fid": 40.0 - s} if s % 4 == 0 else {})}
            for s in range(1, 13)]
    make_run(root, "20230101-000000-killed", family="gan", dataset="shapes", rows=rows, checkpoints=[6],
             status={"state": "running", "step": 12, "total_steps": 40, "pid": dead_pid(), "host": live_status()["host"]})
    make_run(root, "20250101-000000-live", status=live_status(step=3, total_steps=30))
    b = browser(qtbot, root, tmp_path)
    assert names(b) == ["20250101-000000-live", "20240102-000000-tiny", "20230101-000000-killed"]
    assert row_of(b, "20240102-000000-tiny") == {"state": "finished", "family": "ddpm", "dataset": "digits",
                                                 "step": "10/10", "best": "–"}
    assert row_of(b, "20230101-000000-killed") == {"state": "interrupted", "family": "gan", "dataset": "shapes",
                                                   "step": "12/40", "best": "FID 28"}
    assert "best FID: 28 at step 12" in b.run_item(root / "20230101-000000-killed").toolTip(C_BEST)
    assert row_of(b, "20250101-000000-live")["state"] == "running"
    tiny = b.run_item(cli_run)
    spark = tiny.icon(C_LOSS).pixmap(84, 20).toImage()
    assert any(spark.pixelColor(x, y).alpha() for x in range(spark.width()) for y in range(spark.height()))
    assert tiny.toolTip(C_LOSS).startswith("loss mse: last")
    assert b.tree.topLevelItem(0).text(0).endswith("(3 runs)")

    b.select_run(cli_run)
    assert "20240102-000000-tiny" in b.header.text() and "finished" in b.header.text()
    assert b.flipbook.slider.maximum() == 2 and b.flipbook.image.path.endswith("step_000010.png")   # grids of steps 0, 5, 10
    assert b.flipbook.slider_label.text().startswith("step 10")
    assert [b.flipbook.checkpoints.item(i).text() for i in range(b.flipbook.checkpoints.count())] == ["step 5", "step 10"]
    assert 'family = "ddpm"' in b.config_text.toPlainText()
    assert b.curves.plots["loss"].point_count("loss/mse") == 6   # steps 1, 2, 4, 6, 8, 10


def test_a_run_started_later_appears_and_new_grids_extend_the_slider(qtbot, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    b = browser(qtbot, root, tmp_path)
    assert names(b) == []
    run = make_run(root, "20250101-000000-shell", rows=[{"step": 2, "loss/mse": 1.0}],
                   status=live_status(step=2, total_steps=20), samples=[0], checkpoints=[])
    assert names(b) == []
    b.poll()
    assert names(b) == ["20250101-000000-shell"] and row_of(b, "20250101-000000-shell")["step"] == "2/20"
    b.select_run(run)
    assert b.flipbook.slider.maximum() == 0 and b.flipbook.checkpoints.count() == 0

    write_png(run / "samples" / "step_000005.png", 50)
    add_checkpoint(run, 5)
    (run / "status.json").write_text(json.dumps(live_status(step=5, total_steps=20)))
    b.poll()
    assert b.flipbook.slider.maximum() == 1 and b.flipbook.image.path.endswith("step_000005.png")  # it follows the newest
    assert b.flipbook.checkpoints.count() == 1 and row_of(b, "20250101-000000-shell")["step"] == "5/20"
    b.flipbook.slider.setValue(0)                                    # looking at an older grid: it stays there
    write_png(run / "samples" / "step_000010.png", 90)
    b.poll()
    assert b.flipbook.slider.maximum() == 2 and b.flipbook.image.path.endswith("step_000000.png")


def test_the_slider_shows_each_steps_grid_and_a_thumbnail_opens_its_checkpoint(qtbot, tmp_path, cli_run):
    b = browser(qtbot, cli_run.parent, tmp_path)
    b.select_run(cli_run)
    b.flipbook.slider.setValue(1)
    assert b.flipbook.image.path == str(cli_run / "samples" / "step_000005.png")
    assert b.flipbook.slider_label.text().startswith("step 5") and b.flipbook.checkpoints.currentItem().text() == "step 5"
    b.flipbook.slider.setValue(0)
    assert b.flipbook.image.path.endswith("step_000000.png")
    b.show()
    b.tabs.setCurrentIndex(0)
    item = b.flipbook.checkpoints.item(1)
    rect = b.flipbook.checkpoints.visualItemRect(item)
    with qtbot.waitSignal(b.open_checkpoint, timeout=2000) as sig:
        qtbot.mouseClick(b.flipbook.checkpoints.viewport(), Qt.LeftButton, pos=rect.center())
    assert sig.args == [str(cli_run / "checkpoints" / "step_000010.safetensors")]
    assert b.flipbook.image.path.endswith("step_000010.png")      # the grid of that checkpoint's step
    b.flipbook.checkpoints.setCurrentRow(0)
    out = b.actions.export_checkpoint(tmp_path / "exported.safetensors")
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert out.stat().st_size == (cli_run / "checkpoints" / "step_000005.safetensors").stat().st_size


def test_compare_overlays_the_selected_runs_by_step_or_training_time(qtbot, tmp_path):
    root = tmp_path / "runs"
    a = make_run(root, "run-a", rows=[{"step": s, "elapsed_s": s * 0.5, "loss/mse": 1.0 / s} for s in (1, 2, 3, 4)])
    c = make_run(root, "run-c", rows=[{"step": s, "elapsed_s": s * 2.0, "loss/mse": 2.0 / s} for s in (2, 4, 6)])
    make_run(root, "run-b", rows=[{"step": 1, "loss/mse": 1.0}])
    b = browser(qtbot, root, tmp_path)
    b.select_run(a)
    assert not b.compare_btn.isEnabled()
    b.select_run(a, c)
    assert b.compare_btn.isEnabled()
    b.compare_btn.click()
    assert b.tabs.currentWidget() is b.compare
    assert set(b.compare.curves) == {"run-a", "run-c"} and b.compare.key.currentText() == "loss/mse"
    legend = sorted(label.text for _, label in b.compare.legend.items)
    assert legend == ["run-a", "run-c"]
    assert list(b.compare.curves["run-c"].getData()[0]) == [2, 4, 6]
    b.compare.x_axis.setCurrentText("training time")
    assert list(b.compare.curves["run-c"].getData()[0]) == [4.0, 8.0, 12.0]
    assert list(b.compare.curves["run-a"].getData()[0]) == [0.5, 1.0, 1.5, 2.0]
    b.compare.smooth.setChecked(False)
    assert list(b.compare.curves["run-a"].yData) == pytest.approx([1, 0.5, 1 / 3, 0.25])


def test_rename_and_delete_to_the_trash_and_both_refuse_a_live_run(qtbot, tmp_path):
    root = tmp_path / "runs"
    old = make_run(root, "20240101-000000-old", status={"state": "finished", "step": 30, "total_steps": 30})
    live = make_run(root, "20250101-000000-live", status=live_status(step=3, total_steps=30))
    b = browser(qtbot, root, tmp_path)
    b.select_run(old)
    b.actions.ask_text = lambda title, label, text: "20240101-000000-keeper"
    b.actions.rename_btn.click()
    assert names(b) == ["20250101-000000-live", "20240101-000000-keeper"] and not old.exists()
    kept = root / "20240101-000000-keeper"
    assert b.current.path == kept and "Renamed" in b.actions.message.text()

    asked = []
    b.actions.confirm = lambda title, text: asked.append(text) or False
    b.actions.delete_btn.click()
    assert kept.is_dir() and "to the trash?" in asked[0]           # cancelled: nothing moved
    b.actions.confirm = lambda title, text: True
    b.actions.delete_btn.click()
    assert not kept.exists() and (tmp_path / "trash" / "files" / kept.name / "config.toml").is_file()
    assert names(b) == ["20250101-000000-live"] and b.current is None

    b.select_run(live)
    assert not b.actions.rename_btn.isEnabled() and not b.actions.delete_btn.isEnabled()
    assert "stop it first" in b.actions.rename_btn.toolTip()
    assert b.actions.rename("other") is None and live.is_dir() and "live run" in b.actions.message.text()
    assert b.actions.delete() is None and live.is_dir() and "live run" in b.actions.message.text()
    assert not (tmp_path / "trash" / "info" / f"{live.name}.trashinfo").exists()


def test_resume_continue_duplicate_and_export_emit_and_write_what_they_say(qtbot, tmp_path):
    root = tmp_path / "runs"
    killed = make_run(root, "killed", checkpoints=[10],
                      status={"state": "running", "step": 12, "total_steps": 30, "pid": dead_pid(),
                              "host": live_status()["host"]})
    done = make_run(root, "done", status={"state": "finished", "step": 30, "total_steps": 30})
    live = make_run(root, "live", status=live_status(step=3, total_steps=30))
    b = browser(qtbot, root, tmp_path)
    b.select_run(killed)
    assert b.actions.resume_btn.isEnabled() and "Resume continues" in b.header.text()
    with qtbot.waitSignal(b.resume_run) as sig:
        b.actions.resume_btn.click()
    assert sig.args == [str(killed), 0]
    b.actions.extra_steps.setValue(500)
    with qtbot.waitSignal(b.resume_run) as sig:
        b.actions.continue_btn.click()
    assert sig.args == [str(killed), 500]
    with qtbot.waitSignal(b.duplicate_config) as sig:
        b.actions.duplicate_btn.click()
    assert sig.args == [str(killed / "config.toml")]
    with qtbot.waitSignal(b.open_run) as sig:
        b.actions.open_btn.click()
    assert sig.args == [str(killed)]
    out = b.actions.export_config(tmp_path / "again.toml")
    assert "python -m engine train --config" in out.read_text() and "again.toml" in b.actions.message.text()

    b.select_run(done)
    assert not b.actions.resume_btn.isEnabled() and b.actions.continue_btn.isEnabled() and b.actions.extra_steps.value() == 30
    assert not b.actions.export_ckpt_btn.isEnabled()                # no checkpoint to export
    b.select_run(live)
    assert not b.actions.resume_btn.isEnabled() and not b.actions.continue_btn.isEnabled()
    emitted = []
    b.resume_run.connect(lambda *a: emitted.append(a))
    b.actions.resume()
    b.actions.continue_longer()
    assert emitted == []


def test_added_folders_are_listed_and_remembered(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    root, cluster = tmp_path / "runs", tmp_path / "cluster"
    make_run(root, "local")
    job = make_run(cluster, "job-17", status={"state": "running", "step": 100, "total_steps": 1000, "pid": 4242,
                                             "host": "gpu-node-3"})
    b = browser(qtbot, root, tmp_path, settings=settings)
    assert b.add_folder(job) == cluster                    # a run folder adds the folder that holds it
    assert names(b) == ["local", "job-17"]
    assert row_of(b, "job-17")["state"] == "running"         # another machine's pid: cannot be judged here
    settings.sync()
    again = browser(qtbot, root, tmp_path, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    assert [again.tree.topLevelItem(i).data(0, Qt.UserRole) for i in range(2)] == [str(root), str(cluster)]
    again.tree.setCurrentItem(again.tree.topLevelItem(1))
    again.remove_folder()
    assert again.tree.topLevelItemCount() == 1 and again.folders() == [root] and cluster.is_dir()


def tab_titles(b: RunsBrowser) -> list[str]:
    return [b.flipbook.picker.tabText(i) for i in range(b.flipbook.picker.count())]


def pick(b: RunsBrowser, title: str) -> None:
    b.flipbook.picker.setCurrentIndex(tab_titles(b).index(title))


def test_the_flip_book_shows_every_artifact_the_run_declares_and_a_picker_chooses_which(qtbot, tmp_path):
    from PySide6.QtGui import QColor
    from engine.core.artifacts import RECONSTRUCTIONS, ArtifactSpec
    root = tmp_path / "runs"
    # a VAE run from before artifacts.json: its sample grids and reconstructions are found by their folders
    vae = make_run(root, "20240101-000000-vae", family="vae", samples=[0, 5, 10], checkpoints=[5, 10],
                   status=live_status(step=10, total_steps=20))
    for step in (0, 5, 10):
        write_png(vae / "samples" / "recon" / f"step_{step:06d}.png", 200)
    # a run that declares a third artifact of its own
    hist = ArtifactSpec("hist", "token histogram", "samples/hist", "token counts at step {step}")
    declared = make_run(root, "20240102-000000-tokens", samples=[0, 5], status={"state": "finished", "step": 5})
    (declared / "artifacts.json").write_text(json.dumps(
        [{"key": "samples", "title": "samples", "folder": "samples", "caption": "samples at step {step}"},
         RECONSTRUCTIONS.to_dict(), hist.to_dict()]))
    write_png(declared / "samples" / "recon" / "step_000000.png", 120)
    for step in (5, 10):
        write_png(declared / "samples" / "hist" / f"step_{step:06d}.png", 60)
    plain = make_run(root, "20240103-000000-plain", samples=[0, 5], status={"state": "finished", "step": 5})
    b = browser(qtbot, root, tmp_path)
    fb = b.flipbook

    b.select_run(vae)
    assert not fb.picker.isHidden() and tab_titles(b) == ["samples", "reconstructions"]
    assert fb.image.path == str(vae / "samples" / "step_000010.png") and fb.caption.text() == "samples at step 10"
    pick(b, "reconstructions")
    assert fb.slider.maximum() == 2 and fb.image.path == str(vae / "samples" / "recon" / "step_000010.png")
    fb.slider.setValue(1)
    assert fb.image.path == str(vae / "samples" / "recon" / "step_000005.png")
    assert fb.caption.text() == RECONSTRUCTIONS.caption_at(5) and fb.slider_label.text().startswith("step 5")
    # the checkpoint thumbnails stay the sample grids; a click flips the artifact shown to its step
    thumb = fb.checkpoints.item(1).icon().pixmap(72, 72).toImage()
    assert thumb.pixelColor(36, 36) == QColor(10 * 37 % 256, 255 - 10 * 37 % 256, 80)
    fb._on_checkpoint_clicked(fb.checkpoints.item(1))
    assert fb.image.path == str(vae / "samples" / "recon" / "step_000010.png")
    # a live run's new reconstruction shows at the next scan (nothing the index reads changed)
    write_png(vae / "samples" / "recon" / "step_000015.png", 210)
    b.poll()
    assert fb.slider.maximum() == 3 and fb.image.path.endswith("recon/step_000015.png")
    pick(b, "samples")
    assert fb.slider.maximum() == 2 and fb.image.path == str(vae / "samples" / "step_000010.png")

    b.select_run(declared)
    assert tab_titles(b) == ["samples", "reconstructions", "token histogram"] and not fb.picker.isHidden()
    assert fb.image.path == str(declared / "samples" / "step_000005.png")
    pick(b, "token histogram")
    assert fb.slider.maximum() == 1 and fb.image.path == str(declared / "samples" / "hist" / "step_000010.png")
    assert fb.caption.text() == "token counts at step 10"
    fb.slider.setValue(0)
    assert fb.image.path == str(declared / "samples" / "hist" / "step_000005.png")
    assert fb.caption.text() == "token counts at step 5"
    pick(b, "reconstructions")   # step 5 has no reconstruction: its newest
    assert fb.image.path == str(declared / "samples" / "recon" / "step_000000.png")

    b.select_run(plain)   # only sample grids: nothing to choose
    assert fb.picker.isHidden() and tab_titles(b) == ["samples"]
    assert fb.image.path == str(plain / "samples" / "step_000005.png") and fb.caption.text() == "samples at step 5"
    b.select_run(vae)     # the artifact picked last, where the run has it
    assert tab_titles(b) == ["samples", "reconstructions"] and fb.spec.title == "samples"


def test_selecting_another_run_leaves_nothing_of_the_one_before_on_screen(qtbot, tmp_path):
    root = tmp_path / "runs"
    rows = [{"step": s, "loss/mse": 1.0 / s, **({"quality/fid": 50.0 - s} if s % 5 == 0 else {})} for s in range(1, 11)]
    first = make_run(root, "20240101-000000-first", rows=rows, samples=[0, 5, 10], checkpoints=[5, 10],
                     status={"state": "finished", "step": 10, "total_steps": 10})
    for step in (0, 5, 10):
        write_png(first / "samples" / "recon" / f"step_{step:06d}.png", 90)
    empty = make_run(root, "20240102-000000-empty", status={"state": "failed", "step": 0, "message": "out of memory"})
    broken = make_run(root, "20240103-000000-broken", rows=rows[:2], status={"state": "stopped", "step": 2})
    (broken / "samples" / "step_000002.png").write_bytes(b"\x89PNG cut short")   # unreadable
    b = browser(qtbot, root, tmp_path)
    fb, curves = b.flipbook, b.curves

    def click(run):   # as a click does: the selection goes from one run to the other at once
        b.tree.setCurrentItem(b.run_item(run))
        assert b.current.path == run

    def show_first():
        b.select_run(first)
        pick(b, "reconstructions")
        assert fb.image.has_image() and fb.checkpoints.count() == 2 and "first" in b.header.text()
        assert curves.plots["loss"].point_count() == 10 and curves.quality_plot.point_count() == 2
        assert not curves.quality_plot.isHidden() and "fid" in curves.quality_plot.status.text()

    show_first()
    click(empty)
    assert not fb.image.has_image() and fb.image.path == "" and fb.caption.text() == ""
    assert fb.slider.maximum() == 0 and fb.checkpoints.count() == 0 and fb.picker.isHidden()
    assert "first" not in b.header.text() and "empty" in b.header.text() and "out of memory" in b.header.text()
    assert all(p.point_count() == 0 for p in curves.plots.values()) and curves.quality_plot.point_count() == 0
    assert curves.quality_plot.isHidden() and curves.quality_plot.status.text() == ""
    assert b.config_text.toPlainText() == (empty / "config.toml").read_text(encoding="utf-8")

    show_first()
    click(broken)   # its only grid cannot be read: the first run's image must not stay
    assert not fb.image.has_image() and "could not be read" in fb.image.placeholder
    assert fb.slider_label.text().startswith("step 2") and fb.checkpoints.count() == 0
    assert curves.plots["loss"].point_count() == 2 and curves.quality_plot.isHidden()
    assert "broken" in b.header.text() and "first" not in b.header.text()

    show_first()
    b.tree.setCurrentItem(b.tree.topLevelItem(0))   # the folder: no run
    assert b.current is None and not fb.image.has_image() and fb.checkpoints.count() == 0
    assert b.header.text().startswith("Select a run") and b.config_text.toPlainText() == ""
    assert all(p.point_count() == 0 for p in curves.plots.values()) and curves.quality_plot.isHidden()
