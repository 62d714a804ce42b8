"""What every canvas gets from app/canvases/base.py, driven by a fake worker client: live renders
are coalesced (one in flight, the newest waiting, intermediate frames shown), Cancel stops what is
in flight in the worker, and progress shows the time left."""
import time

from PySide6.QtCore import Qt

from test_canvas_views import FakeClient

from app.canvases.base import Canvas
from app.worker_session import WorkerSession


class Probe(Canvas):
    """The smallest canvas: it records the results it is shown."""

    def __init__(self, session):
        super().__init__(session)
        self.shown: list[int] = []

    def apply_capabilities(self, caps):
        pass

    def on_result(self, ev):
        self.shown.append(ev["id"])


def _canvas(qtbot):
    client = FakeClient()
    session = WorkerSession(client)
    session.set_checkpoint("/runs/a/step_000010.safetensors", load=False)
    canvas = Probe(session)
    qtbot.addWidget(canvas)
    return client, canvas


def _result(client, rid, op="mix"):
    client.event.emit({"event": "result", "id": rid, "op": op, "path": "/x.png"})


def test_a_drag_sends_one_render_at_a_time_and_then_the_newest(qtbot):
    client, canvas = _canvas(qtbot)
    first = canvas.request_live("mix", psi=0.1)
    assert first and len(client.sent) == 1
    for psi in (0.2, 0.3, 0.4):               # the slider moves while the first frame renders
        assert canvas.request_live("mix", psi=psi) == 0
    assert len(client.sent) == 1              # nothing queued in the worker behind the running one
    assert "rendering" in canvas.live_label.text()
    _result(client, first)
    assert canvas.shown == [first]            # the frame in flight is shown, not thrown away
    assert len(client.sent) == 2 and client.sent[-1]["psi"] == 0.4   # then only the newest value
    _result(client, client.sent[-1]["id"])
    assert canvas.shown == [1, 2] and not canvas.live_busy()
    assert canvas.frame_rate() > 0 and "frames/s" in canvas.live_label.text()
    assert "rendering" not in canvas.live_label.text()


def test_cancel_stops_the_work_in_the_worker_and_drops_the_waiting_render(qtbot):
    client, canvas = _canvas(qtbot)
    assert not canvas.cancel_btn.isEnabled()
    rid = canvas.request_live("mix", psi=0.1)
    canvas.request_live("mix", psi=0.9)
    assert canvas.cancel_btn.isEnabled()
    qtbot.mouseClick(canvas.cancel_btn, Qt.LeftButton)
    assert client.sent[-1] == {"id": 2, "op": "cancel", "target": rid}
    assert canvas.progress.format() == "cancelling…"
    client.event.emit({"event": "cancelled", "id": rid, "op": "mix"})
    assert len(client.sent) == 2               # the waiting render was dropped, not sent
    assert canvas.progress.format() == "cancelled" and not canvas.cancel_btn.isEnabled()
    assert not canvas.live_busy()


def test_progress_shows_the_time_left(qtbot):
    client, canvas = _canvas(qtbot)
    rid = canvas.request("sample", n=4)
    canvas._started[rid] = time.monotonic() - 10.0     # sent 10 s ago
    client.event.emit({"event": "progress", "id": rid, "op": "sample", "stage": "sampling", "done": 5, "total": 10})
    assert canvas.progress.value() == 5
    assert canvas.progress.format().startswith("sampling %v / %m · ")
    assert canvas.progress.format().endswith("10s left")


def test_an_error_or_a_worker_crash_ends_the_live_render(qtbot):
    client, canvas = _canvas(qtbot)
    rid = canvas.request_live("mix", psi=0.1)
    canvas.request_live("mix", psi=0.2)
    client.event.emit({"event": "error", "id": rid, "op": "mix", "message": "bad psi"})
    assert client.sent[-1]["psi"] == 0.2        # the newer value may well be fine: it is tried
    client.ended.emit(1, True, "boom")
    assert not canvas.live_busy() and not canvas.cancel_btn.isEnabled()
