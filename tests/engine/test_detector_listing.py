"""A trained detector saved as a folder of its own is listed with the runs (kind "detector"): its
architecture, real data, steps and how it tests, read from detector.json without torch; a folder
whose description is unreadable still lists, saying why; other files of a folder do not make it one."""
from __future__ import annotations

import json
from pathlib import Path

from engine.core.detector_file import KIND, is_detector_file, read_detector_meta
from engine.runs.index import RunsIndex


def write_detector(folder: Path, arch: str = "npr", auc_held: float = 0.6) -> Path:
    """A detector folder as the Detection canvas writes it (weights stand-in: the index reads the JSON only)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "detector.safetensors").write_bytes(b"weights")
    meta = {"kind": KIND, "version": 1, "arch": arch, "width": 4, "pipeline": {"size": 8},
            "training": {"steps": 40, "trained_on": {"gan/a/step_000002": 6}},
            "data": {"real": "digits", "statement": "Real and generated images went through the same pipeline."},
            "report": {"test": {"gan/a/step_000002": {"auc": 0.9, "seen_in_training": True},
                                "vae/b/step_000002": {"auc": auc_held, "seen_in_training": False}}}}
    (folder / "detector.json").write_text(json.dumps(meta))
    return folder / "detector.safetensors"


def test_a_detector_folder_is_listed_beside_the_runs(tmp_path):
    write_detector(tmp_path / "20261207-120000-detector-npr")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "not-a-run" / "notes.json").write_text("{}")
    index = RunsIndex()
    [s] = index.scan(tmp_path)
    assert s.kind == "detector" and s.family == "detector (npr)" and s.dataset == "digits"
    assert s.state == "finished" and s.step == s.total_steps == 40 and not s.checkpoints
    assert "trained against gan/a/step_000002" in s.message and "mean test AUC 0.750" in s.message
    assert "held out: 0.600" in s.message
    assert index.scan(tmp_path)[0] is s      # unchanged: not read again
    write_detector(tmp_path / "20261207-120000-detector-npr", auc_held=0.8)
    assert "held out: 0.800" in index.scan(tmp_path)[0].message


def test_an_unreadable_description_lists_with_its_reason(tmp_path):
    folder = tmp_path / "det"
    write_detector(folder)
    (folder / "detector.json").write_text("{")
    [s] = RunsIndex().scan(tmp_path)
    assert s.kind == "detector" and s.state == "unreadable" and "detector.json: not a readable" in s.message


def test_detector_files_are_told_from_checkpoints(tmp_path):
    det = write_detector(tmp_path / "d")
    assert is_detector_file(det) and is_detector_file(det.with_suffix(".json"))
    assert read_detector_meta(det.with_suffix(""))["arch"] == "npr"
    (tmp_path / "step_000002.json").write_text(json.dumps({"step": 2}))
    assert not is_detector_file(tmp_path / "step_000002.safetensors")
    assert not is_detector_file(tmp_path / "missing.safetensors")


def test_a_loose_detector_file_is_listed_and_a_checkpoints_weights_are_not(tmp_path):
    folder_det = write_detector(tmp_path / "20261207-120000-detector-npr")
    loose = tmp_path / "mine.safetensors"
    loose.write_bytes(folder_det.read_bytes())
    meta = json.loads((folder_det.parent / "detector.json").read_text())
    loose.with_suffix(".json").write_text(json.dumps({**meta, "arch": "cnn"}))
    (tmp_path / "step_000002.safetensors").write_bytes(b"weights")         # a checkpoint saved alone
    (tmp_path / "step_000002.json").write_text(json.dumps({"step": 2}))
    (tmp_path / "orphan.safetensors").write_bytes(b"weights")              # no description at all
    index = RunsIndex()
    runs = index.scan(tmp_path)
    assert [s.path for s in runs] == [folder_det.parent, loose]
    s = runs[1]
    assert s.kind == "detector" and s.family == "detector (cnn)" and s.name == "mine.safetensors"
    assert "mean test AUC 0.750" in s.message
    assert index.scan(tmp_path)[1] is s                                    # unchanged: not read again
    loose.with_suffix(".json").write_text("{")
    assert len(index.scan(tmp_path)) == 1      # no longer names the detector kind: the stale listing goes
    loose.with_suffix(".json").write_text(json.dumps({**meta, "arch": "cnn"}))
    assert index.scan(tmp_path)[1].state == "finished"
    loose.unlink()
    assert [s.path for s in index.scan(tmp_path)] == [folder_det.parent]
