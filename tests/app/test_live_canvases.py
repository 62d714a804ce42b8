"""Interactive canvases stay live while a slider is dragged (issue 11), driven by a fake worker client:
one render in flight and the newest change after it, every frame shown; hover names a style-mixing
cell's sources; the Interpolate tab renders when it opens, and its preview plays, pauses and scrubs."""
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from test_canvas_views import DDPM, STYLE, FakeClient

from app.canvases.interpolation import InterpolationCanvas
from app.canvases.style_mixing import StyleMixCanvas, layer_ranges
from app.worker_session import WorkerSession

CKPT = "/runs/a/step_000010.safetensors"


@pytest.fixture
def fake(qtbot):
    client = FakeClient()
    session = WorkerSession(client)
    session.set_checkpoint(CKPT)
    return client, session


def _mix_png(tmp_path, rows: int, cols: int, name="mix.png") -> str:
    """A grid the size the engine writes: (rows + 1) x (cols + 1) cells of 16 pixels with 1-pixel borders."""
    path = tmp_path / name
    Image.new("RGB", ((cols + 1) * 17 + 1, (rows + 1) * 17 + 1), (90, 90, 90)).save(path)
    return str(path)


def _strip_png(tmp_path, n: int, size=8) -> str:
    """A strip of n frames, frame i filled with grey level 20 * i (so a frame can be told by its colour)."""
    img = Image.new("L", (n * (size + 1) + 1, size + 2), 255)
    for i in range(n):
        img.paste(20 * i, (1 + i * (size + 1), 1, 1 + i * (size + 1) + size, 1 + size))
    path = tmp_path / f"strip{n}.png"
    img.save(path)
    return str(path)


def _mix_result(client, rid, path, rows=4, cols=4, layers=(0, 1)):
    client.event.emit({"event": "result", "id": rid, "op": "mix", "path": path, "rows": rows, "cols": cols,
                       "layers": list(layers), "elapsed_s": 0.01})


def _walk_result(client, rid, path, n):
    client.event.emit({"event": "result", "id": rid, "op": "interpolate", "path": path, "frames": n,
                       "frame_size": 8, "elapsed_s": 0.02})


def _mixes(client):
    return [r for r in client.sent if r["op"] == "mix"]


def test_a_style_mixing_drag_renders_one_grid_at_a_time_and_shows_every_frame(qtbot, fake, tmp_path):
    client, session = fake
    mix = StyleMixCanvas(session)
    qtbot.addWidget(mix)
    shown = []
    mix.rendered.connect(shown.append)
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})
    first = _mixes(client)[-1]["id"]                 # the grid rendered on load, still rendering
    psi = mix.options.editors["truncation_psi"]
    for v in (0.9, 0.8, 0.7):                        # the drag goes on while it renders
        psi.setValue(v)
    assert len(_mixes(client)) == 1 and "rendering" in mix.live_label.text()
    _mix_result(client, first, _mix_png(tmp_path, 4, 4, "a.png"))
    assert shown == [str(tmp_path / "a.png")]        # the frame in flight is shown, not thrown away
    newest = _mixes(client)[-1]
    assert len(_mixes(client)) == 2 and newest["options"]["truncation_psi"] == pytest.approx(0.7)
    _mix_result(client, newest["id"], _mix_png(tmp_path, 4, 4, "b.png"))
    assert shown[-1] == str(tmp_path / "b.png") and mix.view.path == shown[-1]
    assert not mix.live_busy() and "frames/s" in mix.live_label.text()

    # a frame still rendering when the window moves to another checkpoint is not shown; newer ones are
    psi.setValue(0.6)
    stale = _mixes(client)[-1]["id"]
    session.set_checkpoint("/runs/b/step_000020.safetensors")
    psi.setValue(0.5)
    _mix_result(client, stale, _mix_png(tmp_path, 4, 4, "stale.png"))
    assert mix.view.path == str(tmp_path / "b.png")
    after = _mixes(client)[-1]
    assert after["id"] != stale and after["checkpoint"].endswith("step_000020.safetensors")
    _mix_result(client, after["id"], _mix_png(tmp_path, 4, 4, "c.png"))
    assert mix.view.path == str(tmp_path / "c.png")


def test_hovering_a_style_mixing_cell_names_its_seeds_and_layers(qtbot, fake, tmp_path):
    client, session = fake
    mix = StyleMixCanvas(session)
    qtbot.addWidget(mix)
    mix.resize(900, 500)
    mix.show()
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})
    _mix_result(client, _mixes(client)[-1]["id"], _mix_png(tmp_path, 4, 4))   # the load's grid: rows 1-4, cols 5-8
    mix.rows.setText("1-3")
    mix.cols.setText("7, 8")
    rid = mix.render()
    _mix_result(client, rid, _mix_png(tmp_path, 3, 2, "small.png"), rows=3, cols=2)
    shown = mix.view.image_rect()
    zoom = shown.width() // (3 * 17 + 1)                               # whole-number zoom, centred
    assert zoom >= 1 and (shown.width(), shown.height()) == (zoom * (3 * 17 + 1), zoom * (4 * 17 + 1))
    assert shown.center().x() in range(mix.view.width() // 2 - 1, mix.view.width() // 2 + 1)

    def centre(i, j):   # grid cell (i, j) of 4 rows x 3 columns, the header row and column included
        return QPoint(shown.left() + int((j + 0.5) * shown.width() / 3), shown.top() + int((i + 0.5) * shown.height() / 4))

    assert mix.cell_text_at(centre(3, 2))[0] == "row seed 3 × column seed 8, layers 0–1 from the column"
    assert mix.cell_text_at(centre(1, 1))[0] == "row seed 1 × column seed 7, layers 0–1 from the column"
    assert mix.cell_text_at(centre(0, 2))[0] == "column seed 8"
    assert mix.cell_text_at(centre(2, 0))[0] == "row seed 2"
    assert mix.cell_text_at(centre(0, 0))[0] == ""
    assert mix.cell_text_at(QPoint(shown.left() - 3, shown.top() - 3))[0] == ""   # off the grid
    # the tooltip event itself shows that text
    pos = centre(2, 1)
    QApplication.sendEvent(mix.view, QHelpEvent(QEvent.ToolTip, pos, mix.view.mapToGlobal(pos)))
    assert QToolTip.text() == "row seed 2 × column seed 7, layers 0–1 from the column"
    QToolTip.hideText()
    assert layer_ranges([0, 1, 2, 5, 7, 8]) == "0–2, 5, 7–8"


def test_the_interpolate_tab_renders_when_it_opens_also_for_a_slow_model(qtbot, fake, tmp_path):
    client, session = fake
    walk = InterpolationCanvas(session)
    qtbot.addWidget(walk)
    client.ready(DDPM, {"steps": 20, "guidance_scale": 1.0, "spacing": "linspace"})
    assert not [r for r in client.sent if r["op"] == "interpolate"]    # hidden: nothing rendered yet
    walk.show()
    req = client.last("interpolate")
    assert req["endpoints"] == [1, 2] and "out" not in req
    client.event.emit({"event": "progress", "id": req["id"], "op": "interpolate", "stage": "decoding", "done": 3,
                       "total": 20})
    assert walk.progress.value() == 3 and walk.cancel_btn.isEnabled() and "rendering" in walk.live_label.text()
    # an option dragged meanwhile waits for that walk instead of cancelling it
    walk.options.editors["steps"].setValue(10)
    assert client.last("interpolate")["id"] == req["id"]
    walk.hide()
    walk.show()                                                        # reopening sends nothing more
    assert client.last("interpolate")["id"] == req["id"]
    _walk_result(client, req["id"], _strip_png(tmp_path, 16), 16)
    walk.show()
    assert client.last("interpolate")["id"] != req["id"]               # the option changed meanwhile: sent now
    _walk_result(client, client.last("interpolate")["id"], _strip_png(tmp_path, 16), 16)
    sent = len(client.sent)
    walk.hide()
    walk.show()
    assert len(client.sent) == sent                                    # its walk is on screen: nothing to do
    # another model loads while another tab is shown: opening the tab renders that model's walk
    walk.hide()
    session.set_checkpoint("/runs/b/step_000020.safetensors")
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"}, checkpoint="/runs/b/step_000020.safetensors")
    assert len([r for r in client.sent if r["op"] == "interpolate"]) == 2
    walk.show()
    assert client.last("interpolate")["checkpoint"].endswith("step_000020.safetensors")


def test_an_option_change_during_an_export_is_a_preview_that_cannot_cancel_it(qtbot, fake, tmp_path):
    """The export is its own op (interpolate-export), which the engine never supersedes, so a
    preview is sent at once (the engine queues it behind the export) and both are shown."""
    client, session = fake
    walk = InterpolationCanvas(session)
    qtbot.addWidget(walk)
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})
    exported = []
    walk.exported.connect(exported.append)
    export = walk.export(str(tmp_path / "walk.gif"))
    sent = client.last("interpolate-export")
    assert sent["id"] == export and sent["out"].endswith("walk.gif") and sent["endpoints"] == [1, 2]
    walk.options.editors["truncation_psi"].setValue(0.5)
    preview = client.last("interpolate")
    assert preview["id"] > export and "out" not in preview and preview["options"]["truncation_psi"] == pytest.approx(0.5)
    assert [r["op"] for r in client.sent if r["op"] == "cancel"] == []       # nothing cancels the export
    client.event.emit({"event": "result", "id": export, "op": "interpolate-export", "path": _strip_png(tmp_path, 4),
                       "out": sent["out"], "frames": 4, "frame_size": 8, "elapsed_s": 0.1})
    assert exported == [sent["out"]] and "saved" in walk.status.text() and len(walk.frames) == 4
    assert walk.live_busy()                                                  # the preview, still rendering
    _walk_result(client, preview["id"], _strip_png(tmp_path, 6), 6)
    assert len(walk.frames) == 6 and not walk.live_busy() and not walk.inflight
    # Cancel stops both an export and the preview in flight
    export = walk.export(str(tmp_path / "again.gif"))
    walk.options.editors["truncation_psi"].setValue(0.4)
    walk.cancel()
    assert sorted(r["target"] for r in client.sent if r["op"] == "cancel") == [export, client.last("interpolate")["id"]]


def _walk_with_frames(qtbot, fake, tmp_path, n=6):
    client, session = fake
    walk = InterpolationCanvas(session)
    qtbot.addWidget(walk)
    walk.show()
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})   # one pass per frame: renders at once
    _walk_result(client, client.last("interpolate")["id"], _strip_png(tmp_path, n), n)
    assert len(walk.frames) == n
    return client, walk


def _preview_grey(walk) -> int:
    img = walk.preview.pixmap().toImage()
    return img.pixelColor(img.width() // 2, img.height() // 2).red()


def test_play_pause_by_button_and_space_on_the_preview(qtbot, fake, tmp_path):
    _, walk = _walk_with_frames(qtbot, fake, tmp_path)
    assert walk.timer.isActive() and walk.play_btn.text() == "Pause"
    qtbot.mouseClick(walk.play_btn, Qt.LeftButton)
    assert not walk.timer.isActive() and walk.play_btn.text() == "Play"
    held = walk.frame_index
    qtbot.wait(150)
    assert walk.frame_index == held                                   # paused: the frame stays
    qtbot.keyClick(walk.preview, Qt.Key_Space)
    assert walk.timer.isActive() and walk.play_btn.text() == "Pause"
    qtbot.waitUntil(lambda: walk.frame_index != held, timeout=2000)   # playing again
    qtbot.keyClick(walk.preview, Qt.Key_Space)
    assert not walk.timer.isActive()


def test_the_scrubber_pauses_and_shows_the_frame_and_a_newer_walk_keeps_it(qtbot, fake, tmp_path):
    client, walk = _walk_with_frames(qtbot, fake, tmp_path)
    assert walk.scrubber.maximum() == 5 and walk.scrubber.isEnabled()
    walk.scrubber.setValue(2)                                          # a person drags it to the third frame
    assert not walk.timer.isActive() and walk.frame_index == 2
    assert walk.frame_label.text() == "frame 3 / 6" and _preview_grey(walk) == 40
    walk.scrubber.setValue(4)
    assert walk.frame_label.text() == "frame 5 / 6" and _preview_grey(walk) == 80
    # an option dragged while paused re-renders live and the preview stays on that frame
    walk.options.editors["truncation_psi"].setValue(0.4)
    _walk_result(client, client.last("interpolate")["id"], _strip_png(tmp_path, 6), 6)
    assert walk.frame_index == 4 and not walk.timer.isActive() and walk.scrubber.value() == 4


def test_the_preview_keeps_playing_while_live_frames_arrive_faster_than_it_steps(qtbot, fake, tmp_path):
    client, walk = _walk_with_frames(qtbot, fake, tmp_path)
    walk.fps.setValue(20.0)                                            # a frame every 50 ms
    steps = []                                # counted, not compared: six steps wrap back to the first frame
    walk.timer.timeout.connect(lambda: steps.append(walk.frame_index))
    strip = _strip_png(tmp_path, 6)
    for k in range(12):                                               # a drag: a new walk every 20 ms
        walk.options.editors["truncation_psi"].setValue(0.3 + 0.05 * k)
        _walk_result(client, client.last("interpolate")["id"], strip, 6)
        qtbot.wait(20)
    assert steps and walk.timer.isActive()
