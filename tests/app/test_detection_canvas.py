"""The Detection canvas: a dropped image is checked by the worker (no model loaded) and its scores
fill the table, suspicious ones marked; selecting a row shows the image, the chosen check's map,
the spectrum profile and the sentences; a check that needs something says so and offers a picker;
Cancel reaches the worker; the watermark panel embeds and verifies through its op (Tree-Ring: samples
marked images from a diffusion checkpoint into the table and verifies one with a p-value); the HTML
report embeds the pictures."""
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.canvases.detection import DetectionCanvas
from app.worker_session import WorkerSession
from engine.worker import Worker
from tests.app.test_canvas_views import FakeClient


@pytest.fixture
def canvas(qtbot, tmp_path):
    client = FakeClient()
    c = DetectionCanvas(WorkerSession(client), settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(c)
    c.resize(1100, 700)
    worker = Worker(tmp_path / "cache", device="cpu", emit=client.event.emit)
    return c, client, worker


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    up = np.repeat(np.repeat(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), 2, 0), 2, 1)
    Image.fromarray(up).save(tmp_path / "upsampled.png")
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    return tmp_path


def drop(widget, *paths) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    QApplication.sendEvent(widget, QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return True


def answer(client, worker, op):
    """The worker answers the canvas's last `op` request; its events reach the canvas."""
    worker.handle(client.last(op))


def use_checks(c, keys):
    for key, box in c.check_boxes.items():
        box.setChecked(key in keys)


def test_a_dropped_image_gets_scores_in_the_table_and_its_row_shows_the_evidence(canvas, pictures):
    c, client, worker = canvas
    use_checks(c, ["spectrum", "npr", "copymove", "noise"])
    assert drop(c, pictures / "upsampled.png")
    req = client.last("detect")
    assert req["images"] == [str(pictures / "upsampled.png")] and req["checkpoint"] == ""
    assert req["checks"] == ["spectrum", "npr", "noise", "copymove"] and c.cancel_btn.isEnabled()
    answer(client, worker, "detect")
    assert c.table.rowCount() == 1 and not c.cancel_btn.isEnabled()
    headers = [c.table.horizontalHeaderItem(i).text() for i in range(c.table.columnCount())]
    assert headers[0] == "Image" and "Neighbouring-pixel\nresidual ↓" in headers
    npr = c.table.item(0, headers.index("Neighbouring-pixel\nresidual ↓"))
    assert npr.text().startswith("0") and "⚠" in npr.text()   # nearest 2x up-sampling: marked
    assert c.selected_image() == str(pictures / "upsampled.png")
    assert c.image_view.has_image() and c.map_view.has_image()
    maps = [c.map_check.itemData(i) for i in range(c.map_check.count())]
    assert maps == ["spectrum", "npr", "noise", "copymove"]
    c.map_check.setCurrentIndex(maps.index("copymove"))
    assert c.map_view.path.endswith("_copymove.png") and "duplicated" in c.map_title.text()
    assert len(c.plot.getPlotItem().listDataItems()) == 2   # the profile and the real mean
    assert "2x2 cell repeats one pixel" in c.sentences.toPlainText()


def test_a_folder_with_a_bad_file_checks_the_rest_and_rows_sort_by_score(canvas, pictures):
    c, client, worker = canvas
    (pictures / "broken.png").write_bytes(b"nope")
    use_checks(c, ["npr"])
    c.add_paths([str(pictures)])
    sent = [r for r in client.sent if r["op"] == "detect"]
    assert [r["images"] for r in sent] == [[str(pictures / n)] for n in ("broken.png", "noise.png", "upsampled.png")]
    for r in sent:
        worker.handle(r)
    assert c.progress.value() == c.progress.maximum() == 3 and "done" in c.progress.format()
    assert c.table.rowCount() == 2 and "broken.png" in c.status.text() and "1 not" in c.status.text()
    c.table.sortItems(1, Qt.AscendingOrder)
    assert c.table.item(0, 0).text() == "upsampled.png"
    c.table.sortItems(1, Qt.DescendingOrder)
    assert c.table.item(0, 0).text() == "noise.png"
    c.table.selectRow(1)
    assert c.selected_image().endswith("upsampled.png")
    c.add_paths([str(pictures / "noise.png")])           # a second drop while nothing runs: a new batch
    assert c._batch["total"] == 1


def test_cancel_reaches_every_queued_image_in_the_worker(canvas, pictures):
    c, client, _ = canvas
    rid = c.add_paths([str(pictures)])
    c.cancel()
    assert [r["target"] for r in client.sent if r["op"] == "cancel"] == [rid, rid + 1]
    assert "cancelling" in c.progress.format()


def test_checks_that_need_something_say_which_and_take_a_picked_one(canvas, tmp_path):
    c, client, _ = canvas
    assert not c.check_boxes["spectrum-lr"].isEnabled() and "detector file" in c.need_labels["spectrum-lr"].text()
    assert "spectrum detector" in c.need_labels["spectrum-lr"].toolTip()
    assert c.check_boxes["noise"].isEnabled() and "reference folder" in c.need_labels["noise"].text()
    assert "folder of images from one source" in c.need_labels["noise"].toolTip()
    c.set_reference("noise", str(tmp_path))
    c.set_reference("spectrum-lr", str(tmp_path / "det.json"))
    assert c.check_boxes["spectrum-lr"].isChecked() and "det.json" in c.need_labels["spectrum-lr"].text()
    c.add_paths([str(tmp_path)])
    req = client.last("detect")
    assert req["noise_reference"] == str(tmp_path) and req["spectrum_detector"] == str(tmp_path / "det.json")
    c.set_reference("spectrum-lr", "")
    assert not c.check_boxes["spectrum-lr"].isEnabled() and "spectrum-lr" not in c.chosen_checks()


def test_model_checks_need_a_checkpoint_and_the_worker_looks_through_the_picked_one(canvas, pictures, tiny_runs):
    c, client, worker = canvas
    from app.canvases.detection import ARCH_CHECK, PICKERS
    from engine.core.detect_checks import CHECKS, NEEDS_FILE
    # every check that cannot run without a file gets a picker or is a trained detector's
    assert {k for k, s in CHECKS.items() if s.needs in NEEDS_FILE} <= set(PICKERS) | set(ARCH_CHECK.values())
    for key in ("zeroshot", "aeroblade", "dire"):
        assert not c.check_boxes[key].isEnabled() and "needs a checkpoint" in c.need_labels[key].text()
    ckpt = str(tiny_runs["pixelcnn"].checkpoint)
    c.set_reference("zeroshot", ckpt)
    assert c.check_boxes["zeroshot"].isChecked() and "aeroblade" not in c.chosen_checks()
    use_checks(c, ["zeroshot"])
    c.add_paths([str(pictures / "noise.png")])
    assert client.last("detect")["likelihood_model"] == ckpt
    answer(client, worker, "detect")
    (result,) = c.rows[str(pictures / "noise.png")]["results"]
    assert result["check"] == "zeroshot" and result["score"] > 2 and result["map"]["png"]   # noise: harder than expected


def test_watermark_panel_embeds_into_a_png_and_verifies(canvas, tmp_path):
    c, client, worker = canvas
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    c.wm_method.setCurrentText("dwtDctSvd")
    c.wm_message.setText("GenLab")
    assert c.embed_watermark(str(tmp_path / "marked.png"), str(tmp_path / "photo.png"))
    answer(client, worker, "watermark")
    assert (tmp_path / "marked.png").is_file() and "48 bits" in c.wm_result.text()
    assert c.verify_watermark(str(tmp_path / "marked.png"))
    answer(client, worker, "watermark")
    assert "bit accuracy 1.000" in c.wm_result.text() and "the message is there" in c.wm_result.text()
    assert c.verify_watermark(str(tmp_path / "photo.png"))
    answer(client, worker, "watermark")
    assert "no sign of this message" in c.wm_result.text()


def test_treering_in_the_watermark_panel_samples_into_the_table_and_verifies(canvas, tmp_path, tiny_runs):
    c, client, worker = canvas
    c.wm_method.setCurrentText("treering")
    assert c.embed_btn.text() == "Sample marked…" and "cannot mark an existing image" in c.embed_btn.toolTip()
    assert not c.wm_form.isRowVisible(c.wm_message) and c.wm_form.isRowVisible(c.tr_key)
    assert "needs a diffusion checkpoint" in c.tr_checkpoint_label.text()
    assert c.embed_watermark(str(tmp_path / "marked")) == 0 and "needs a diffusion checkpoint" in c.status.text()
    ckpt = str(tiny_runs["ddpm"].checkpoint)
    c.set_reference("dire", ckpt)                        # the dire check's checkpoint serves Tree-Ring too
    assert "the dire check" in c.tr_checkpoint_label.text() and c.treering_checkpoint() == ckpt
    use_checks(c, ["npr"])
    c.tr_key.setText("7")
    c.tr_count.setValue(2)
    c.tr_steps.setValue(5)
    assert c.embed_watermark(str(tmp_path / "marked"))
    req = client.last("watermark")
    assert (req["method"], req["action"], req["count"], req["diffusion_checkpoint"]) == ("treering", "embed", 2, ckpt)
    assert c.cancel_btn.isEnabled()                      # it runs in the worker: Cancel reaches it
    answer(client, worker, "watermark")
    assert "Sampled 2 image(s)" in c.wm_result.text()
    assert c.progress.format().startswith("sampling") and c.progress.value() == c.progress.maximum() == 2
    for r in [r for r in client.sent if r["op"] == "detect"]:
        worker.handle(r)                                 # the samples are checked like any dropped image
    assert c.table.rowCount() == 2
    assert sorted(c.table.item(i, 0).text() for i in range(2)) == ["treering_00000.png", "treering_00001.png"]
    c.select_image(str(tmp_path / "marked" / "treering_00000.png"))
    assert c.verify_watermark()
    assert client.last("watermark")["image"].endswith("treering_00000.png")
    answer(client, worker, "watermark")
    text = c.wm_result.text()
    assert "p = " in text and "distance" in text and "marked: the key's rings" in text, text
    c.set_treering_checkpoint(str(tmp_path / "missing.safetensors"))   # its own pick wins over the dire check's
    assert "missing.safetensors" in c.tr_checkpoint_label.text() and "dire" not in c.tr_checkpoint_label.text()
    assert c.verify_watermark()
    answer(client, worker, "watermark")
    assert "failed" in c.wm_result.text() and "missing.safetensors: no such checkpoint" in c.status.text()


def test_html_export_holds_the_table_and_embedded_pictures(canvas, pictures, tmp_path):
    c, client, worker = canvas
    use_checks(c, ["spectrum", "npr"])
    c.add_paths([str(pictures / "upsampled.png"), str(pictures / "noise.png")])
    for r in [r for r in client.sent if r["op"] == "detect"]:
        worker.handle(r)
    out = tmp_path / "report.html"
    assert c.export_html(str(out))
    html = out.read_text()
    assert "<table>" in html and "upsampled.png" in html and "noise.png" in html
    assert html.count("data:image/png;base64,") == 6   # two previews and two maps each
    assert "<svg" in html and "2x2 cell repeats one pixel" in html and "class='sus'" in html
    assert "src='/" not in html and "file://" not in html   # nothing outside the file


def test_verify_all_reads_every_image_in_the_worker_into_a_watermark_column(canvas, tmp_path):
    c, client, worker = canvas
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp_path / name)
    c.wm_method.setCurrentText("dwtDctSvd")
    c.wm_message.setText("GenLab")
    assert c.verify_all() == 0 and "Drop images" in c.status.text()     # nothing in the table yet
    c.embed_watermark(str(tmp_path / "a_marked.png"), str(tmp_path / "a.png"))
    answer(client, worker, "watermark")
    use_checks(c, ["npr"])
    c.add_paths([str(tmp_path / "a_marked.png"), str(tmp_path / "b.png")])
    for r in [r for r in client.sent if r["op"] == "detect"]:
        worker.handle(r)
    assert c.table.columnCount() == 2                                   # no Watermark column before a verify
    first = c.verify_all()
    sent = [r for r in client.sent if r["op"] == "watermark" and r["action"] == "verify"]
    assert [r["id"] for r in sent] == [first, first + 1] and {r["method"] for r in sent} == {"dwtDctSvd"}
    assert c.cancel_btn.isEnabled() and c.progress.format().startswith("verifying 0 / 2")
    worker.handle(sent[0])
    assert c.progress.value() == 100 and c.progress.maximum() == 200 and "verifying 1 / 2" in c.progress.format()
    worker.handle(sent[1])
    assert c.progress.format() == "done · 2 verified, 1 marked" and "verified 2 image(s): 1 marked" in c.wm_result.text()
    assert c.table.columnCount() == 3 and c.table.horizontalHeaderItem(2).text().startswith("Watermark")
    cells = {c.table.item(i, 0).text(): c.table.item(i, 2).text() for i in range(2)}
    assert cells["a_marked.png"].endswith(" marked") and cells["b.png"].endswith(" absent"), cells
    assert c.verified[str(tmp_path / "a_marked.png")]["bit_accuracy"] == 1.0


def test_cancel_reaches_every_queued_verify_and_a_failed_image_does_not_stop_the_batch(canvas, tmp_path):
    c, client, worker = canvas
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    use_checks(c, ["npr"])
    c.add_paths([str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    for r in [r for r in client.sent if r["op"] == "detect"]:
        worker.handle(r)
    c.wm_method.setCurrentText("dwtDct")
    (tmp_path / "b.png").unlink()                                      # gone since it was checked
    first = c.verify_all()
    for r in [r for r in client.sent if r["op"] == "watermark"]:
        worker.handle(r)
    assert "b.png" in c.status.text() and c.progress.format().endswith("1 failed")
    assert str(tmp_path / "a.png") in c.verified and str(tmp_path / "b.png") not in c.verified
    first = c.verify_all()
    c.cancel()
    assert [r["target"] for r in client.sent if r["op"] == "cancel"] == [first, first + 1]


def test_html_report_gives_each_images_treering_verification(canvas, tmp_path, tiny_runs):
    c, client, worker = canvas
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "plain.png")
    c.wm_method.setCurrentText("treering")
    c.set_treering_checkpoint(str(tiny_runs["ddpm"].checkpoint))
    c.tr_key.setText("7")
    c.tr_count.setValue(1)
    c.tr_steps.setValue(5)
    use_checks(c, ["npr"])
    c.sample_treering(str(tmp_path / "marked"))
    answer(client, worker, "watermark")
    c.add_paths([str(tmp_path / "plain.png")])
    for r in [r for r in client.sent if r["op"] == "detect"]:
        worker.handle(r)
    out = tmp_path / "before.html"
    assert c.export_html(str(out)) and "Tree-Ring" not in out.read_text()   # nothing verified: no column
    c.verify_all()
    for r in [r for r in client.sent if r["op"] == "watermark" and r["action"] == "verify"]:
        worker.handle(r)
    marked = c.verified[str(tmp_path / "marked" / "treering_00000.png")]
    plain = c.verified[str(tmp_path / "plain.png")]
    assert c.export_html(str(out))
    html = out.read_text()
    assert "<th>Tree-Ring<br><small>p-value, verdict</small></th>" in html
    rows = {line.split("</td>")[0].split("<td>")[-1]: line for line in html.splitlines() if line.startswith("<tr><td>")}
    p_marked = f"{marked['p_value']:.4g}"
    assert f"<td class='sus'>{p_marked}, marked</td>" in rows["treering_00000.png"], rows
    assert f"<td>{plain['p_value']:.4g}, {plain['verdict']}</td>" in rows["plain.png"]
    assert f"<b>Tree-Ring</b>: p = {p_marked}, marked (key “7”, 5 DDIM steps, " in html
