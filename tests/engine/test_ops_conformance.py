"""Every operation (engine/ops OPS) on every family's tiny checkpoint, through the engine Worker as
the GUI drives it: where the model has the capability record the op needs, a tiny request is
answered with a result whose files exist (and progress that never passes its total); where it
lacks it, with an error that says so (never an internal error). A new family is covered by
registering; a new op fails test_every_op_has_a_tiny_request until it gets a line below."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.core.capabilities import Capabilities
from engine.core.families import FAMILIES
from engine.ops import OPS
from engine.worker import Worker
from tests.conftest import TINY_RES

ANY = ""   # any loaded model

# op -> its tiny requests: (the capability record it needs: a Capabilities field or a path into
# one, "sampling.solvers", ANY, or None for a request that needs no model, its fields); "{image}",
# "{mask}" and "{tmp}" are filled in below, and a request with "{method}" is sent once per inpainting method of the model
TINY_REQUESTS: dict[str, list[tuple[str | None, dict]]] = {
    "sample": [(ANY, {"n": 2, "seed": 1})],
    "project": [("latent", {"image": "{image}", "encode_steps": 2})],
    "mix": [("style_mix", {"rows": [1, "{image}"], "cols": [2, 3], "layers": [0], "encode_steps": 2})],
    "interpolate": [("latent", {"endpoints": [1, "{image}"], "frames": 3, "encode_steps": 2})],
    "interpolate-export": [("latent", {"endpoints": [1, 2], "frames": 3, "out": "{tmp}/walk.gif"})],
    "trajectory": [("sampling.trajectory", {"seed": 1, "options": {"steps": 2}})],
    "evaluate": [(ANY, {"n": 10, "metrics": "kid", "steps": 2})],
    "sweep": [("sampling.solvers", {"solvers": ["ddim"], "steps": [1, 2], "samples": 10, "reference": "ddim:2",
                                    "out": "{tmp}/sweep"})],
    "inpaint": [("inpaint", {"image": "{image}", "mask": "{mask}", "seeds": [0, 1], "method": "{method}"}),
                (None, {"image": "{image}", "mask": "{mask}", "method": "telea", "checkpoint": ""})],
    "detect": [(None, {"images": ["{image}"], "checks": ["npr", "copymove"], "checkpoint": ""})],
    "watermark": [(None, {"image": "{image}", "action": "verify", "length": 1, "checkpoint": ""})],
    # against the loaded family's own samples ("{ckpt}"); the eval tests an untrained tiny detector ("{detector}")
    "detector-train": [(None, {"real": "digits", "fakes": ["{ckpt}"], "real_count": 4, "fake_count": 4, "steps": 1,
                               "batch_size": 2, "width": 2, "bias_control": False, "out": "{tmp}/det",
                               "checkpoint": ""})],
    "detector-eval": [(None, {"detector": "{detector}", "real": "digits", "fakes": ["{ckpt}"], "real_count": 4,
                              "fake_count": 4, "checkpoint": ""})],
}

CASES = [(op, i) for op, variants in TINY_REQUESTS.items() for i in range(len(variants))]


def test_every_op_has_a_tiny_request():
    assert sorted(OPS) == sorted(TINY_REQUESTS), "give each op a tiny request (and the record it needs) above"
    records = set(Capabilities.__dataclass_fields__)
    assert all(need in (ANY, None) or need.split(".")[0] in records for v in TINY_REQUESTS.values() for need, _ in v)


def qualifies(caps: Capabilities, need: str) -> bool:
    """Whether the model has the record `need` names (a path into it: a non-empty value there)."""
    value = caps
    for part in need.split("."):
        value = getattr(value, part, None)
    return bool(value)


def fill(value, paths: dict):
    if isinstance(value, str):
        return value.format(**paths)
    if isinstance(value, list):
        return [fill(v, paths) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, paths) for k, v in value.items()}
    return value


@pytest.fixture
def inputs(tmp_path) -> dict:
    """A tiny greyscale image and a mask over its top half, as the canvases write them."""
    image = np.tile(np.linspace(0, 255, TINY_RES, dtype=np.uint8), (TINY_RES, 1))
    mask = np.zeros((TINY_RES, TINY_RES), np.uint8)
    mask[: TINY_RES // 2] = 255
    Image.fromarray(image).save(tmp_path / "image.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    from engine.detect.nets import DetectorNet
    from engine.detect.pipeline import ImagePipeline
    from engine.detect.trained import TrainedDetector
    detector = TrainedDetector("npr", DetectorNet("npr", 2).eval(), ImagePipeline(TINY_RES)).save(tmp_path / "det0")
    return {"image": str(tmp_path / "image.png"), "mask": str(tmp_path / "mask.png"), "tmp": str(tmp_path),
            "detector": str(detector)}


def model_methods(caps: Capabilities) -> list[str]:
    """The model's inpainting methods; for a model that has none, a name no classical fill has
    (the worker must refuse it for want of the capability, whatever the name)."""
    return list(caps.inpaint.methods) if caps.inpaint else ["the model's own"]


def written_files(result: dict) -> list[str]:
    """The image and video files a result names (one path, or a list of them)."""
    values = [v for v in result.values() if isinstance(v, (str, list))]
    paths = [p for v in values for p in (v if isinstance(v, list) else [v]) if isinstance(p, str)]
    return [p for p in paths if Path(p).suffix.lower() in (".png", ".gif", ".mp4")]


@pytest.mark.parametrize("name", FAMILIES.names())
@pytest.mark.parametrize("op, variant", CASES, ids=[f"{op}-{i}" for op, i in CASES])
def test_op_answers_a_result_where_the_model_qualifies_and_says_why_not_elsewhere(op, variant, name, tiny_runs,
                                                                                 inputs, tmp_path):
    need, fields = TINY_REQUESTS[op][variant]
    events: list[dict] = []
    worker = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    worker.handle({"id": 1, "op": "load", "checkpoint": str(tiny_runs[name].checkpoint)})
    ready = next(e for e in events if e["event"] == "ready")
    caps = Capabilities.from_dict(ready["capabilities"])
    where = f"{op} on a {name} model"
    methods = model_methods(caps) if "{method}" in str(fields) else [""]
    for rid, method in enumerate(methods, start=2):
        worker.handle({"id": rid, "op": op, **fill(fields, {**inputs, "method": method,
                                                             "ckpt": str(tiny_runs[name].checkpoint)})})
        answers = [e for e in events if e.get("id") == rid]
        final = answers[-1]
        if need is None or need == ANY or qualifies(caps, need):
            assert final["event"] == "result", f"{where} ({method or 'its request'}): {final}"
            for path in written_files(final):
                assert Path(path).is_file(), f"{where}: {path} was not written"
            progress = [(e["done"], e["total"]) for e in answers if e["event"] == "progress"]
            assert all(0 <= d <= t for d, t in progress), f"{where}: progress past its total: {progress}"
        else:
            assert final["event"] == "error", f"{where}: a model without {need!r} answered {final}"
            assert "internal error" not in final["message"], f"{where}: {final['message']}"
            assert name in final["message"], f"{where}: the refusal should name the model: {final['message']}"
