"""The Inpainting canvas: the methods follow the loaded model (classical fills always), options
are drawn from the family's dataclasses and greyed out per method, the frame follows the mask,
requests carry the painted mask, Cancel reaches the worker, results fill the strip and can be
compared, accepted (undoable) and saved with their parameters; and end to end with a real worker."""
import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings, Qt

from app.canvases.inpainting import InpaintingCanvas
from app.worker_session import WorkerSession
from engine.core.capabilities import Capabilities, ConditionalCaps, InpaintCaps, SamplingCaps
from tests.app.test_canvas_views import FakeClient

DDPM = Capabilities("ddpm", 8, 1, SamplingCaps(["sampler", "steps", "eta", "guidance_scale", "spacing"], True,
                                               ["ddim", "ddpm"]),
                    conditional=ConditionalCaps([str(i) for i in range(10)], guidance=True, unconditional=True),
                    inpaint=InpaintCaps(["repaint", "blend"], "engine.inpainting.options:DiffusionInpaintOptions"))
GAN = Capabilities("gan", 8, 1, SamplingCaps(["truncation_psi"]))
OPTIONS = {"sampler": "ddim", "steps": 7, "eta": 0.0, "guidance_scale": 2.0, "spacing": "linspace"}


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def canvas(qtbot, settings):
    client = FakeClient()
    c = InpaintingCanvas(WorkerSession(client), settings=settings)
    qtbot.addWidget(c)
    c.resize(1200, 800)
    c.editor.set_image(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)))
    return c, client


def methods(c):
    return [c.method.itemData(i) for i in range(c.method.count())]


def test_without_a_model_the_classical_fills_run_and_never_load_a_checkpoint(canvas):
    c, client = canvas
    assert methods(c) == ["telea", "ns"] and not c.model_group.isEnabled()
    assert c.inpaint() == 0 and "Paint the part to regenerate" in c.status.text()
    c.editor.stroke([(10, 10), (20, 10)])
    rid = c.inpaint()
    req = client.last("inpaint")
    assert rid and req["method"] == "telea" and req["checkpoint"] == ""
    mask = np.asarray(Image.open(req["mask"]))
    assert mask.shape == (32, 32) and mask[10, 15] == 255 and mask[25, 25] == 0
    assert np.array_equal(np.asarray(Image.open(req["image"])), c.editor.image())
    assert c.cancel_btn.isEnabled()
    c.cancel()
    assert client.last("cancel")["target"] == rid and "cancelling" in c.progress.format()


def test_a_diffusion_model_adds_its_methods_and_options_greyed_out_per_method(canvas):
    c, client = canvas
    c.session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, OPTIONS)
    assert methods(c) == ["repaint", "blend", "telea", "ns"] and c.current_method() == "repaint"
    assert c.model_group.isEnabled() and c.options.editors["steps"].value() == 7
    form = c._model_form
    assert set(form.editors) == {"jump", "resample", "strength", "start"}
    assert form.editors["jump"].isEnabled() and not c.settings_form.editors["radius"].isEnabled()
    c.method.setCurrentIndex(methods(c).index("blend"))
    assert not form.editors["jump"].isEnabled() and form.editors["strength"].isEnabled()
    c.method.setCurrentIndex(methods(c).index("ns"))
    assert c.settings_form.editors["radius"].isEnabled() and not c.model_group.isEnabled()
    # a model that cannot inpaint: the classical fills only, and the canvas says why
    client.ready(GAN, {"truncation_psi": 1.0}, checkpoint="/runs/a/step_000010.safetensors")
    assert methods(c) == ["telea", "ns"] and "cannot inpaint" in c.model_hint.text()


def test_method_titles_and_help_come_from_whoever_offers_the_method(canvas):
    c, client = canvas
    titles = lambda: [c.method.itemText(i) for i in range(c.method.count())]   # noqa: E731
    assert titles() == ["Telea (OpenCV, no model)", "Navier-Stokes (OpenCV, no model)"]
    assert "fast-marching" in c.method.itemData(0, Qt.ToolTipRole)
    c.session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, OPTIONS)   # the ddpm family's own titles, from its FamilySpec
    assert titles() == ["RePaint (resampling)", "Per-step blending", "Telea (OpenCV, no model)",
                        "Navier-Stokes (OpenCV, no model)"]
    assert "Lugmayr" in c.method.itemData(0, Qt.ToolTipRole)
    assert "methods: RePaint (resampling), Per-step blending, Telea (OpenCV, no model)" in c.status.text()
    # a family this GUI does not know: its method names as they are
    client.ready(Capabilities("newfam", 8, 1, SamplingCaps([]), inpaint=InpaintCaps(["magic"])), {},
                 checkpoint="/runs/a/step_000010.safetensors")
    assert titles()[0] == "magic"


def test_the_canvas_says_before_running_when_the_model_works_in_another_colour_mode(canvas):
    c, client = canvas
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[...] = (200, 180, 120)
    c.editor.set_image(colour)
    assert c.mode_note.isHidden()                         # no model yet: the classical fills keep colour
    c.session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, OPTIONS)                           # a greyscale model (1 channel)
    assert not c.mode_note.isHidden() and "works in greyscale" in c.mode_note.text()
    assert "away from the mask keeps its colour" in c.mode_note.text()
    c.method.setCurrentIndex(methods(c).index("telea"))   # a classical fill works in the image's colours
    assert c.mode_note.isHidden()
    c.method.setCurrentIndex(methods(c).index("repaint"))
    assert not c.mode_note.isHidden()
    c.editor.set_image(colour[..., 0])                    # a greyscale image: nothing to say
    assert c.mode_note.isHidden()
    rgb = Capabilities("ddpm", 8, 3, DDPM.sampling, inpaint=DDPM.inpaint)
    client.ready(rgb, OPTIONS, checkpoint="/runs/a/step_000010.safetensors")
    assert not c.mode_note.isHidden() and "works in colour" in c.mode_note.text()


def test_the_frame_shows_the_square_the_model_works_on(canvas):
    c, client = canvas
    c.session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, OPTIONS)
    c.editor.stroke([(5, 5)])
    assert c.editor.frame() is None                       # resize: the whole image
    c.settings_form.editors["fit"].setCurrentText("masked")
    c.settings_form.editors["padding"].setValue(3)
    x0, y0, x1, y1 = c.editor.frame()
    assert x1 - x0 == y1 - y0 and x0 <= 5 - 3 and x1 >= 5 + 3
    c.settings_form.editors["fit"].setCurrentText("crop")
    assert c.editor.frame() == (0, 0, 32, 32)


def test_a_model_request_carries_seeds_options_and_the_settings_are_remembered(canvas, qtbot, settings):
    c, client = canvas
    c.session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, OPTIONS)
    c.editor.stroke([(12, 12)])
    c.seeds.setText("3, 5-7")
    c._model_form.editors["resample"].setValue(4)
    c.settings_form.editors["feather"].setValue(2.0)
    c.inpaint()
    req = client.last("inpaint")
    assert req["seeds"] == [3, 5, 6, 7] and req["inpaint"]["resample"] == 4 and req["options"]["steps"] == 7
    assert req["settings"]["feather"] == 2.0 and req["checkpoint"].endswith("step_000010.safetensors")
    c.seeds.setText("x")
    assert c.inpaint() == 0 and "seeds" in c.status.text()
    again = InpaintingCanvas(WorkerSession(FakeClient()), settings=settings)
    qtbot.addWidget(again)
    assert again.seeds.text() == "3, 5-7" and again.settings_form.values()["feather"] == 2.0


def test_results_fill_the_strip_and_can_be_compared_accepted_undone_and_saved(canvas, tmp_path):
    c, client = canvas
    c.editor.stroke([(10, 10)])
    rid = c.inpaint()
    paths = []
    for s in (0, 1):
        p = tmp_path / f"r{s}.png"
        Image.fromarray(np.full((32, 32), 40 * (s + 1), np.uint8), "L").save(p)
        paths.append(str(p))
    c.on_progress(rid, "inpainting (repaint)", 5, 20)
    assert "left" in c.progress.format()
    client.event.emit({"event": "result", "id": rid, "op": "inpaint", "paths": paths, "seeds": [0, 1],
                       "method": "repaint", "region": [0, 0, 32, 32], "note": "", "elapsed_s": 0.5})
    assert c.strip.count() == 2 and c.strip.item(1).text() == "seed 1" and c.result_view.path == paths[0]
    c.strip.setCurrentRow(1)
    assert c.result_view.path == paths[1]
    c.compare_btn.pressed.emit()
    assert c.result_view.path.endswith("image.png")
    c.compare_btn.released.emit()
    assert c.result_view.path == paths[1]
    before = c.editor.image().copy()
    assert c.accept_result() and (c.editor.image() == 80).all()
    c.undo_accept()
    assert np.array_equal(c.editor.image(), before) and not c.undo_accept_btn.isEnabled()
    assert c.save_result(str(tmp_path / "kept.png"))
    assert (tmp_path / "kept.png").read_bytes() == open(paths[1], "rb").read()   # metadata and all
    assert "saved" in c.status.text()


def test_paint_run_a_classical_and_a_model_method_with_a_real_worker(qtbot, tmp_path, settings):
    from engine.training.loop import train
    from tests.conftest import tiny_config
    res = train(tiny_config(training={"steps": 4, "checkpoint_every": 0}, sampling={"steps": 4}), tmp_path / "run",
                emit=lambda e: None)
    session = WorkerSession()
    c = InpaintingCanvas(session, settings=settings)
    qtbot.addWidget(c)
    c.resize(1200, 800)
    c.show()
    img = np.zeros((24, 24), np.uint8)
    img[:, 12:] = 200
    Image.fromarray(img).save(tmp_path / "photo.png")
    assert c.editor.load_image_file(str(tmp_path / "photo.png"))
    # a real stroke with the mouse on the view
    view = c.editor.view
    a, b = view.image_to_widget(6, 12).toPoint(), view.image_to_widget(18, 12).toPoint()
    qtbot.mousePress(view, Qt.LeftButton, pos=a)
    qtbot.mouseMove(view, b)
    qtbot.mouseRelease(view, Qt.LeftButton, pos=b)
    assert c.editor.mask()[12, 12] > 0
    c.method.setCurrentIndex(methods(c).index("telea"))
    qtbot.mouseClick(c.inpaint_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: c.strip.count() == 1, timeout=60000)
    c.session.set_checkpoint(str(res.last_checkpoint))
    qtbot.waitUntil(lambda: "repaint" in methods(c), timeout=60000)
    # the titles the family's capabilities carry, as the GUI has always shown them
    assert [c.method.itemText(i) for i in range(c.method.count())][:2] == ["RePaint (resampling)", "Per-step blending"]
    c.seeds.setText("0, 1")
    c._model_form.editors["jump"].setValue(2)
    c._model_form.editors["resample"].setValue(2)
    qtbot.mouseClick(c.inpaint_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: c.strip.count() == 2, timeout=60000)
    out = Image.open(c.selected_path())
    meta = json.loads(out.text["genlab"])
    assert out.size == (24, 24) and meta["method"] == "repaint" and meta["seed"] == 0
    import cv2
    # away from the feathered edge: 1 model pixel = 3 image pixels here (24 px image, 8 px model)
    far = cv2.dilate((c.editor.mask() > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    assert far.sum() > 100
    assert np.array_equal(np.asarray(out)[far], img[far])
    session.shutdown()
