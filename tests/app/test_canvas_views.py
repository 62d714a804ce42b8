"""The canvases and the window as views of the worker session, driven by a fake worker client (no
engine process): capability records in, widgets enabled, disabled or hidden out; each reply and
error reaches only the canvas that asked; a worker crash resets every canvas."""
import json

import pytest
from PySide6.QtCore import QObject, Signal

from app.canvases.interpolation import InterpolationCanvas
from app.canvases.sampling import SamplingCanvas
from app.canvases.style_mixing import StyleMixCanvas
from app.widgets.config_form import FloatSlider
from app.worker_session import WorkerSession
from engine.core.capabilities import Capabilities, ConditionalCaps, LatentCaps, SamplingCaps, StyleMixCaps

DDPM = Capabilities("ddpm", 8, 1, SamplingCaps(["sampler", "steps", "eta", "guidance_scale", "spacing"], True,
                                               ["ddim", "ddpm"]),
                    conditional=ConditionalCaps([str(i) for i in range(10)], guidance=True, unconditional=True),
                    latent=LatentCaps("noise", "x_T (DDIM noise)", "ddim-inversion", one_pass=False))
# DDPM sampling options as a loaded checkpoint reports them
DDPM_OPTIONS = {"sampler": "ddim", "steps": 7, "eta": 0.0, "guidance_scale": 2.5, "spacing": "linspace"}
STYLE = Capabilities("stylegan", 16, 3, SamplingCaps(["truncation_psi", "noise_mode"]),
                     latent=LatentCaps("w+", "w+ (StyleGAN styles)", "projection", one_pass=True, default_mode="lerp"),
                     style_mix=StyleMixCaps([4, 8, 8, 16, 16, 16], {"coarse": [0, 1], "middle": [2], "fine": [3, 4, 5]},
                                            ["const", "random", "off"]))


class FakeClient(QObject):
    """Stands in for WorkerClient: records requests; the test plays the worker's events."""
    event = Signal(dict)
    ended = Signal(int, bool, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sent: list[dict] = []

    def request(self, op, **fields):
        self.sent.append({"id": len(self.sent) + 1, "op": op, **fields})
        return len(self.sent)

    def shutdown(self):
        pass

    def ready(self, caps: Capabilities, options: dict, checkpoint="/runs/a/step_000010.safetensors", rid=None):
        self.event.emit({"event": "ready", "id": rid, "checkpoint": checkpoint, "step": 10,
                         "capabilities": caps.to_dict(), "options": options})

    def last(self, op):
        return next(r for r in reversed(self.sent) if r["op"] == op)


@pytest.fixture
def fake(qtbot):
    client = FakeClient()
    return client, WorkerSession(client)


def _canvases(qtbot, session):
    out = SamplingCanvas(session), StyleMixCanvas(session), InterpolationCanvas(session)
    for c in out:
        qtbot.addWidget(c)
    return out


def test_canvases_draw_the_family_options_and_follow_the_capability_records(qtbot, fake):
    client, session = fake
    sample, mix, walk = _canvases(qtbot, session)
    session.set_checkpoint("/runs/a/step_000010.safetensors")
    assert client.last("load")["checkpoint"].endswith("step_000010.safetensors")
    assert sample.ckpt.text().endswith("step_000010.safetensors") and "loading" in sample.status.text()
    client.ready(DDPM, {"sampler": "ddim", "steps": 7, "eta": 0.0, "guidance_scale": 2.5, "spacing": "linspace"})
    # Sampling: the DDPM options at the run's values; ten classes
    assert set(sample.options.editors) == {"sampler", "steps", "eta", "churn", "guidance_scale", "spacing",
                                           "guidance_interval"}
    assert sample.options.editors["steps"].value() == 7 and sample.options.editors["guidance_scale"].isEnabled()
    assert sample.cls.count() == 11
    # Style mixing says why not; Interpolate walks x_T with the decoding options only
    assert not mix.rows.isEnabled() and "no per-layer styles" in mix.status.text()
    # (churn, like eta, adds noise, and the guidance interval is a sampling refinement: a walk leaves them out)
    assert walk.render_btn.isEnabled() and set(walk.options.editors) == {"steps", "guidance_scale", "spacing"}
    assert "x_T (DDIM noise)" in walk.status.text() and walk.mode.currentText() == "slerp"

    client.ready(STYLE, {"truncation_psi": 0.7, "noise_mode": "random"})
    assert set(sample.options.editors) == {"truncation_psi", "noise_mode"}
    assert isinstance(sample.options.editors["truncation_psi"], FloatSlider)
    assert sample.options.editors["truncation_psi"].value() == pytest.approx(0.7)
    assert sample.cls.count() == 1 and sample.cls.itemText(0) == "unconditional"
    assert mix.rows.isEnabled() and len(mix.layer_checks) == 6
    assert [c.isChecked() for c in mix.layer_checks] == [True, True, False, False, False, False]  # coarse
    assert list(mix.preset_btns) == ["coarse", "middle", "fine", "all", "none"]  # coarse to fine
    assert mix.options.editors["noise_mode"].currentText() == "random"
    assert walk.mode.currentText() == "lerp" and "w+" in walk.status.text()


def test_a_request_carries_the_checkpoint_and_the_typed_options(qtbot, fake):
    client, session = fake
    sample, mix, _ = _canvases(qtbot, session)
    session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})
    first = client.last("mix")["id"]                          # the grid rendered on load
    mix.options.editors["truncation_psi"].setValue(0.5)      # a drag re-renders once that frame is back
    client.event.emit({"event": "result", "id": first, "op": "mix", "path": "/x.png", "rows": 4, "cols": 4})
    req = client.last("mix")
    assert req["checkpoint"].endswith("step_000010.safetensors") and req["layers"] == [0, 1]
    assert req["options"] == {"truncation_psi": 0.5, "noise_mode": "const"}
    sample.n.setValue(4)
    rid = sample.sample()
    assert client.last("sample") == {"id": rid, "op": "sample", "checkpoint": session.checkpoint, "n": 4,
                                     "seed": 0, "cls": None, "options": {"truncation_psi": 1.0, "noise_mode": "const"}}


def test_replies_and_errors_reach_only_the_canvas_that_asked(qtbot, fake, tmp_path):
    client, session = fake
    sample, mix, walk = _canvases(qtbot, session)
    session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})
    mix_id = mix.pending_id                                   # the grid rendered on load, in flight
    sample_id = sample.sample()
    sample_status = sample.status.text()
    client.event.emit({"event": "progress", "id": mix_id, "op": "mix", "stage": "encoding face.png", "done": 3,
                       "total": 10})
    client.event.emit({"event": "error", "id": mix_id, "op": "mix", "message": "face.png: not an image"})
    assert "face.png: not an image" in mix.status.text() and mix.progress.format() == "failed"
    assert sample.status.text() == sample_status and "not an image" not in walk.status.text()
    png = tmp_path / "g.png"
    from PIL import Image
    Image.new("RGB", (9, 9)).save(png)
    client.event.emit({"event": "result", "id": sample_id, "op": "sample", "path": str(png), "n": 4,
                       "elapsed_s": 0.2})
    assert sample.view.path == str(png) and not mix.view.path
    # a reply nobody waits for any more (superseded) is ignored
    client.event.emit({"event": "result", "id": 999, "op": "sample", "path": str(png), "n": 1})


def test_a_worker_crash_resets_every_canvas_and_a_bad_checkpoint_is_named(qtbot, fake):
    client, session = fake
    sample, mix, walk = _canvases(qtbot, session)
    session.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(STYLE, {"truncation_psi": 1.0, "noise_mode": "const"})
    mix.render()                                              # waits behind the grid rendered on load
    assert mix.live_busy() and walk.render()
    client.ended.emit(1, True, "Traceback …\nRuntimeError: out of memory")
    for c in (sample, mix, walk):
        assert "worker stopped" in c.status.text() and "out of memory" in c.status.text()
        assert c.capabilities is None
    assert mix.pending_id == 0 and walk.pending_id == 0 and not session.is_loaded()
    # the next canvas on screen loads the checkpoint again (a new worker starts on that request)
    n = len(client.sent)
    session.ensure_loaded()
    assert client.sent[n]["op"] == "load"
    client.event.emit({"event": "error", "id": client.sent[n]["id"], "op": "load",
                       "message": "/x/nope.safetensors: checkpoint not found"})
    assert all("checkpoint not found" in c.status.text() for c in (sample, mix, walk))


def test_window_enables_tabs_by_capability_and_shows_a_shell_started_run(qtbot, tmp_path, monkeypatch):
    import app.worker_session as ws
    monkeypatch.setattr(ws, "WorkerClient", FakeClient)
    from app.main_window import MainWindow
    from tests.engine.test_gan import gan_config
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    client = w.session.client
    titles = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert titles == ["Train", "Runs", "Sample", "Style mixing", "Interpolate", "Inpainting", "Detection"]
    w.set_checkpoint("/runs/a/step_000010.safetensors")
    client.ready(DDPM, {})
    mix_tab = titles.index("Style mixing")
    assert not w.tabs.isTabEnabled(mix_tab) and "per-layer styles" in w.tabs.tabToolTip(mix_tab)
    assert w.tabs.isTabEnabled(titles.index("Interpolate"))
    assert w.tabs.isTabEnabled(titles.index("Inpainting"))   # classical fills need no model
    w.set_checkpoint("/runs/b/step_000010.safetensors")
    client.ready(STYLE, {}, checkpoint="/runs/b/step_000010.safetensors")
    assert all(w.tabs.isTabEnabled(i) for i in range(w.tabs.count()))

    # a run written by a shell (an older GenLab: bare metric names) opened in the window
    run = tmp_path / "cli-run"
    (run / "checkpoints").mkdir(parents=True)
    gan_config("gan").save(run / "config.toml")
    rows = [{"step": s, "loss_d": 1.0 / s, "loss_g": 2.0, "d_real": 0.4, "d_fake": -0.2} for s in (2, 4, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "status.json").write_text(json.dumps({"state": "running", "step": 6, "total_steps": 12,
                                                 "device": "cpu", "img_per_s": 50.0, "eta_s": 3.0}))
    w.open_run(str(run))
    qtbot.waitUntil(lambda: w.loss_plot.point_count("loss/D") == 3, timeout=5000)
    assert w.plots["gan"].point_count("gan/d_real") == 3 and not w.plots["gan"].isHidden()
    assert "running (opened run)" in w.training.progress.format() and w.training.progress.value() == 6
    (run / "status.json").write_text(json.dumps({"state": "finished", "step": 12, "total_steps": 12}))
    qtbot.waitUntil(lambda: "finished" in w.training.progress.format(), timeout=5000)
    assert w.training.progress.value() == 12
    w.close()


def test_a_checkpoint_opened_while_another_loads_wins_and_edited_options_survive_a_reload(qtbot, fake):
    client, session = fake
    sample, _, _ = _canvases(qtbot, session)
    session.set_checkpoint("/runs/a/step_000010.safetensors")
    session.set_checkpoint("/runs/b/step_000020.safetensors")        # before A's ready came back
    assert [r["checkpoint"] for r in client.sent if r["op"] == "load"] == [
        "/runs/a/step_000010.safetensors", "/runs/b/step_000020.safetensors"]
    client.ready(DDPM, {"steps": 7}, checkpoint="/runs/a/step_000010.safetensors")  # stale: not shown
    assert sample.options is None and sample.capabilities is None
    client.ready(STYLE, {"truncation_psi": 0.8, "noise_mode": "const"}, checkpoint="/runs/b/step_000020.safetensors")
    assert sample.capabilities.family == "stylegan" and "truncation_psi" in sample.options.editors
    # a person's edit survives a newer checkpoint of the same run, not a switch to another run
    sample.options.editors["truncation_psi"].setValue(0.5)
    session.set_checkpoint("/runs/b/step_000040.safetensors")
    client.ready(STYLE, {"truncation_psi": 0.8, "noise_mode": "const"}, checkpoint="/runs/b/step_000040.safetensors")
    assert sample.options.editors["truncation_psi"].value() == pytest.approx(0.5)
    session.set_checkpoint("/runs/c/step_000010.safetensors")
    client.ready(STYLE, {"truncation_psi": 0.8, "noise_mode": "const"}, checkpoint="/runs/c/step_000010.safetensors")
    assert sample.options.editors["truncation_psi"].value() == pytest.approx(0.8)


def test_a_run_whose_process_died_reads_as_interrupted_and_can_be_continued(qtbot, tmp_path, monkeypatch):
    import socket
    import subprocess
    import sys
    import app.worker_session as ws
    monkeypatch.setattr(ws, "WorkerClient", FakeClient)
    from app.main_window import MainWindow
    from tests.conftest import tiny_config
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    run = tmp_path / "killed"
    (run / "checkpoints").mkdir(parents=True)
    tiny_config().save(run / "config.toml")
    (run / "status.json").write_text(json.dumps({"state": "running", "step": 7, "total_steps": 30, "pid": dead.pid,
                                                 "host": socket.gethostname()}))
    w = MainWindow(runs_root=tmp_path / "runs")
    qtbot.addWidget(w)
    w.open_run(str(run))
    qtbot.waitUntil(lambda: "interrupted" in w.training.progress.format(), timeout=5000)
    assert w.training.progress.value() == 7 and "process is gone" in w.training.stats.text()
    assert w.training.continue_btn.isEnabled() and "Continue?" in w.training.stats.text()
    assert w.training.run_dir == run
    w.close()
