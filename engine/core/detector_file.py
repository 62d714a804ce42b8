"""A trained detector's description file (DET.json beside DET.safetensors, engine/detect/trained.py
writes both), read without numpy or torch: the runs browser lists detectors by it and the GUI shows
a detector's report from it. Light: json and pathlib only."""
from __future__ import annotations

import json
from pathlib import Path

KIND = "genlab-trained-detector"      # DET.json's "kind" (and the weights' safetensors metadata)
FOLDER_FILE = "detector.json"         # a detector saved as a folder of its own (the GUI's default) holds this


def detector_base(path: str | Path) -> Path:
    """DET from DET, DET.json or DET.safetensors."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".safetensors") else p


def read_detector_meta(path: str | Path) -> dict:
    """DET.json as a dict (from DET, DET.json or DET.safetensors). ValueError: one line naming the
    file and the problem."""
    meta_path = detector_base(path).with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{meta_path}: no such detector file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_path}: not a readable detector description ({e})") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise ValueError(f"{meta_path}: not a GenLab trained detector (kind {kind!r})")
    return meta


def is_detector_folder(folder: str | Path) -> bool:
    """A folder that holds a detector saved as FOLDER_FILE (and its weights)."""
    folder = Path(folder)
    return (folder / FOLDER_FILE).is_file() and (folder / FOLDER_FILE).with_suffix(".safetensors").is_file()


def is_detector_file(path: str | Path) -> bool:
    """Whether DET.json beside this file (or this DET.json) describes a trained detector."""
    try:
        read_detector_meta(path)
    except ValueError:
        return False
    return True
