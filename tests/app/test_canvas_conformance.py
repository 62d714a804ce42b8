"""Every canvas (app/canvases CANVASES) against the real capability records of every family: the
main window enables a canvas's tab exactly when the loaded model has the record the canvas needs,
and every request an enabled canvas sends parses as the engine's Request of its op (engine/ops
OPS), with sample options the family accepts. The records come from each family's tiny checkpoint
(tests/conftest.py tiny_runs) loaded by an in-process engine Worker, whose ready event reaches the
window through a fake worker client (no worker process). A new family is covered by registering; a
new canvas fails test_every_canvas_has_a_driver until it gets a driver below."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.canvases import CANVASES, TAB_KEYS
from app.main_window import MainWindow
from app.worker_session import WorkerSession
from engine.core.capabilities import Capabilities
from engine.core.families import FAMILIES
from engine.ops import OPS
from engine.ops.base import parse_request
from engine.worker import OWN_OPS, Worker
from tests.app.test_canvas_views import FakeClient


# ---- what a person does on each canvas to make it send its requests -----------------------------
def drive_sample(canvas, files) -> None:
    canvas.sample()
    if canvas.cls.count() > 1:   # and one class of a conditional model
        canvas.cls.setCurrentIndex(canvas.cls.count() - 1)
        canvas.sample()
    if canvas.traj_btn.isEnabled():   # the denoising trajectory of the seed, where the family streams one
        canvas.request_trajectory()
    if canvas.guide.count() > 1:   # autoguided by another checkpoint of the run
        canvas.guide.setCurrentIndex(1)
        canvas.sample()


def drive_style_mixing(canvas, files) -> None:
    canvas.render()                      # (its grid was also rendered on load)
    canvas.add_image(files["image"])     # a dropped image is projected


def drive_interpolate(canvas, files) -> None:
    canvas.add_endpoint(3)
    canvas.add_endpoint(files["image"])
    canvas.render()
    canvas.export(files["gif"])


def drive_inpaint(canvas, files) -> None:
    canvas.editor.set_image(np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1)))
    canvas.editor.stroke([(4, 4), (12, 4)])
    for i in range(canvas.method.count()):   # the model's methods and the classical fills
        canvas.method.setCurrentIndex(i)
        canvas.inpaint()


def drive_detection(canvas, files) -> None:
    canvas.add_paths([files["image"]])                  # needs no model: checkpoint ""
    canvas.verify_watermark(files["image"])
    canvas.embed_watermark(files["gif"].replace(".gif", "_marked.png"), files["image"])


DRIVERS = {"sample": drive_sample, "style-mixing": drive_style_mixing, "interpolate": drive_interpolate,
           "inpaint": drive_inpaint, "detection": drive_detection}


def test_every_canvas_has_a_driver_and_needs_a_record_some_family_offers(tiny_runs):
    from engine.training.checkpoint import family_from_checkpoint
    assert sorted(DRIVERS) == sorted(c.key for c in CANVASES), "give each canvas a driver above"
    records = set(Capabilities.__dataclass_fields__)
    offered = set()
    for name in FAMILIES.names():
        caps = family_from_checkpoint(tiny_runs[name].checkpoint, "cpu")[0].capabilities()
        offered |= {r for r in records if caps.has(r)}
    for spec in CANVASES:
        assert not spec.needs or spec.needs in records, f"{spec.key} needs {spec.needs!r}: not a capability record"
        assert not spec.needs or spec.needs in offered, f"no registered family offers what {spec.key} needs"


# ---- the window, its tabs and the requests, per family -----------------------------------------
@pytest.fixture(scope="module", params=FAMILIES.names())
def loaded(qapp, tmp_path_factory, tiny_runs, request):
    """(window, fake client, worker) with the family's tiny checkpoint loaded by the worker; one
    window per family, shared by the tests below."""
    tmp = tmp_path_factory.mktemp(f"window-{request.param}")
    client = FakeClient()
    window = MainWindow(runs_root=tmp / "runs", session=WorkerSession(client))
    assert all(window.tabs.isTabEnabled(i) for i in range(window.tabs.count())), "no model yet: every tab is open"
    worker = Worker(tmp / "cache", device="cpu", emit=client.event.emit)
    window.set_checkpoint(str(tiny_runs[request.param].checkpoint))
    worker.handle(client.last("load"))   # the worker's ready event reaches the session
    assert window.session.is_loaded()
    yield window, client, worker
    window.close()
    window.deleteLater()


def enabled_canvases(window) -> dict:
    return {spec.key: window.tabs.isTabEnabled(TAB_KEYS.index(spec.key)) for spec in CANVASES}


def test_a_canvas_tab_is_enabled_exactly_when_the_model_has_the_record_it_needs(loaded):
    window, _, worker = loaded
    caps = worker.family.capabilities().to_dict()
    for spec in CANVASES:
        expected = not spec.needs or caps.get(spec.needs) is not None
        i = TAB_KEYS.index(spec.key)
        assert window.tabs.isTabEnabled(i) == expected, f"{spec.key} tab with a {worker.family.name} model"
        assert bool(window.tabs.tabToolTip(i)) == (not expected), spec.key   # a closed tab says why


def test_every_request_of_an_enabled_canvas_parses_as_its_ops_request(loaded, tmp_path):
    window, client, worker = loaded
    image = tmp_path / "face.png"
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(image)
    files = {"image": str(image), "gif": str(tmp_path / "walk.gif")}
    family = worker.family
    for key, enabled in enabled_canvases(window).items():
        if not enabled:
            continue
        before = len(client.sent)
        DRIVERS[key](window.canvases[key], files)
        sent = [r for r in client.sent[before:] if r["op"] not in OWN_OPS]
        assert sent, f"the {key} canvas sent nothing for a {family.name} model"
    for req in client.sent:
        op = req["op"]
        if op in OWN_OPS:
            continue
        where = f"{op} request of a canvas for a {family.name} model: {req}"
        assert op in OPS, where
        fields = {k: v for k, v in req.items() if k not in ("id", "op", "checkpoint")}
        parsed = parse_request(OPS[op].request, worker._default_outputs(req, OPS[op], fields), op)
        if getattr(parsed, "options", None):   # the family's own sample options, with values it accepts
            family.sample_options(parsed.options)
        if getattr(parsed, "inpaint", None):
            family.inpaint_options_for(parsed.inpaint)
        assert req.get("checkpoint") in ("", window.session.checkpoint), where
