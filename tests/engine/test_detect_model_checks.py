"""The detection lab's model-based checks on the session's tiny checkpoints (tests/conftest.py):
`zeroshot` (coding cost against the expected entropy of a PixelCNN) and `aeroblade` (reconstruction
error through a VAE). What a missing or wrong checkpoint says, and finite results on any size.

A two-step PixelCNN cannot tell held-out real digits from its own samples (it is so over-dispersed
that the flat digits cost it less than it expects: z about -4, measured), and training one that
can takes minutes on this machine, so the ranking test uses what the score is built on: the model's
own samples at temperature 1 sit near z = 0, images made of each sub-pixel's most probable level
(the mode-seeking limit of generation) are "too easy", far below, and uniform noise (another
distribution) far above. Temperature 0.1 samples would not do: an untrained logistic mixture piles
its tails onto levels 0 and 255, so its components' centres are not its most probable levels.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.cli.main import main
from engine.detect.context import DetectContext
from engine.detect.run import Failure, detect_files, run_check
from engine.detect.zero_shot import coding_costs


def as_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) in [-1, 1] -> uint8 H x W x 3 images (grey repeated), as a file would give them."""
    a = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in a]


def samples(fam, n: int) -> list[np.ndarray]:
    """The model's own samples at temperature 1."""
    from engine.family.grid import sample_images
    with torch.no_grad():
        imgs, _ = sample_images(fam, n, seed=11, use_ema=True, options=fam.sample_options({}))
    return as_uint8(imgs)


def greedy(fam, label: int) -> np.ndarray:
    """The image drawn by taking every sub-pixel's most probable level given those before it (the
    mode-seeking limit of generation: the "too easy" image), under class `label`."""
    from engine.detect.trained import torch_threads
    x = torch.full((1, fam.channels, fam.resolution, fam.resolution), -1.0)
    with torch_threads(1):   # 64 tiny passes: a second thread only slows them
        _greedy_fill(fam, x, label)
    return as_uint8(x)[0]


def _greedy_fill(fam, x: torch.Tensor, label: int) -> None:
    for i in range(fam.resolution):
        for j in range(fam.resolution):
            for c in range(fam.channels):
                level = fam.level_log_probs(x, [label])[0, c, i, j].argmax()
                x[0, c, i, j] = float(level) / 127.5 - 1


def noise_images(n: int, side: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def pixelcnn(tiny_runs):
    ctx = DetectContext(likelihood_model=tiny_runs["pixelcnn"].checkpoint)
    return ctx, ctx.likelihood_family()


@pytest.fixture(scope="module")
def vae(tiny_runs):
    ctx = DetectContext(autoencoder=tiny_runs["vae"].checkpoint)
    return ctx, ctx.autoencoder_family()


# ---- zeroshot ----------------------------------------------------------------------------------
def test_zeroshot_ranks_too_easy_images_below_the_models_own_samples_and_noise_above(pixelcnn):
    ctx, fam = pixelcnn
    z = {name: np.array([run_check("zeroshot", im, ctx).details["z"] for im in images])
         for name, images in [("own", samples(fam, 8)), ("greedy", [greedy(fam, c) for c in range(2)]),
                              ("noise", noise_images(4))]}
    # calibration: z is about N(0, 1) on the model's own samples, so their mean is within 3/sqrt(8)
    assert abs(z["own"].mean()) < 3 / math.sqrt(8)
    assert z["greedy"].max() < z["own"].min() and z["greedy"].max() < -2   # "too easy"
    assert z["noise"].min() > z["own"].max() and z["noise"].min() > 2      # harder than expected
    res = run_check("zeroshot", greedy(fam, 0), ctx)
    assert "too easy" in res.explanation and res.explanation.endswith(".")
    assert res.score == pytest.approx(abs(res.details["z"])) and res.score > 2   # two-sided: far either way
    assert res.map.shape == (fam.resolution, fam.resolution) and np.isfinite(res.map).all()


def test_zeroshot_coding_cost_is_the_class_mixtures_exact_likelihood(pixelcnn):
    _, fam = pixelcnn
    assert fam.num_classes > 1   # the tiny digits model is conditional: the mixture over classes is exercised
    x = torch.from_numpy(noise_images(1)[0][..., :1]).permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1
    s, h, v = coding_costs(fam, x)
    levels = ((x + 1) * 127.5).round().long()
    per_class = fam.level_log_probs(x.expand(fam.num_classes, -1, -1, -1), list(range(fam.num_classes)))
    log_px_c = per_class.gather(-1, levels.expand(fam.num_classes, -1, -1, -1).unsqueeze(-1)).sum((1, 2, 3, 4))
    mixture_bits = -(torch.logsumexp(log_px_c.double(), 0) - math.log(fam.num_classes)) / math.log(2)
    assert s.sum() == pytest.approx(float(mixture_bits), rel=1e-6)
    assert (h > 0).all() and (h <= 8 + 1e-9).all() and (v >= 0).all()


# ---- aeroblade ---------------------------------------------------------------------------------
def test_aeroblade_reconstructions_come_back_closer_than_noise(vae):
    ctx, fam = vae
    real = torch.from_numpy(np.stack(noise_images(6))[..., :fam.channels]).permute(0, 3, 1, 2).float() / 127.5 - 1
    own = as_uint8(fam.reconstruct(fam.sample(6, seed=2)))   # the autoencoder's own output, fed back
    own_err = [run_check("aeroblade", im, ctx).score for im in own]
    noise_err = [run_check("aeroblade", im, ctx).score for im in as_uint8(real)]
    assert max(own_err) < min(noise_err)
    res = run_check("aeroblade", own[0], ctx)
    assert res.map.shape == (fam.resolution, fam.resolution) and np.isfinite(res.map).all()
    assert 0 <= res.score <= 1 and "lower is more suspicious" in res.explanation


# ---- what a missing or wrong checkpoint says ---------------------------------------------------
@pytest.mark.parametrize("key, flag", [("zeroshot", "--likelihood-model"), ("aeroblade", "--autoencoder")])
def test_a_missing_checkpoint_is_one_line_naming_the_flag(tmp_path, key, flag, capsys):
    with pytest.raises(ValueError, match=flag) as e:
        run_check(key, noise_images(1)[0], DetectContext())
    assert "\n" not in str(e.value)
    img = tmp_path / "a.png"
    from PIL import Image
    Image.fromarray(noise_images(1, 16)[0]).save(img)
    (_, failure), = list(detect_files([img], [key], DetectContext()))
    assert isinstance(failure, Failure) and flag in failure.line()
    assert main(["detect", str(img), "--checks", key]) == 2   # the CLI refuses before reading any image
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]
    assert main(["detect", str(img), "--checks", "all", "--json"]) == 0   # all that can run: not these


def test_a_wrong_family_or_missing_file_is_one_line(tiny_runs, tmp_path):
    pixel, vae_ckpt = tiny_runs["pixelcnn"].checkpoint, tiny_runs["vae"].checkpoint
    with pytest.raises(ValueError, match=r"a vae checkpoint has no per-pixel level distributions; the zeroshot "
                                         r"check needs a checkpoint of pixelcnn") as e:
        DetectContext(likelihood_model=vae_ckpt).likelihood_family()
    assert str(vae_ckpt) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"a pixelcnn checkpoint has no reconstruction; the aeroblade check needs "
                                         r"a checkpoint of .*vae") as e:
        DetectContext(autoencoder=pixel).autoencoder_family()
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="checkpoint not found"):
        DetectContext(autoencoder=tmp_path / "nothing.safetensors").autoencoder_family()


def test_finite_results_on_any_size_and_the_model_is_loaded_once(pixelcnn, vae):
    rng = np.random.default_rng(1)
    for ctx, key in [(pixelcnn[0], "zeroshot"), (vae[0], "aeroblade")]:
        for shape in [(5, 13, 3), (40, 7, 3), (8, 8, 3), (1, 1, 3)]:
            res = run_check(key, rng.integers(0, 256, shape, dtype=np.uint8), ctx)
            assert math.isfinite(res.score) and np.isfinite(res.map).all(), (key, shape)
            assert res.to_json()["score"] is not None
    assert pixelcnn[0].likelihood_family() is pixelcnn[1] and vae[0].autoencoder_family() is vae[1]


def test_detect_command_runs_both_through_their_flags_and_refuses_a_wrong_family(tiny_runs, tmp_path, capsys):
    import json

    from PIL import Image
    img = tmp_path / "a.png"
    Image.fromarray(noise_images(1, 20)[0]).save(img)
    pixel, vae_ckpt = str(tiny_runs["pixelcnn"].checkpoint), str(tiny_runs["vae"].checkpoint)
    assert main(["detect", str(img), "--checks", "zeroshot,aeroblade", "--likelihood-model", pixel,
                 "--autoencoder", vae_ckpt, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["check"] for d in lines] == ["zeroshot", "aeroblade"]
    assert [d["direction"] for d in lines] == ["higher", "lower"]   # |z| either way; reconstruction error
    assert all(d["score"] is not None and d["map"]["shape"] == [8, 8] for d in lines)
    assert main(["detect", str(img), "--checks", "zeroshot", "--likelihood-model", vae_ckpt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a vae checkpoint has no per-pixel level distributions" in err[0]


def _reconstructor_families() -> list[str]:
    from engine.detect.models import families_with
    from engine.family.interfaces import Reconstructor
    return families_with(Reconstructor)


@pytest.mark.parametrize("family", _reconstructor_families())
def test_aeroblade_looks_through_every_family_that_reconstructs(family, tiny_runs):
    ctx = DetectContext(autoencoder=tiny_runs[family].checkpoint)
    res = run_check("aeroblade", noise_images(1, 12)[0], ctx)
    assert 0 <= res.score <= 1 and np.isfinite(res.map).all() and res.details["model"] == str(ctx.autoencoder)
