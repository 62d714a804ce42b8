"""The `detect` and `watermark` worker ops (engine/ops/detect.py, watermark.py): every chosen check
on every image with its score, direction, sentence, map PNG and plot; one line for a bad file while
the rest go on; Cancel between checks; a message embedded into a PNG and verified; Tree-Ring
images sampled from a diffusion checkpoint and verified."""
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.core.detect_checks import CHECKS
from engine.family.progress import Cancelled
from engine.ops.base import parse_request
from engine.ops.detect import DetectRequest, run
from engine.worker import Worker

CHECK_KEYS = ["spectrum", "npr", "noise", "copymove", "watermark"]


@pytest.fixture
def images(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    upsampled = np.repeat(np.repeat(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), 2, 0), 2, 1)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(upsampled).save(tmp_path / "upsampled.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    return {k: str(tmp_path / f"{k}.png") for k in ("photo", "upsampled", "broken")}


def test_every_check_on_two_images_and_one_line_for_a_bad_file(images, tmp_path):
    req = parse_request(DetectRequest, {"images": [images["photo"], images["broken"], images["upsampled"]],
                                        "checks": CHECK_KEYS, "out": str(tmp_path / "out")}, "detect")
    seen = []
    res = run(None, req, lambda stage, done, total: seen.append((done, total)), lambda: False)
    assert [Path(r["image"]).name for r in res.rows] == ["photo.png", "upsampled.png"]
    assert len(res.failures) == 1 and res.failures[0].startswith(images["broken"] + ": ")
    assert seen[-1] == (15, 15) and all(0 <= d <= t for d, t in seen)
    for row in res.rows:
        assert Image.open(row["preview"]).size == tuple(row["size"])
        assert [r["check"] for r in row["results"]] == CHECK_KEYS
        for r in row["results"]:
            assert r["direction"] == CHECKS.get(r["check"]).direction and r["explanation"]
            if r["check"] != "watermark":    # a map for every check but the watermark's
                assert Path(r["map"]["png"]).is_file(), r["check"]
    by_key = {r["check"]: r for r in res.rows[1]["results"]}
    assert by_key["npr"]["score"] == 0 and by_key["npr"]["suspicious"] is True   # nearest 2x up-sampling
    assert {r["check"]: r for r in res.rows[0]["results"]}["npr"]["suspicious"] is False
    assert by_key["noise"]["score"] is None and by_key["noise"]["suspicious"] is None   # no reference
    plot = by_key["spectrum"]["plot"]
    assert len(plot["series"]) == 2 and any(k.startswith("real mean") for k in plot["series"])


def test_cancel_stops_between_checks(images, tmp_path):
    req = parse_request(DetectRequest, {"images": [images["photo"], images["upsampled"]], "checks": ["npr", "copymove"],
                                        "out": str(tmp_path / "out")}, "detect")
    calls = []
    with pytest.raises(Cancelled):
        run(None, req, lambda *a: calls.append(a), lambda: len(calls) >= 2)
    assert calls[-1][1] < calls[-1][2], "it stopped before the last check"


def test_the_worker_runs_it_without_a_model_and_answers_cancelled(images, tmp_path):
    events = []
    worker = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    worker.handle({"id": 1, "op": "detect", "images": [images["photo"]], "checks": ["npr"]})
    assert events[-1]["event"] == "result" and Path(events[-1]["out"]).is_dir()
    stop = threading.Event()
    stop.set()
    worker.handle({"id": 2, "op": "detect", "images": [images["photo"]], "checks": ["npr"]}, stop)
    assert events[-1]["event"] == "cancelled"
    worker.handle({"id": 3, "op": "detect", "images": [images["photo"]], "checks": ["nope"]})
    assert events[-1]["event"] == "error" and "unknown check 'nope'" in events[-1]["message"]


def test_watermark_op_embeds_a_message_and_verifies_it(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    events = []
    worker = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    worker.handle({"id": 1, "op": "watermark", "action": "embed", "image": str(tmp_path / "p.png"),
                   "method": "dwtDctSvd", "message": "GenLab", "out": str(tmp_path / "marked.png")})
    assert events[-1]["event"] == "result" and (tmp_path / "marked.png").is_file()
    worker.handle({"id": 2, "op": "watermark", "action": "verify", "image": str(tmp_path / "marked.png"),
                   "method": "dwtDctSvd", "message": "GenLab"})
    ok = events[-1]
    assert ok["text"] == "GenLab" and ok["bit_accuracy"] == 1.0 and ok["p_value"] < 1e-10 and ok["verdict"] == "marked"
    worker.handle({"id": 3, "op": "watermark", "action": "verify", "image": str(tmp_path / "p.png"),
                   "method": "dwtDctSvd", "message": "GenLab"})
    assert events[-1]["p_value"] > 1e-3 and events[-1]["verdict"] == "absent", "an unmarked image lacks the message"
    worker.handle({"id": 4, "op": "watermark", "action": "embed", "image": str(tmp_path / "p.png"),
                   "message": "x", "out": str(tmp_path / "marked.jpg")})
    assert events[-1]["event"] == "error" and "PNG" in events[-1]["message"]


def test_watermark_op_samples_treering_images_and_verifies_them(tiny_runs, tmp_path):
    """Tree-Ring through the op: embed samples `count` marked PNGs from the diffusion checkpoint
    (progress per image), verify inverts one (progress per DDIM step) and gives its p-value, distance
    and verdict; a request without a checkpoint is one line saying to choose one."""
    ckpt = str(tiny_runs["ddpm"].checkpoint)
    events = []
    worker = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    worker.handle({"id": 1, "op": "watermark", "action": "embed", "method": "treering", "key": "7", "count": 2,
                   "steps": 5, "diffusion_checkpoint": ckpt, "samples": str(tmp_path / "marked")})
    res = events[-1]
    assert res["event"] == "result", res
    assert [Path(p).name for p in res["samples"]] == ["treering_00000.png", "treering_00001.png"]
    assert all(Path(p).is_file() for p in res["samples"]) and res["ring"]["key"] == "7"
    sampling = [(e["done"], e["total"]) for e in events if e["event"] == "progress" and e["stage"] == "sampling"]
    assert sampling[-1] == (2, 2)
    verdicts = {}
    for i, image in enumerate(res["samples"]):
        worker.handle({"id": 2 + i, "op": "watermark", "action": "verify", "method": "treering", "key": "7",
                       "steps": 5, "diffusion_checkpoint": ckpt, "image": image})
        ev = events[-1]
        assert ev["event"] == "result" and 0 <= ev["p_value"] <= 1 and ev["distance"] >= 0, ev
        verdicts[image] = (ev["p_value"], ev["verdict"])
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "plain.png")
    worker.handle({"id": 5, "op": "watermark", "action": "verify", "method": "treering", "key": "7",
                   "steps": 5, "diffusion_checkpoint": ckpt, "image": str(tmp_path / "plain.png")})
    verdicts["plain"] = (events[-1]["p_value"], events[-1]["verdict"])
    # the tiny two-step DDPM at 8 px, 5 steps (measured: p 0.005 and 0.002 marked, 0.53 for the noise image)
    assert [v for _, v in verdicts.values()] == ["marked", "marked", "absent"], verdicts
    assert any(e["event"] == "progress" and e["stage"] == "inverting" for e in events)
    worker.handle({"id": 9, "op": "watermark", "action": "verify", "method": "treering", "key": "7",
                   "image": res["samples"][0]})
    assert events[-1]["event"] == "error" and "choose a diffusion checkpoint" in events[-1]["message"]
    stop = threading.Event()
    stop.set()                  # Cancel: nothing is sampled
    worker.handle({"id": 10, "op": "watermark", "action": "embed", "method": "treering", "key": "7", "count": 2,
                   "steps": 5, "diffusion_checkpoint": ckpt, "samples": str(tmp_path / "cancelled")}, stop)
    assert events[-1]["event"] == "cancelled" and not list((tmp_path / "cancelled").glob("*.png"))
