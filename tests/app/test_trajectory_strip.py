"""The Sampling canvas's trajectory strip on a real tiny DDPM checkpoint, through the engine
worker: asking for the trajectory fills the strip (x_t above x̂0 per step), the slider moves the
large view through the steps; the guide picker lists the run's other checkpoints. And the strip
says why not for a family that does not sample in steps."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from app.canvases.sampling import SamplingCanvas
from app.widgets.trajectory_strip import TrajectoryStrip
from app.worker_session import WorkerSession
from engine.core.capabilities import Capabilities, SamplingCaps
from engine.training.loop import train
from tests.conftest import tiny_family_config


def pixels(view) -> bytes:
    img = QImage(view.path)
    return bytes(img.constBits()) if not img.isNull() else b""


def test_trajectory_strip_fills_and_the_slider_moves_the_preview(qtbot, tmp_path):
    res = train(tiny_family_config("ddpm", steps=4, checkpoint_every=2), tmp_path / "run", emit=lambda e: None)
    session = WorkerSession()
    canvas = SamplingCanvas(session)
    qtbot.addWidget(canvas)
    canvas.resize(1100, 760)
    canvas.show()
    canvas.set_checkpoint(str(res.last_checkpoint))
    qtbot.waitUntil(lambda: canvas.capabilities is not None, timeout=60000)
    assert canvas.traj_btn.isEnabled() and canvas.traj_note.text() == ""
    # the run's earlier checkpoint is offered as the guide
    assert [canvas.guide.itemData(i).rsplit("/", 1)[-1] for i in range(1, canvas.guide.count())] == \
        ["step_000002.safetensors"]
    canvas.options.editors["steps"].setValue(4)
    canvas.options.editors["sampler"].setCurrentText("ddim")
    canvas.seed.setValue(7)
    qtbot.mouseClick(canvas.traj_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: canvas.trajectory.count() == 4, timeout=60000)
    assert canvas.lower.currentIndex() == canvas.traj_tab   # the strip's tab is shown
    strip = canvas.trajectory
    assert len(strip.x0_paths) == 4 and strip.slider.isEnabled() and strip.slider.value() == 3
    assert "step 4 / 4" in strip.step_label.text()
    assert canvas.view.path == strip.x_paths[3]   # the large view shows the picked (last) step
    last = pixels(canvas.view)
    strip.slider.setValue(0)
    assert canvas.view.path == strip.x_paths[0] and pixels(canvas.view) != last   # noise, not the sample
    assert "step 1 / 4" in strip.step_label.text()
    canvas.traj_show.setCurrentIndex(1)   # the x̂0 row instead
    assert canvas.view.path == strip.x0_paths[0]
    # autoguided by the earlier checkpoint: the request carries it and a trajectory still comes back
    canvas.guide.setCurrentIndex(1)
    assert canvas.guide_scale.isEnabled()
    rid = canvas.request_trajectory()
    qtbot.waitUntil(lambda: canvas.traj_id == 0 and rid not in canvas.inflight, timeout=60000)
    assert canvas.trajectory.count() == 4 and "trajectory of seed 7" in canvas.status.text()
    canvas.shutdown()
    session.shutdown()


def test_a_family_without_steps_shows_why_there_is_no_trajectory(qtbot):
    canvas = SamplingCanvas(WorkerSession())
    qtbot.addWidget(canvas)
    canvas.session.loaded_checkpoint = "/nowhere/run/checkpoints/step_000001.safetensors"
    canvas._apply_trajectory_caps(Capabilities("gan", 8, 1, SamplingCaps(["truncation_psi"])))
    assert not canvas.traj_btn.isEnabled() and not canvas.guide.isEnabled()
    assert not canvas.lower.isTabEnabled(canvas.traj_tab)
    assert "does not sample in denoising steps" in canvas.lower.tabToolTip(canvas.traj_tab)
    assert "gan model does not sample in denoising steps" in canvas.traj_note.text()


def test_strip_click_picks_a_column(qtbot, tmp_path):
    paths = []
    for i in range(3):
        img = QImage(8, 8, QImage.Format_Grayscale8)
        img.fill(40 * i)
        paths.append(str(tmp_path / f"{i}.png"))
        img.save(paths[-1])
    strip = TrajectoryStrip()
    qtbot.addWidget(strip)
    strip.resize(300, 120)
    strip.show()
    seen = []
    strip.step_changed.connect(seen.append)
    strip.set_steps(paths, paths, [10.0, 1.0, None], [9, 5, 0])
    assert seen == [2] and "σ ∞" in strip.step_label.text()
    qtbot.mouseClick(strip.columns, Qt.LeftButton, pos=strip.columns.column_rect(0).center())
    assert seen == [2, 0] and strip.slider.value() == 0
