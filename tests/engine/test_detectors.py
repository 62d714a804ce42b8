"""Trained detectors (NPR CNN, Wang et al.'s CNN): one pipeline for real and fake, leave-one-
generator-out that never trains on the held-out generator, a tiny NPR detector that separates
planted nearest-upsampling from smooth images, metrics equal to scikit-learn's, detector files,
and the `detector` command end to end on two tiny families."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from engine.cli.main import build_parser, main
from engine.detect import training_data
from engine.detect.context import DetectContext
from engine.detect.evaluation import binary_metrics, evaluate, leave_one_out, split_prepared
from engine.detect.pipeline import ImagePipeline, biased_real, encode_round_trip
from engine.detect.run import run_check
from engine.detect.trained import TrainedDetector, TrainingSet, TrainSettings
from engine.detect.training_data import Source, prepare

FAST = TrainSettings(steps=40, batch_size=16, width=8, lr=3e-3)


def smooth(n: int, side: int, seed: int) -> np.ndarray:
    """Blurred noise stretched to 0..255: 'real' images with no 2x2 structure."""
    x = np.random.default_rng(seed).random((n, side, side, 3)) * 255
    x = np.stack([gaussian_filter(im, (1.5, 1.5, 0)) for im in x])
    lo, hi = x.min((1, 2, 3), keepdims=True), x.max((1, 2, 3), keepdims=True)
    return ((x - lo) / (hi - lo + 1e-9) * 255).round().astype(np.uint8)


def upsampled(n: int, side: int, seed: int) -> np.ndarray:
    """'Generated' images: smooth ones at half size, nearest-upsampled 2x (NPR's artefact)."""
    return np.repeat(np.repeat(smooth(n, side // 2, seed), 2, axis=1), 2, axis=2)


@pytest.fixture(scope="module")
def synthetic():
    pipe = ImagePipeline(16)
    real, fake = pipe.apply(smooth(64, 16, 1)), pipe.apply(upsampled(64, 16, 2))
    return pipe, real, fake


@pytest.fixture(scope="module")
def npr_detector(synthetic):
    pipe, real, fake = synthetic
    return TrainedDetector.fit("npr", TrainingSet(real[:48], {"upsampler": fake[:48]}), pipe, FAST)


# ---- the pipeline ----------------------------------------------------------------------------
def test_real_and_fake_go_through_the_same_pipeline(monkeypatch):
    calls = []
    original = ImagePipeline.apply

    def spy(self, images):
        calls.append((id(self), self, len(images)))
        return original(self, images)
    monkeypatch.setattr(ImagePipeline, "apply", spy)
    pipe = ImagePipeline(8, "grayscale", "jpeg", 80)
    real = Source("real", np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8), {"kind": "real"})
    fakes = [Source("gan/a", np.random.default_rng(1).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8), {"kind": "fake"}),
             Source("vae/b", np.random.default_rng(2).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8), {"kind": "fake"})]
    prepared = prepare(pipe, real, fakes)
    assert [c[2] for c in calls] == [5, 4, 3] and len({c[0] for c in calls}) == 1 and calls[0][1] is pipe
    outs = [prepared.real, *prepared.fakes.values()]
    assert all(o.shape[1:] == (8, 8, 3) and o.dtype == np.uint8 for o in outs)
    assert all((o[..., 0] == o[..., 1]).all() and (o[..., 1] == o[..., 2]).all() for o in outs)   # one colour mode
    # every image was JPEG 80 round-tripped last: what the pipeline gives equals decode(encode(its input))
    x = fakes[0].images[0]
    from PIL import Image
    grey = np.asarray(Image.fromarray(x[..., 0]).convert("RGB"))
    assert (prepared.fakes["gan/a"][0] == encode_round_trip(grey, "jpeg", 80)).all()
    report = prepared.report()
    assert report["same_pipeline_for_real_and_fake"] and "JPEG quality 80" in report["statement"]
    assert report["pipeline"] == {"size": 8, "color": "grayscale", "format": "jpeg", "jpeg_quality": 80,
                                  "steps": pipe.steps()}


def test_format_bias_control_compresses_only_the_real_images():
    img = smooth(2, 16, 3)
    assert not (biased_real(img) == img).all()
    with pytest.raises(ValueError, match="pipeline format 'gif'"):
        ImagePipeline(16, format="gif")


# ---- leave one generator out -------------------------------------------------------------------
def test_leave_one_out_never_trains_on_the_held_out_generator(synthetic):
    pipe, real, fake = synthetic
    fakes = {"a": fake[:20], "b": fake[20:40], "c": fake[40:60]}
    data = split_prepared(real, fakes, [], 0.25, seed=0)
    seen = []

    def spy_fit(arch, train, pipeline, settings, progress=None, cancel=None):
        seen.append(train)
        return TrainedDetector.fit(arch, train, pipeline, TrainSettings(steps=2, batch_size=4, width=4))
    folds = leave_one_out("npr", data, pipe, FAST, fit=spy_fit)
    assert [f.held_out for f in folds] == ["a", "b", "c"]
    for fold, train in zip(folds, seen):
        assert fold.held_out not in train.fakes and fold.trained_on == sorted(train.fakes)
        held = {im.tobytes() for im in fakes[fold.held_out]}
        trained_images = [im.tobytes() for imgs in train.fakes.values() for im in imgs]
        assert trained_images and not held & set(trained_images)
        assert set(fold.results) == {"a", "b", "c"}
        assert [k for k, m in fold.results.items() if not m["seen_in_training"]] == [fold.held_out]
    # the test split never overlaps the training split
    for name in fakes:
        train_b = {im.tobytes() for im in data.train.fakes[name]}
        assert not train_b & {im.tobytes() for im in data.test_fakes[name]}


# ---- a tiny NPR detector on a synthetic task ---------------------------------------------------
def test_tiny_npr_detector_separates_planted_upsampling(synthetic, npr_detector):
    pipe, real, fake = synthetic
    res = evaluate(npr_detector, real[48:], {"upsampler": fake[48:]})["upsampler"]
    assert res["auc"] > 0.9 and res["seen_in_training"]
    p, cam = npr_detector.look(fake[50])
    assert cam.shape == (16, 16) and np.isfinite(cam).all() and 0 <= p <= 1


def test_cnn_detector_trains_with_blur_and_jpeg_augmentation(synthetic):
    pipe, real, fake = synthetic
    det = TrainedDetector.fit("cnn", TrainingSet(real[:16], {"g": fake[:16]}), pipe,
                              TrainSettings(steps=3, batch_size=8, width=4))
    aug = det.meta["training"]["augmentation"]
    assert aug["gaussian_blur"] == {"p": 0.5, "sigma_uniform": [0.0, 3.0]}
    assert aug["jpeg"] == {"p": 0.5, "quality_uniform": [30, 100]} and aug["library"] == "opencv"


# ---- metrics ----------------------------------------------------------------------------------
def test_metrics_equal_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score   # seconds to import: not at collection
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.45, 0.6, 0.55, 0.2])
    m = binary_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["confusion"] == {"real_called_real": 4, "real_called_fake": 1, "fake_called_real": 1, "fake_called_fake": 4}
    assert m["roc"]["fpr"][0] == 0 and m["roc"]["tpr"][-1] == 1
    with pytest.raises(ValueError, match="both real and generated"):
        binary_metrics([1, 1], [0.2, 0.3])


# ---- files and the checks ---------------------------------------------------------------------
def test_detector_file_round_trips_and_serves_the_check(tmp_path, synthetic, npr_detector):
    pipe, real, fake = synthetic
    path = npr_detector.save(tmp_path / "det")
    assert path.name == "det.safetensors" and not list(tmp_path.glob("*.pkl"))
    back = TrainedDetector.load(tmp_path / "det.json")
    assert back.arch == "npr" and back.pipeline == pipe and back.trained_on == ["upsampler"]
    assert np.allclose(back.probabilities(fake[48:]), npr_detector.probabilities(fake[48:]), atol=1e-6)
    res = run_check("npr-cnn", fake[60], DetectContext(detector=tmp_path / "det"))
    assert 0 <= res.score <= 1 and res.map.shape == (16, 16) and "NPR detector trained against upsampler" in res.explanation
    with pytest.raises(ValueError, match="needs a cnn detector"):
        run_check("cnn", fake[60], DetectContext(detector=tmp_path / "det"))


def test_corrupt_detector_file_is_one_line(tmp_path, npr_detector):
    npr_detector.save(tmp_path / "det")
    weights = tmp_path / "det.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError) as e:
        TrainedDetector.load(tmp_path / "det")
    assert str(e.value).startswith(f"{weights}: not a readable safetensors file") and "\n" not in str(e.value)
    (tmp_path / "det.json").write_text("{not json")
    with pytest.raises(ValueError, match="det.json: not a readable detector description"):
        TrainedDetector.load(tmp_path / "det")
    (tmp_path / "other.json").write_text(json.dumps({"kind": "genlab-spectrum-detector"}))
    with pytest.raises(ValueError, match="not a GenLab trained detector"):
        TrainedDetector.load(tmp_path / "other")


# ---- the command line -------------------------------------------------------------------------
def test_cli_parses():
    args = build_parser(["detector"]).parse_args(
        ["detector", "train", "--real", "digits", "--fake", "a.safetensors", "b.safetensors", "--holdout", "c",
         "--arch", "cnn", "--out", "det", "--format", "jpeg", "--jpeg-quality", "90", "--no-augment"])
    assert args.fake == ["a.safetensors", "b.safetensors"] and args.holdout == ["c"] and args.augment is False
    args = build_parser(["detector"]).parse_args(["detector", "logo", "--real", "x", "--fake", "a", "b", "--out", "o"])
    assert args.action == "logo" and args.arch == "npr" and args.steps == 300
    args = build_parser(["detector"]).parse_args(["detector", "eval", "det", "--real", "x", "--fake", "a"])
    assert args.detector == "det" and args.real_start is None


def test_fake_samples_are_cached_per_checkpoint(tiny_runs, monkeypatch):
    ckpt = tiny_runs["gan"].checkpoint
    first = training_data.fake_source(ckpt, 3, seed=5)
    assert not first.origin["cached"] and first.images.dtype == np.uint8 and len(first.images) == 3
    monkeypatch.setattr(training_data, "_sample", lambda *a, **k: pytest.fail("sampled again instead of the cache"))
    again = training_data.fake_source(ckpt, 3, seed=5)
    assert again.origin["cached"] and (again.images == first.images).all()
    assert again.origin["hash"] == training_data.checkpoint_hash(ckpt)


def test_detector_train_eval_logo_end_to_end(tmp_path, tiny_runs, capsys):
    gan, vae = str(tiny_runs["gan"].checkpoint), str(tiny_runs["vae"].checkpoint)
    out = tmp_path / "det"
    common = ["--real", "digits", "--real-count", "12", "--fake-count", "8", "--steps", "3", "--batch-size", "4",
              "--width", "4"]
    assert main(["detector", "train", *common, "--fake", gan, "--holdout", vae, "--arch", "npr", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "same pipeline" in captured.out and "format-bias control" in captured.out
    assert "training: 3/3" in captured.err
    meta = json.loads((tmp_path / "det.json").read_text())
    assert meta["kind"] == "genlab-trained-detector" and meta["arch"] == "npr"
    assert meta["pipeline"]["size"] == 8 and meta["pipeline"]["color"] == "grayscale"
    assert meta["data"]["same_pipeline_for_real_and_fake"] and meta["training"]["trained_on"].keys() == {
        n for n in meta["report"]["test"] if n.startswith("gan/")}
    test = meta["report"]["test"]
    assert {n.split("/")[0] for n in test} == {"gan", "vae"}
    assert [m["seen_in_training"] for n, m in sorted(test.items())] == [True, False]
    assert set(meta["report"]["format_bias_control"]["biased_test"]) == set(test)
    assert main(["detector", "eval", str(out), "--real", "digits", "--real-count", "6", "--fake-count", "4",
                 "--fake", vae]) == 0
    meta = json.loads((tmp_path / "det.json").read_text())
    assert meta["evaluations"][0]["real_indices"] == [12, 18]    # after the training's real images
    assert "evaluation of" in capsys.readouterr().out
    from PIL import Image
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "grey.png")
    assert main(["detect", str(tmp_path / "grey.png"), "--detector", str(out), "--checks", "all", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "npr-cnn" in [x["check"] for x in lines] and "cnn" not in [x["check"] for x in lines]
    assert main(["detector", "logo", *common, "--fake", gan, vae, "--out", str(tmp_path / "logo")]) == 0
    logo = json.loads((tmp_path / "logo" / "logo.json").read_text())
    assert len(logo["folds"]) == 2 and all(f["held_out"] not in f["trained_on"] for f in logo["folds"])
    assert len(logo["matrix"]["values"]) == 2 and (tmp_path / "logo" / "logo.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "logo" / "logo.csv").read_text().startswith("held_out,trained_on,test_generator")


def test_detector_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{")
    assert main(["detector", "eval", str(tmp_path / "bad"), "--real", "digits", "--fake", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json: not a readable detector description" in err
    assert main(["detect", str(tmp_path), "--checks", "cnn"]) == 2
    assert "the cnn check needs --detector FILE" in capsys.readouterr().err


def test_cancel_stops_training_and_ctrl_c_writes_nothing(tmp_path, synthetic, monkeypatch, capsys):
    from engine.family.progress import Cancelled
    pipe, real, fake = synthetic
    steps = []
    with pytest.raises(Cancelled):
        TrainedDetector.fit("npr", TrainingSet(real, {"g": fake}), pipe, TrainSettings(steps=50, batch_size=4, width=4),
                            progress=lambda d, t: steps.append(d), cancel=lambda: len(steps) >= 2)
    assert steps == [1, 2]

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    from engine.detect import workflow
    monkeypatch.setattr(workflow, "train", interrupted)
    assert main(["detector", "train", "--real", "digits", "--fake", "x", "--out", str(tmp_path / "det")]) == 130
    assert "cancelled; nothing was written" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_a_generator_is_named_by_its_run_and_step_not_its_file_alone():
    from engine.detect.training_data import run_and_step
    assert run_and_step("/runs/20261207-ddpm-digits/checkpoints/step_000400.safetensors") == \
        "20261207-ddpm-digits/step_000400"
    assert run_and_step("/elsewhere/model.json") == "elsewhere/model"
