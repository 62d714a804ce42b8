"""The Sampling canvas as a gallery: each image with its own seed and class, click to enlarge, save
one (its PNG carries the parameters that made it), drop it back to restore those settings and get
the same image again; a history of batches; Cancel that really stops the worker's sampling; the
evaluation's Cancel and time left. With a real worker, and with a fake one where the worker's
replies are played by the test."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QProcess, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QGuiApplication

from app.canvases.sampling import SamplingCanvas
from app.worker_session import WorkerSession
from engine.core.pnginfo import read_png_info, write_png
from engine.training.loop import train
from tests.app.test_canvas_views import DDPM, STYLE, FakeClient
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    res = train(tiny_config(training={"steps": 2, "checkpoint_every": 0}),
                tmp_path_factory.mktemp("gallery") / "run", emit=lambda e: None)
    assert res.state == "finished", res.message
    return str(res.last_checkpoint)


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_gallery_images_carry_their_parameters_and_a_dropped_one_restores_them(qtbot, tmp_path, checkpoint):
    session = WorkerSession()
    canvas = SamplingCanvas(session)
    qtbot.addWidget(canvas)
    canvas.show()
    canvas.set_checkpoint(checkpoint)
    qtbot.waitUntil(lambda: canvas.cls.count() == 11, timeout=60000)
    canvas.n.setValue(6)
    canvas.seed.setValue(3)
    canvas.options.editors["steps"].setValue(3)
    qtbot.mouseClick(canvas.sample_btn, Qt.LeftButton)
    gallery = canvas.gallery
    qtbot.waitUntil(lambda: gallery.count() == 6, timeout=60000)
    batch = gallery.current_batch()
    assert [im.seed for im in batch.images] == [3, 4, 5, 6, 7, 8] and [im.cls for im in batch.images] == list(range(6))
    assert gallery.list.item(2).text() == "seed 5\nclass 2" and "class 2" in gallery.list.item(2).toolTip()
    assert canvas.view.path == batch.grid and canvas.save_btn.isEnabled()
    # click one: it is shown enlarged; save it: its PNG says how it was made
    gallery.select(2)
    assert canvas.view.path == batch.images[2].path and canvas.view.image_size().width() == 8
    one = tmp_path / "one.png"
    gallery.save_current_to(str(one))
    meta = read_png_info(one)
    assert (meta["seed"], meta["cls"], meta["options"]["steps"], meta["family"]) == (5, 2, 3, "ddpm")
    assert gallery.copy_current() and QGuiApplication.clipboard().image().width() == 8
    # the grid saves with the batch's parameters; "Save all" writes every image and the grid
    canvas.save_to(str(tmp_path / "grid.png"))
    assert read_png_info(tmp_path / "grid.png")["n"] == 6
    assert len(gallery.save_all_to(str(tmp_path / "all"))) == 7

    # the dropped PNG restores its seed, class, one image and the options; Sample makes it again
    canvas.seed.setValue(0)
    canvas.n.setValue(50)
    canvas.cls.setCurrentIndex(0)
    canvas.options.editors["steps"].setValue(5)
    assert canvas.restore_png_info(str(one))
    assert (canvas.seed.value(), canvas.n.value(), canvas.cls.currentData()) == (5, 1, 2)
    assert canvas.options.editors["steps"].value() == 3 and not canvas.origin_btn.isVisible()
    qtbot.mouseClick(canvas.sample_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(gallery.batches) == 2, timeout=60000)
    assert gallery.count() == 1 and np.array_equal(_pixels(gallery.current_batch().images[0].path), _pixels(one))
    # the history shows the first batch again
    assert gallery.history.count() == 2 and "seed 3 · 6 images" in gallery.history.itemText(1)
    gallery.history.setCurrentIndex(1)
    assert gallery.count() == 6 and canvas.view.path == batch.grid

    # Cancel stops a long sampling in the worker, which then serves the next request
    canvas.n.setValue(1024)
    canvas.options.editors["sampler"].setCurrentText("ddpm")
    canvas.options.editors["steps"].setValue(50)
    qtbot.mouseClick(canvas.sample_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: canvas.progress.maximum() > 0 and canvas.progress.value() > 0, timeout=30000)
    assert "left" in canvas.progress.toolTip() and canvas.cancel_btn.isEnabled()
    qtbot.mouseClick(canvas.cancel_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: canvas.progress.format() == "cancelled", timeout=20000)
    assert len(gallery.batches) == 2 and not canvas.cancel_btn.isEnabled()
    canvas.n.setValue(2)
    canvas.options.editors["steps"].setValue(2)
    qtbot.mouseClick(canvas.sample_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(gallery.batches) == 3, timeout=30000)
    assert gallery.count() == 2
    canvas.shutdown()
    session.shutdown()


@pytest.fixture
def fake(qtbot):
    client = FakeClient()
    session = WorkerSession(client)
    canvas = SamplingCanvas(session)
    qtbot.addWidget(canvas)
    return client, session, canvas


def _png(path, **meta):
    write_png(path, np.zeros((8, 8, 3), np.uint8), {"kind": "sample", "step": 10, "n": 1, "cls": None, **meta})
    return str(path)


def test_use_this_seed_and_a_png_of_another_family_offers_its_checkpoint(qtbot, fake, tmp_path):
    client, session, canvas = fake
    session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, {"sampler": "ddim", "steps": 7, "eta": 0.0, "guidance_scale": 2.5, "spacing": "linspace"})
    rid = canvas.sample()
    paths = [_png(tmp_path / f"{i}.png", seed=9 + i, cls=i, family="ddpm") for i in range(3)]
    grid = _png(tmp_path / "grid.png", seed=9, n=3, family="ddpm")
    client.event.emit({"event": "result", "id": rid, "op": "sample", "path": grid, "n": 3, "elapsed_s": 0.1,
                       "images": paths, "seeds": [9, 10, 11], "classes": [0, 1, 2]})
    gallery = canvas.gallery
    assert gallery.count() == 3 and not gallery.use_seed_action.isEnabled()
    gallery.select(2)
    gallery.use_seed_action.trigger()      # its seed and class; the batch size stays
    assert (canvas.seed.value(), canvas.cls.currentData(), canvas.n.value()) == (11, 2, 50)

    # a PNG from elsewhere, a broken one, an inpainting: said so, nothing changes
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert not canvas.restore_png_info(str(tmp_path / "plain.png")) and "no GenLab parameters" in canvas.status.text()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n??")
    assert not canvas.restore_png_info(str(tmp_path / "broken.png")) and "broken.png" in canvas.status.text()
    write_png(tmp_path / "fill.png", np.zeros((8, 8, 3), np.uint8), {"kind": "inpaint", "method": "telea"})
    assert not canvas.restore_png_info(str(tmp_path / "fill.png")) and "Inpainting" in canvas.status.text()
    assert canvas.seed.value() == 11

    # a StyleGAN's PNG while a DDPM is loaded: seed restored, its checkpoint named and offered
    other = tmp_path / "runs" / "faces" / "checkpoints" / "step_000040.safetensors"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"")
    style_png = _png(tmp_path / "style.png", seed=42, family="stylegan", checkpoint=str(other), step=40,
                     options={"truncation_psi": 0.6, "noise_mode": "const"})
    assert canvas.restore_png_info(style_png)
    assert canvas.seed.value() == 42 and canvas.n.value() == 1
    assert "stylegan" in canvas.status.text() and "faces/step_000040.safetensors" in canvas.status.text()
    assert not canvas.origin_btn.isHidden()
    qtbot.mouseClick(canvas.origin_btn, Qt.LeftButton)
    assert client.last("load")["checkpoint"] == str(other)
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "random"}, checkpoint=str(other))
    assert canvas.options.editors["truncation_psi"].value() == pytest.approx(0.6)
    assert canvas.options.editors["noise_mode"].currentText() == "const" and "restored" in canvas.status.text()

    # a drop: accepted for a PNG with parameters (and a checkpoint), not for a plain PNG
    def drag(path):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(path)])
        ev = QDragEnterEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        ev.ignore()
        canvas.dragEnterEvent(ev)
        return ev.isAccepted()
    assert drag(style_png) and not drag(str(tmp_path / "plain.png"))


def test_a_png_dropped_on_an_empty_window_opens_its_checkpoint(qtbot, fake, tmp_path):
    client, session, canvas = fake
    ckpt = tmp_path / "run" / "checkpoints" / "step_000010.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    png = _png(tmp_path / "s.png", seed=4, cls=7, family="ddpm", checkpoint=str(ckpt),
               options={"steps": 12, "sampler": "ddpm"})
    assert canvas.restore_png_info(png) and client.last("load")["checkpoint"] == str(ckpt)
    client.ready(DDPM, {"sampler": "ddim", "steps": 7, "eta": 0.0, "guidance_scale": 2.5, "spacing": "linspace"},
                 checkpoint=str(ckpt))
    assert (canvas.seed.value(), canvas.cls.currentData()) == (4, 7)
    assert canvas.options.editors["steps"].value() == 12 and canvas.options.editors["sampler"].currentText() == "ddpm"
    # a PNG whose checkpoint is not on this machine: seed restored, the rest explained
    assert canvas.restore_png_info(_png(tmp_path / "far.png", seed=8, family="stylegan",
                                        checkpoint="/elsewhere/run/checkpoints/step_000001.safetensors"))
    assert canvas.seed.value() == 8 and "not on this machine" in canvas.status.text() and canvas.origin_btn.isHidden()


def test_evaluation_shows_time_left_and_cancel_ends_its_process(qtbot, fake, checkpoint):
    client, session, canvas = fake
    canvas._on_eval_progress("sampling", 0, 100)
    canvas._eval_stage = ("sampling", time.monotonic() - 10, 0)    # 10 s for the first half
    canvas._on_eval_progress("sampling", 50, 100)
    assert canvas.eval_progress.format() == "sampling 50 / 100 · 10s left"
    assert canvas.eval_progress.toolTip() == canvas.eval_progress.format()
    canvas._on_eval_progress("features", 1, 4)                  # a new stage starts its own clock
    assert canvas.eval_progress.format() == "features 1 / 4"
    session.set_checkpoint(checkpoint, load=False)
    canvas.eval_n.setValue(5000)
    qtbot.mouseClick(canvas.eval_btn, Qt.LeftButton)
    assert canvas.eval_cancel_btn.isEnabled() and not canvas.eval_btn.isEnabled()
    proc = canvas.eval_job.proc
    qtbot.waitUntil(lambda: proc.state() == QProcess.Running, timeout=10000)   # the engine process runs
    pid = proc.processId()
    qtbot.mouseClick(canvas.eval_cancel_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: canvas.eval_progress.format() == "cancelled", timeout=10000)
    assert not canvas.eval_job.is_running() and canvas.eval_btn.isEnabled() and "cancelled" in canvas.eval_result.text()
    assert not canvas.eval_cancel_btn.isEnabled() and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
