"""Generation parameters in PNG files: written and read back, None for a PNG from elsewhere, a clear
error for a broken one; the sample operation's per-image PNGs carry their own seed and class, and
each image drawn again alone from its seed is the same image (whatever the batch size)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.ops.base import ModelSession, never, no_progress, parse_request
from engine.ops.sample import SampleRequest, run
from engine.core.pnginfo import parameters_line, read_png_info, write_png
from engine.family.progress import Cancelled
from engine.training.loop import train


def test_parameters_round_trip_and_a_png_from_elsewhere_has_none(tmp_path):
    meta = {"kind": "sample", "checkpoint": "/runs/a/checkpoints/step_000010.safetensors", "step": 10,
            "family": "ddpm", "seed": 7, "cls": 3, "options": {"steps": 20, "sampler": "ddim", "eta": 0.0}}
    write_png(tmp_path / "a.png", np.full((8, 8, 3), 0.5, np.float32), meta, "Seed: 7")
    back = read_png_info(tmp_path / "a.png")
    assert {k: v for k, v in back.items() if k != "genlab_version"} == meta and back["genlab_version"]
    with Image.open(tmp_path / "a.png") as im:
        assert im.text["parameters"] == "Seed: 7" and im.size == (8, 8) and np.asarray(im)[0, 0, 0] == 128
    write_png(tmp_path / "gray.png", np.zeros((4, 4, 1), np.uint8))
    assert Image.open(tmp_path / "gray.png").mode == "L"
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert read_png_info(tmp_path / "plain.png") is None and read_png_info(tmp_path / "gray.png") is None
    line = parameters_line({"Seed": 7, "Class": None, "steps": 20}, meta)
    assert line == "Seed: 7, steps: 20, Checkpoint: step_000010.safetensors (step 10, ddpm)"


def test_a_broken_or_missing_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match="broken.png: not a readable PNG"):
        read_png_info(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="gone.png: no such file"):
        read_png_info(tmp_path / "gone.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "photo.jpg")
    with pytest.raises(ValueError, match="photo.jpg: not a PNG file"):
        read_png_info(tmp_path / "photo.jpg")
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("genlab", "{not json")
    Image.new("RGB", (4, 4)).save(tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(ValueError, match="bad.png: its GenLab parameters are not valid JSON"):
        read_png_info(tmp_path / "bad.png")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A tiny conditional DDPM trained two steps on 8x8 digits."""
    from tests.conftest import tiny_config
    res = train(tiny_config(training={"steps": 2, "checkpoint_every": 0}), tmp_path_factory.mktemp("png") / "run",
                emit=lambda e: None)
    assert res.state == "finished", res.message
    return ModelSession.load(res.last_checkpoint, "cpu")


def _sample(session, out, **fields):
    return run(session, parse_request(SampleRequest, {"out": str(out), **fields}, "sample"), no_progress, never)


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_every_sampled_image_carries_its_own_seed_and_is_made_again_from_it_alone(session, tmp_path):
    # the stochastic DDPM sampler: its per-step noise must follow the image's seed too
    options = {"sampler": "ddpm", "steps": 4, "guidance_scale": 1.5}
    res = _sample(session, tmp_path / "grid.png", n=5, seed=11, options=options)
    assert res.seeds == [11, 12, 13, 14, 15] and res.classes == [0, 1, 2, 3, 4] and len(res.images) == 5
    grid = read_png_info(res.path)
    assert grid["kind"] == "sample" and grid["n"] == 5 and grid["seed"] == 11 and grid["cls"] is None
    assert grid["family"] == "ddpm" and grid["step"] == 2 and grid["checkpoint"] == str(session.checkpoint)
    assert grid["options"]["sampler"] == "ddpm" and grid["options"]["steps"] == 4 and grid["ema"] is True
    assert Image.open(res.path).size[0] > 8
    for i, path in enumerate(res.images):
        meta = read_png_info(path)
        assert (meta["seed"], meta["cls"], meta["n_index"], meta["n"]) == (11 + i, i, i, 1)
        assert meta["options"] == grid["options"] and meta["batch_seed"] == 11 and meta["resolution"] == 8
        assert Image.open(path).size == (8, 8) and f"Seed: {11 + i}" in Image.open(path).text["parameters"]
    # image 3 alone, from its own parameters: the same pixels
    meta = read_png_info(res.images[3])
    again = _sample(session, tmp_path / "again.png", n=meta["n"], seed=meta["seed"], cls=meta["cls"],
                    options=meta["options"])
    assert np.array_equal(_pixels(again.images[0]), _pixels(res.images[3]))
    # and a batch of another size starts with the same images
    bigger = _sample(session, tmp_path / "bigger.png", n=7, seed=11, options=options)
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(bigger.images, res.images))


def test_sampling_stops_when_cancelled_and_reports_progress_over_the_whole_batch(session, tmp_path):
    seen = []

    def progress(stage, done, total):
        seen.append((stage, done, total))

    req = parse_request(SampleRequest, {"out": str(tmp_path / "g.png"), "n": 3, "options": {"steps": 4}}, "sample")
    run(session, req, progress, never)
    # the batch is drawn at once: its 4 denoising steps are the whole work
    assert seen[-1] == ("sampling", 4, 4) and all(t == 4 for _, _, t in seen) and len(seen) == 4
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)   # never goes backwards
    with pytest.raises(Cancelled):
        run(session, req, no_progress, lambda: len(seen) > 0)
