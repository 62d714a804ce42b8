"""The Detection canvas's detector dialog, driven as a person would with the engine worker in the
test's process: fill the form, train a tiny detector (its progress names the stage and the time
left), see the evaluation view (a row and a ROC curve per generator, the leave-one-generator-out
heat map, the format-bias control line) and the canvas switch the detector's check on; Cancel
stops the engine mid-training and writes nothing; a saved detector's reports show in the
evaluate dialog and its evaluation adds one."""
import shutil
import threading

import pytest
from PySide6.QtCore import QSettings

from app.canvases.detection import DetectionCanvas
from app.worker_session import WorkerSession
from engine.worker import Worker
from tests.app.test_canvas_views import FakeClient


class CancellingClient(FakeClient):
    """A cancel request sets the event the test's worker checks (as the worker's stdin thread does)."""

    def __init__(self):
        super().__init__()
        self.cancel_event = threading.Event()

    def request(self, op, **fields):
        if op == "cancel":
            self.cancel_event.set()
        return super().request(op, **fields)


@pytest.fixture
def canvas(qtbot, tmp_path):
    client = CancellingClient()
    c = DetectionCanvas(WorkerSession(client), settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    c.detectors_folder = tmp_path / "runs"
    c.make_job_session = lambda: c.session     # the test's worker plays the job worker too
    qtbot.addWidget(c)
    worker = Worker(tmp_path / "cache", device="cpu", emit=client.event.emit)
    return c, client, worker


@pytest.fixture(scope="module")
def generators(tiny_runs, tmp_path_factory):
    """Two 'generators': the tiny GAN's checkpoint, and a copy of it in another run folder (its
    samples come from the cache: the test trains, it does not wait for sampling)."""
    gan = tiny_runs["gan"].checkpoint
    other = tmp_path_factory.mktemp("copy") / "gan-copy" / "checkpoints"
    other.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(gan.with_suffix(suffix), other / gan.with_suffix(suffix).name)
    return str(gan), str(other / gan.name)


def tiny_form(dlg, steps=3):
    dlg.real.setCurrentText("digits")
    dlg.real_count.setValue(12)
    dlg.fake_count.setValue(8)
    dlg.steps.setValue(steps)
    dlg.batch_size.setValue(4)
    dlg.width.setValue(4)


def test_train_shows_progress_then_the_evaluation_and_the_canvas_uses_the_detector(canvas, generators, qtbot):
    c, client, worker = canvas
    gan, copy = generators
    dlg = c.open_detector_dialog("train")
    qtbot.addWidget(dlg)
    assert dlg.isVisible() and dlg.start() == 0 and "at least one checkpoint" in dlg.status.text()
    tiny_form(dlg)
    dlg.fakes.add(gan)
    dlg.holdout.add(copy)
    dlg.logo.setChecked(True)
    dlg.arch.setCurrentIndex(1)     # cnn: augmentation follows, and so does the default file name
    assert dlg.augment.isChecked() and "-detector-cnn/detector.safetensors" in dlg.out_edit.text()
    dlg.arch.setCurrentIndex(0)
    assert not dlg.augment.isChecked() and "-detector-npr/" in dlg.out_edit.text()
    assert dlg.start()
    req = client.last("detector-train")
    assert req["fakes"] == [gan] and req["holdout"] == [copy] and req["checkpoint"] == "" and req["steps"] == 3
    assert not dlg.start_btn.isEnabled() and dlg.cancel_btn.isEnabled()
    shown = []
    client.event.connect(lambda ev: shown.append(dlg.progress.format()) if ev.get("event") == "progress" else None)
    worker.handle(req)
    assert any(f.startswith("training ") for f in shown), shown
    assert any(f.startswith("sampling ") for f in shown), shown
    assert dlg.progress.format() == "done" and dlg.start_btn.isEnabled() and not dlg.cancel_btn.isEnabled()
    # the evaluation view: a row and a ROC curve with points per generator, the heat map, the bias line
    assert dlg.tabs.currentIndex() == 1
    view = dlg.view
    assert view.table.rowCount() == 2
    trained = {view.table.item(i, 0).text(): view.table.item(i, 1).text() for i in range(2)}
    assert sorted(trained.values()) == ["no (held out)", "yes"]
    curves = view.roc_curves()
    assert len(curves) == 2 and all(len(curve.getData()[0]) >= 2 for curve in curves)
    assert not view.heat.isHidden() and view.heat.rowCount() == view.heat.columnCount() == 2
    assert view.bias.text().count("Format-bias control") == 1 and "fair" in view.bias.text()
    # the canvas now has the detector: its check is on, and a drop sends the detector with it
    assert c.detector == req["out"] and c.detector_arch == "npr"
    assert c.check_boxes["npr-cnn"].isEnabled() and c.check_boxes["npr-cnn"].isChecked()
    assert not c.check_boxes["cnn"].isEnabled() and "needs a trained CNN detector" in c.need_labels["cnn"].text()
    c.add_paths([req["out"]])
    assert client.last("detect")["detector"] == req["out"] and "npr-cnn" in client.last("detect")["checks"]


def test_cancel_stops_the_engine_and_nothing_is_written(canvas, generators, qtbot, tmp_path):
    c, client, worker = canvas
    dlg = c.open_detector_dialog("train")
    qtbot.addWidget(dlg)
    tiny_form(dlg, steps=2000)
    dlg.fakes.add(generators[0])
    dlg.bias_control.setChecked(False)
    dlg.out_edit.setText(str(tmp_path / "det.safetensors"))
    assert dlg.start()
    steps = []

    def press_cancel(ev):
        if ev.get("event") == "progress" and ev["stage"] == "training":
            steps.append(ev["done"])
            if dlg.cancel_btn.isEnabled():
                dlg.cancel_btn.click()
    client.event.connect(press_cancel)
    worker.handle(client.last("detector-train"), client.cancel_event)
    assert client.last("cancel")["target"] == client.last("detector-train")["id"]
    assert steps and max(steps) < 2000
    assert dlg.progress.format() == "cancelled" and "nothing was written" in dlg.status.text()
    assert dlg.start_btn.isEnabled() and not list(tmp_path.glob("det*"))
    assert c.detector == ""


def test_a_worker_that_dies_mid_job_frees_the_dialog(canvas, generators, qtbot):
    c, client, _ = canvas
    dlg = c.open_detector_dialog("train")
    qtbot.addWidget(dlg)
    tiny_form(dlg)
    dlg.fakes.add(generators[0])
    assert dlg.start() and dlg.is_running()
    client.ended.emit(9, True, "Killed")
    assert not dlg.is_running() and dlg.start_btn.isEnabled() and "worker stopped" in dlg.status.text()


def test_detector_jobs_get_a_worker_of_their_own(qtbot, tmp_path):
    c = DetectionCanvas(WorkerSession(FakeClient()), settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(c)
    dlg = c.open_detector_dialog("train")
    qtbot.addWidget(dlg)
    assert c.job_session is not c.session and dlg.session is c.job_session
    assert c.open_detector_dialog("eval").session is c.job_session and c.open_detector_dialog("train") is dlg
    c.shutdown()      # no job was sent: no worker process was started, none to stop


def test_evaluate_dialog_shows_the_saved_reports_and_adds_an_evaluation(canvas, generators, qtbot, tmp_path):
    c, client, worker = canvas
    dlg = c.open_detector_dialog("train")
    qtbot.addWidget(dlg)
    tiny_form(dlg)
    dlg.fakes.add(generators[0])
    dlg.bias_control.setChecked(False)
    dlg.out_edit.setText(str(tmp_path / "det" / "detector.safetensors"))
    dlg.start()
    worker.handle(client.last("detector-train"))
    assert c.detector.endswith("detector.safetensors") and "bias control" in dlg.view.bias.text()
    ev = c.open_detector_dialog("eval")
    qtbot.addWidget(ev)
    assert ev.detector_edit.text() == c.detector and [ev.report_pick.itemText(i) for i in range(
        ev.report_pick.count())] == ["test after training"]
    assert ev.view.table.rowCount() == 1
    ev.fakes.set_paths([generators[1]])
    ev.real_count.setValue(6)
    ev.fake_count.setValue(4)
    assert ev.start()
    assert client.last("detector-eval")["detector"] == c.detector
    worker.handle(client.last("detector-eval"))
    assert ev.report_pick.count() == 2 and ev.report_pick.currentText() == "evaluation 1"
    assert ev.view.table.rowCount() == 1 and "gan-copy" in ev.view.table.item(0, 0).text()
    assert len(ev.view.roc_curves()) == 1 and ev.view.heat.isHidden()
    assert "real images 12..17" in ev.status.text()


def test_an_empty_checkpoint_list_says_what_goes_into_it(canvas, qtbot):
    c, _, _ = canvas
    dlg = c.open_detector_dialog("train")
    qtbot.waitExposed(dlg)
    box = dlg.fakes.list
    blank = box.palette().base().color().rgb()

    def inked() -> int:   # pixels of the empty box that are not its background
        img = box.grab().toImage()
        return sum(img.pixel(x, y) != blank for y in range(4, img.height() - 4) for x in range(4, img.width() - 4))

    assert "checkpoints to train against" in box.hint
    drawn = inked()
    box.hint = ""
    assert drawn > 50 and inked() == 0              # the grey hint is what is drawn in the empty box
    dlg.close()
