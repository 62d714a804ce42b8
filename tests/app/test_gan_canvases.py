"""The style-mixing and interpolation canvases, driven as a person would, on a tiny StyleGAN (and
the interpolation canvas also on a DDPM: it works by capability, not by family)."""

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from app.canvases.interpolation import InterpolationCanvas
from app.canvases.style_mixing import StyleMixCanvas
from app.worker_session import WorkerSession
from engine.training.loop import train
from tests.conftest import tiny_config
from tests.engine.test_gan import gan_config


@pytest.fixture(scope="module")
def stylegan_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("sg")
    r = train(gan_config("stylegan").replace(training={"steps": 4, "checkpoint_every": 0}), root / "run",
              emit=lambda e: None)
    assert r.state == "finished"
    return str(r.last_checkpoint)


@pytest.fixture
def session(qtbot):
    s = WorkerSession()
    yield s
    s.shutdown()


def test_style_mixing_canvas_renders_grid_rerenders_on_change_and_exports(qtbot, tmp_path, stylegan_ckpt, session):
    canvas = StyleMixCanvas(session)
    qtbot.addWidget(canvas)
    canvas.show()
    session.set_checkpoint(stylegan_ckpt)
    qtbot.waitUntil(lambda: len(canvas.layer_checks) == 6, timeout=60000)   # 16x16: 3 levels, 6 styles
    psi = canvas.options.editors["truncation_psi"]                        # the model's own options
    assert psi.isEnabled() and "noise_mode" in canvas.options.editors
    assert [c.isChecked() for c in canvas.layer_checks] == [i in canvas.groups["coarse"] for i in range(6)]
    canvas.rows.setText("1-3")
    canvas.cols.setText("4, 5")
    canvas.render()                                    # shown after the grid rendered on load, if still running
    qtbot.waitUntil(lambda: not canvas.live_busy(), timeout=60000)
    size = canvas.view.image_size()
    assert (size.width(), size.height()) == (3 * 17 + 1, 4 * 17 + 1)    # (cols+1) x (rows+1) cells of 16 + pad
    first = Image.open(canvas.view.path).copy()
    # a click on "fine" and a psi drag each re-render, live: every frame is shown, the newest last
    qtbot.mouseClick(canvas.preset_btns["fine"], Qt.LeftButton)
    assert [i for i, c in enumerate(canvas.layer_checks) if c.isChecked()] == canvas.groups["fine"]
    shown = []
    canvas.rendered.connect(shown.append)
    for v in (0.9, 0.7, 0.5):
        psi.setValue(v)
    qtbot.waitUntil(lambda: not canvas.live_busy(), timeout=60000)
    assert len(shown) >= 2 and canvas.frame_rate() > 0     # at least the "fine" grid, then the newest psi
    assert canvas.latency.text().endswith("round trip")
    assert Image.open(canvas.view.path).tobytes() != first.tobytes()
    out = tmp_path / "mix.png"
    canvas.save_to(str(out))
    assert Image.open(out).size == (3 * 17 + 1, 4 * 17 + 1)
    # an image becomes a source: it is projected, then the grid gains a column
    src = tmp_path / "face.png"
    Image.new("L", (40, 40), 200).save(src)
    with qtbot.waitSignal(canvas.rendered, timeout=120000):
        canvas.add_image(str(src), to="columns")
    assert canvas.view.image_size().width() == 4 * 17 + 1
    # a bad source names itself, and nothing is sent
    canvas.cols.setText("4, nope.txt")
    assert canvas.render() == 0 and "nope.txt" in canvas.status.text()


def test_interpolation_canvas_strip_animation_and_exports(qtbot, tmp_path, stylegan_ckpt, session):
    canvas = InterpolationCanvas(session)
    qtbot.addWidget(canvas)
    canvas.show()
    session.set_checkpoint(stylegan_ckpt)
    qtbot.waitUntil(canvas.render_btn.isEnabled, timeout=60000)
    assert canvas.mode.currentText() == "lerp" and canvas.options.editors["truncation_psi"].isEnabled()
    canvas.frames_spin.setValue(6)
    canvas.seed.setValue(9)
    qtbot.mouseClick(canvas.add_seed_btn, Qt.LeftButton)              # three endpoints: 1, 2, 9
    assert canvas.endpoint_specs() == [1, 2, 9]
    qtbot.mouseClick(canvas.render_btn, Qt.LeftButton)   # after the walk rendered on load, if still running
    qtbot.waitUntil(lambda: not canvas.live_busy(), timeout=60000)
    assert len(canvas.frames) == 6 and QImage(canvas.strip.path).width() == 6 * 17 + 1   # the engine's strip
    assert len(canvas.strip.frames) == 6          # shown as a sheet of frames
    qtbot.waitUntil(lambda: canvas.frame_index >= 3, timeout=5000)   # the preview animates
    assert canvas.preview.pixmap() is not None and not canvas.preview.pixmap().isNull()
    for suffix in (".gif", ".mp4"):
        out = tmp_path / f"walk{suffix}"
        with qtbot.waitSignal(canvas.exported, timeout=60000):
            canvas.export(str(out))
        assert out.is_file() and out.stat().st_size > 100
    assert Image.open(tmp_path / "walk.gif").n_frames == 6


def test_interpolation_canvas_works_on_ddpm_and_style_mixing_says_why_not(qtbot, tmp_path, session):
    r = train(tiny_config(training={"steps": 4}), tmp_path / "run", emit=lambda e: None)
    mix, walk = StyleMixCanvas(session), InterpolationCanvas(session)
    for c in (mix, walk):
        qtbot.addWidget(c)
    session.set_checkpoint(str(r.last_checkpoint))
    qtbot.waitUntil(walk.render_btn.isEnabled, timeout=60000)
    assert "no per-layer styles" in mix.status.text() and not mix.rows.isEnabled()
    # decoding options only: steps and guidance, not the sampler or eta (a walk decodes with DDIM, eta 0)
    assert walk.mode.currentText() == "slerp" and set(walk.options.editors) == {"steps", "guidance_scale", "spacing"}
    walk.frames_spin.setValue(4)
    walk.options.editors["steps"].setValue(3)
    with qtbot.waitSignal(walk.rendered, timeout=60000):
        walk.render()
    assert len(walk.frames) == 4
