from PIL import Image
from PySide6.QtCore import Qt

from app.canvases.sampling import SamplingCanvas
from app.worker_session import WorkerSession
from engine.training.loop import train
from tests.conftest import tiny_config


def test_sampling_canvas_samples_from_checkpoint_and_saves(qtbot, tmp_path):
    res = train(tiny_config(training={"steps": 10}), tmp_path / "run", emit=lambda e: None)
    session = WorkerSession()
    canvas = SamplingCanvas(session)
    qtbot.addWidget(canvas)
    canvas.show()
    canvas.set_checkpoint(str(res.last_checkpoint))
    qtbot.waitUntil(lambda: canvas.cls.count() == 11, timeout=60000)  # "all classes" + 10 digits
    # the options are the family's own, drawn from its options dataclass, set to the run's values
    assert canvas.options.editors["guidance_scale"].isEnabled()
    assert canvas.options.editors["steps"].value() == 5 and "truncation_psi" not in canvas.options.editors
    canvas.n.setValue(8)
    canvas.options.editors["steps"].setValue(4)
    canvas.cls.setCurrentIndex(4)  # digit 3
    qtbot.mouseClick(canvas.sample_btn, Qt.LeftButton)
    qtbot.waitUntil(canvas.view.has_image, timeout=60000)
    assert canvas.view.image_size().width() > 8
    assert canvas.save_btn.isEnabled()
    out = tmp_path / "saved.png"
    canvas.save_to(str(out))
    assert Image.open(out).size == (canvas.view.image_size().width(), canvas.view.image_size().height())
    # Evaluate runs in an engine process and reports the scores
    canvas.eval_n.setValue(60)
    qtbot.mouseClick(canvas.eval_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: "FD-domain" in canvas.eval_result.text(), timeout=180000)
    assert "precision-domain" in canvas.eval_result.text() and canvas.eval_btn.isEnabled()
    # a bad checkpoint path shows an error, the canvas stays usable
    canvas.set_checkpoint(str(tmp_path / "nope.safetensors"))
    qtbot.waitUntil(lambda: "checkpoint not found" in canvas.status.text(), timeout=30000)
    canvas.shutdown()
    session.shutdown()
