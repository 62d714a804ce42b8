"""Small things a new user noticed (issue 20, Rough), checked as they would see them: no "0.0
frames/s" after single renders; the toolbar says which model is loaded after a drop; a tab the
model cannot use says why when asked for (its View key or a click); classes read "3", not "3: 3";
Interpolation's Render, Export and frames are in view at 1280×800 and 1024×640, the frames large
enough to see."""
import time

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from test_canvas_base import _canvas as probe_canvas
from test_canvas_views import DDPM, DDPM_OPTIONS

from app.canvases import TAB_KEYS
from app.canvases.base import SEQUENCE_GAP_S
from app.canvases.common import class_text


def _result(client, rid, op="mix"):
    client.event.emit({"event": "result", "id": rid, "op": op, "path": "/x.png"})


# ---- frames/s ------------------------------------------------------------------------------------
def test_single_renders_say_no_frame_rate_and_a_drag_says_its_real_one(qtbot):
    client, canvas = probe_canvas(qtbot)
    for _ in range(3):                      # renders asked for one at a time, seconds apart
        _result(client, canvas.request_live("mix", psi=0.5))
        assert "frames/s" not in canvas.live_label.text() and canvas.frame_rate() == 0
        canvas._frame_times[-1] -= SEQUENCE_GAP_S + 5      # the next one comes 5 s later
    # a drag: each frame asked for while the one before renders
    first = canvas.request_live("mix", psi=0.1)
    canvas.request_live("mix", psi=0.2)
    time.sleep(0.02)
    _result(client, first)
    canvas.request_live("mix", psi=0.3)
    time.sleep(0.02)
    _result(client, client.sent[-1]["id"])
    time.sleep(0.02)
    _result(client, client.sent[-1]["id"])
    rate = canvas.frame_rate()
    assert 1 < rate < 200 and f"{rate:.1f} frames/s" in canvas.live_label.text()


# ---- the toolbar after a drop ----------------------------------------------------------------------
def test_the_toolbar_says_what_is_loaded_after_a_dropped_checkpoint(faked):
    client, w = faked
    a, b = "/runs/a/checkpoints/step_000010.safetensors", "/runs/a/checkpoints/step_000020.safetensors"
    w.open_dropped(a)
    client.ready(DDPM, DDPM_OPTIONS, checkpoint=a, rid=client.last("load")["id"])
    assert w.checkpoint_bar.state.text().startswith("loaded: ddpm, 8×8, step 10")
    w.training.checkpoint_saved.emit(b)                   # training writes a newer one: noted, not loaded
    assert w.checkpoint_bar.state.text().startswith("not loaded yet")
    w.open_dropped(a)                                     # the loaded one dropped again: no load needed…
    assert w.session.checkpoint == a
    assert w.checkpoint_bar.state.text().startswith("loaded: ddpm, 8×8, step 10")   # …and the bar says so


# ---- a disabled tab says why -----------------------------------------------------------------------
def test_a_tab_the_model_cannot_use_says_why_for_its_key_and_a_click(faked, qtbot):
    client, w = faked
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=3000)
    w.set_checkpoint("/runs/a/checkpoints/step_000010.safetensors")
    client.ready(DDPM, DDPM_OPTIONS, checkpoint="/runs/a/checkpoints/step_000010.safetensors")
    mix = TAB_KEYS.index("style-mixing")
    assert not w.tabs.isTabEnabled(mix)
    qtbot.keyClick(w, Qt.Key_4, Qt.ControlModifier)
    message = w.statusBar().currentMessage()
    assert message.startswith("Style mixing needs a model with per-layer styles") and "ddpm" in message
    assert w.current_tab() == "train"
    w.statusBar().clearMessage()
    bar = w.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(mix).center())
    assert w.statusBar().currentMessage() == message and w.current_tab() == "train"


# ---- class names -----------------------------------------------------------------------------------
def test_a_class_reads_as_its_number_unless_the_model_names_it(faked):
    assert [class_text(3, "3"), class_text(3, "cat"), class_text(0, "")] == ["3", "3: cat", "0"]
    client, w = faked
    w.set_checkpoint("/runs/a/checkpoints/step_000010.safetensors")
    client.ready(DDPM, DDPM_OPTIONS, checkpoint="/runs/a/checkpoints/step_000010.safetensors")
    for key in ("sample", "interpolate", "inpaint"):
        combo = w.canvases[key].cls
        texts = [combo.itemText(i) for i in range(combo.count())]
        assert "3" in texts and not any(": " in t for t in texts), key


# ---- Interpolation in view ---------------------------------------------------------------------------
def _strip_png(tmp_path, n: int, size=8) -> str:
    img = Image.new("L", (n * (size + 1) + 1, size + 2), 255)
    for i in range(n):
        img.paste(15 * i, (1 + i * (size + 1), 1, 1 + i * (size + 1) + size, 1 + size))
    img.save(tmp_path / "strip.png")
    return str(tmp_path / "strip.png")


def _in_view(widget) -> bool:
    """Wholly on screen: not cut by the tab's scroll area nor the window's edge."""
    return widget.isVisible() and widget.visibleRegion().boundingRect() == widget.rect()


@pytest.mark.parametrize("size", [(1280, 800), (1024, 640)])
def test_interpolations_controls_and_frames_are_in_view_and_the_frames_readable(faked, qtbot, tmp_path, size):
    client, w = faked
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    w.set_checkpoint("/runs/a/checkpoints/step_000010.safetensors")
    client.ready(DDPM, DDPM_OPTIONS, checkpoint="/runs/a/checkpoints/step_000010.safetensors")
    w.show_tab("interpolate")
    walk = w.canvases["interpolate"]
    rid = client.last("interpolate")["id"]
    client.event.emit({"event": "result", "id": rid, "op": "interpolate", "path": _strip_png(tmp_path, 16),
                       "frames": 16, "frame_size": 8, "elapsed_s": 0.1})
    QApplication.processEvents()
    for widget in (walk.render_btn, walk.gif_btn, walk.mp4_btn, walk.progress, walk.preview, walk.strip):
        assert _in_view(widget), widget
    shown = walk.strip.image_rect()
    per_frame = shown.height() / -(-16 // walk.strip.columns)
    assert walk.strip.columns < 16 and per_frame >= 40        # rows of frames, each several times its 8 px
    # a click on a frame shows it in the preview
    col = 5 % walk.strip.columns
    row = 5 // walk.strip.columns
    frame_w = shown.width() / walk.strip.columns
    qtbot.mouseClick(walk.strip, Qt.LeftButton, pos=QPoint(int(shown.left() + (col + 0.5) * frame_w),
                                                           int(shown.top() + (row + 0.5) * per_frame)))
    assert walk.frame_index == 5 and not walk.playing
