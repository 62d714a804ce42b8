"""The detector ops the Detection canvas runs in the worker: detector-train writes the detector and
answers with its report (per-generator test, format-bias control, leave-one-generator-out matrix),
its progress names the stages and never passes a total, a cancel stops it between steps and leaves
no file; detector-eval appends an evaluation; detect runs the trained check with the detector."""
from __future__ import annotations

import json
import threading

import numpy as np
from PIL import Image

from engine.worker import Worker

TINY = {"real": "digits", "real_count": 12, "fake_count": 8, "steps": 3, "batch_size": 4, "width": 4}


def test_detector_train_writes_the_detector_and_answers_its_report(tmp_path, tiny_runs):
    gan, vae = str(tiny_runs["gan"].checkpoint), str(tiny_runs["vae"].checkpoint)
    events = []
    worker = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    out = tmp_path / "dets" / "detector.safetensors"
    worker.handle({"id": 1, "op": "detector-train", "checkpoint": "", **TINY, "fakes": [gan], "holdout": [vae],
                   "leave_one_out": True, "out": str(out)})
    final = events[-1]
    assert final["event"] == "result", final
    assert final["detector"] == str(out) and out.is_file() and (tmp_path / "dets" / "detector.json").is_file()
    report = final["report"]
    assert [n.split("/")[0] for n in sorted(report["test"])] == ["gan", "vae"]
    held = next(n for n in report["test"] if n.startswith("vae/"))
    assert final["held_out"] == [held] and not report["test"][held]["seen_in_training"]
    assert len(report["test"][held]["roc"]["fpr"]) >= 2 and "same pipeline" in final["statement"]
    assert set(report["format_bias_control"]["biased_test"]) == set(report["test"])
    matrix = report["leave_one_out"]["matrix"]
    assert matrix["rows"] == [f"all but {c}" for c in matrix["columns"]] and np.shape(matrix["values"]) == (2, 2)
    progress = [(e["stage"], e["done"], e["total"]) for e in events if e["event"] == "progress"]
    stages = {s for s, _, _ in progress}
    assert "training" in stages and any(s.startswith("sampling") for s in stages)
    assert all(0 <= d <= t for _, d, t in progress)
    assert json.loads((tmp_path / "dets" / "detector.json").read_text())["report"]["test"].keys() == report["test"].keys()

    worker.handle({"id": 2, "op": "detector-eval", "checkpoint": "", "detector": str(out), "real": "digits",
                   "real_count": 6, "fake_count": 4, "fakes": [vae]})
    final = events[-1]
    assert final["event"] == "result", final
    assert final["real_indices"] == [12, 18] and [n.split("/")[0] for n in final["results"]] == ["vae"]
    assert len(json.loads((tmp_path / "dets" / "detector.json").read_text())["evaluations"]) == 1

    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "grey.png")
    worker.handle({"id": 3, "op": "detect", "checkpoint": "", "images": [str(tmp_path / "grey.png")],
                   "checks": ["npr-cnn"], "detector": str(out), "out": str(tmp_path / "maps")})
    final = events[-1]
    assert final["event"] == "result" and final["rows"][0]["results"][0]["check"] == "npr-cnn", final


def test_a_cancelled_training_stops_between_steps_and_writes_nothing(tmp_path, tiny_runs):
    events = []
    cancel = threading.Event()

    def emit(ev):
        events.append(ev)
        if ev["event"] == "progress" and ev["stage"] == "training" and ev["done"] >= 1:
            cancel.set()      # the Cancel button, pressed while it trains
    worker = Worker(tmp_path / "cache", device="cpu", emit=emit)
    req = {"id": 1, "op": "detector-train", "checkpoint": "", **TINY, "steps": 500,
           "fakes": [str(tiny_runs["gan"].checkpoint)], "out": str(tmp_path / "det")}
    worker.handle(req, cancel)
    assert events[-1]["event"] == "cancelled"
    trained = [e["done"] for e in events if e["event"] == "progress" and e["stage"] == "training"]
    assert trained and max(trained) < 500
    assert not list(tmp_path.glob("det*"))


def test_bad_requests_are_one_line(tmp_path, tiny_runs):
    events = []
    worker = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    gan = str(tiny_runs["gan"].checkpoint)
    worker.handle({"id": 1, "op": "detector-train", "checkpoint": "", **TINY, "fakes": [gan], "holdout": [gan],
                   "out": str(tmp_path / "det")})
    assert events[-1]["event"] == "error" and "both trained against and held out" in events[-1]["message"]
    (tmp_path / "bad.json").write_text("{")
    worker.handle({"id": 2, "op": "detector-eval", "checkpoint": "", "detector": str(tmp_path / "bad.json"),
                   "real": "digits", "fakes": [gan]})
    assert events[-1]["event"] == "error" and "bad.json: not a readable detector description" in events[-1]["message"]
