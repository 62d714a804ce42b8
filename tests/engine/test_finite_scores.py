"""Finite on any input (issue 20): a likelihood or a score computed on images unlike the training
data (uniform noise, all black, all white, another data set's images) is a finite number or one
line saying why: never a traceback, never a NaN written into a table.

A conformance suite over every family with a likelihood (the shared tiny checkpoints of
tests/conftest.py: a new Likelihood family is covered by registering), through the family, the
evaluate op in the worker and `genlab-engine eval --metrics bpd --real DIR`; then the depths where
the math can overflow, each pushed to its extreme (a flow prior's vanishing std, a decoder's mean
far outside [-1, 1], an importance-weighted bound of vanishing weights), and the sample measures
(FD, KID, PR, IS) on odd feature sets."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from engine.core import protocol
from engine.core.config import DataConfig
from engine.core.errors import NotFinite
from engine.core.families import FAMILIES
from engine.data import build_dataset
from engine.family.interfaces import Likelihood
from engine.metrics import stats
from engine.nn.likelihood import (LOG_SCALE_MAX, LOG_SCALE_MIN, discretized_gaussian_log_prob,
                                  discretized_logistic_log_prob, log_mean_exp)
from engine.training import checkpoint as ck
from engine.worker import Worker
from tests.conftest import TINY_RES

LIKELIHOOD_FAMILIES = [name for name, spec in FAMILIES.items() if issubclass(spec.family_class(), Likelihood)]
KINDS = ("noise", "black", "white", "shapes", "textures")


def odd_images(kind: str, channels: int, n: int = 6) -> torch.Tensor:
    """n uint8 images (N, C, 8, 8) unlike 8x8 digits."""
    if kind == "noise":
        return torch.randint(0, 256, (n, channels, TINY_RES, TINY_RES), generator=torch.Generator().manual_seed(0),
                             dtype=torch.uint8)
    if kind in ("black", "white"):
        return torch.full((n, channels, TINY_RES, TINY_RES), 0 if kind == "black" else 255, dtype=torch.uint8)
    data = build_dataset(DataConfig(dataset=kind, resolution=TINY_RES, count=n,
                                    color="grayscale" if channels == 1 else "rgb"))
    return data.images[:n]


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1)


def write_folder(images: torch.Tensor, folder) -> str:
    """The images as PNG files, at twice their size and in colour (the eval op resizes and converts)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        arr = img.expand(3, -1, -1).permute(1, 2, 0).numpy()
        Image.fromarray(arr).resize((2 * TINY_RES, 2 * TINY_RES), Image.NEAREST).save(folder / f"{i}.png")
    return str(folder)


@pytest.fixture(scope="module", params=LIKELIHOOD_FAMILIES)
def family(request, tiny_runs):
    run = tiny_runs[request.param]
    fam, _ = ck.family_from_checkpoint(run.checkpoint, "cpu")
    return fam, run.checkpoint


# ---- every Likelihood family, every odd input ------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_bits_per_dim_is_finite_on_images_unlike_the_training_data(family, kind):
    fam, _ = family
    images = odd_images(kind, fam.channels)
    bpd = fam.bits_per_dim(as_float(images), torch.zeros(len(images), dtype=torch.long))
    assert isinstance(bpd, float) and math.isfinite(bpd) and bpd > 0, (fam.name, kind, bpd)


def test_the_evaluate_op_and_the_cli_give_finite_bits_per_dim_on_any_folder(family, tmp_path, capsys):
    from engine.cli.main import main
    fam, checkpoint = family
    events = []
    w = Worker(tmp_path / "cache", device="cpu", emit=events.append)
    for i, kind in enumerate(KINDS):
        folder = write_folder(odd_images(kind, fam.channels), tmp_path / kind)
        w.handle({"id": i, "op": "evaluate", "checkpoint": str(checkpoint), "metrics": "bpd", "n": 10, "real": folder})
        ev = events[-1]
        assert ev["event"] == "result", (fam.name, kind, ev)
        assert math.isfinite(ev["scores"]["bits_per_dim"]) and ev["scores"]["bpd_images"] == 6
        protocol.encode(ev)   # strict JSON: a NaN or an infinity would not encode
    # the command line, on the noise folder
    assert main(["eval", "--checkpoint", str(checkpoint), "--metrics", "bpd", "--real", str(tmp_path / "noise"),
                 "--n", "10", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["event"] == "result" and math.isfinite(result["bits_per_dim"]), result


# ---- the depths where the math can overflow --------------------------------------------------------
def test_a_flow_whose_prior_predicts_a_vanishing_std_still_gives_a_finite_number(tiny_runs):
    """A split prior that predicts log std = -60 (a trained Glow does reach -45 on noise): the
    squared standardised distance is ~1e52, past float32's range (-inf before issue 20), well
    within float64's, where the flow's evaluation sums it."""
    fam, _ = ck.family_from_checkpoint(tiny_runs["glow"].checkpoint, "cpu")
    for nets in (fam.nets(True), fam.nets(False)):
        prior = nets["flow"].priors[0].conv                 # the first split's prior
        half = prior.conv.bias.shape[0] // 2
        with torch.no_grad():
            prior.conv.weight.zero_()
            prior.logs.zero_()
            prior.conv.bias[:half] = 0.0                    # mean
            prior.conv.bias[half:] = -60.0                  # log std
    images = as_float(odd_images("noise", fam.channels))
    zs, means, log_stds, _ = fam.nets(True)["flow"](images)
    assert math.isinf(float(((zs[0] - means[0]) * torch.exp(-log_stds[0])).pow(2).sum()))  # float32 overflows
    bpd = fam.bits_per_dim(images, torch.zeros(len(images), dtype=torch.long))
    assert math.isfinite(bpd) and bpd > 1e40


@pytest.mark.parametrize("binned", [discretized_gaussian_log_prob, discretized_logistic_log_prob])
@pytest.mark.parametrize("mean", [5.0, 1e20, -1e30, math.inf])
@pytest.mark.parametrize("log_scale", [LOG_SCALE_MIN, LOG_SCALE_MAX])
def test_a_binned_likelihood_of_a_mean_far_outside_the_range_is_finite(binned, mean, log_scale):
    """Every level's log-probability stays finite (a Gaussian's mean of 1e20 gave -inf), the edge
    level next to the mean keeps all the mass, and the summed log-probability of a large image too."""
    x = torch.linspace(-1, 1, 256)                          # the 256 levels
    lp = binned(x, torch.full_like(x, mean), torch.full_like(x, log_scale))
    assert torch.isfinite(lp).all() and (lp <= 0).all(), lp
    if abs(mean) > 2 and log_scale == LOG_SCALE_MIN:
        edge = lp[-1] if mean > 0 else lp[0]
        assert edge.item() == pytest.approx(0.0, abs=1e-6)
    big = x.repeat(4096)                                     # a 1024x1024 RGB image's worth of sub-pixels
    assert math.isfinite(float(binned(big, torch.full_like(big, mean), torch.full_like(big, log_scale)).sum()))


def test_a_decoder_whose_means_run_off_to_1e20_gives_a_finite_bound(tiny_runs):
    """The VAE (its Gaussian decoder) and, through the same binned likelihoods, the hierarchical
    VAE and PixelCNN's logistic mixture: a decoder output of 1e20 for every mean."""
    fam, _ = ck.family_from_checkpoint(tiny_runs["vae"].checkpoint, "cpu")
    assert type(fam.pixels).__name__ == "DiscretizedGaussian" and fam.pixels.learned_std
    for nets in (fam.nets(True), fam.nets(False)):
        last = [m for m in nets["decoder"].modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias[: fam.channels] = 1e20                 # the means
            last.bias[fam.channels:] = LOG_SCALE_MIN          # the log stds
    images = as_float(odd_images("shapes", fam.channels))
    bpd = fam.bits_per_dim(images, torch.zeros(len(images), dtype=torch.long))
    assert math.isfinite(bpd) and bpd > 1e6


def test_an_importance_weighted_bound_of_vanishing_weights_is_finite():
    w = torch.tensor([[-1e30, -3e38], [-2e30, -3e38]])        # (K, N) log weights
    out = log_mean_exp(w)
    assert torch.isfinite(out).all() and out[0].item() == pytest.approx(-1e30, rel=1e-6)


# ---- the sample measures ---------------------------------------------------------------------------
def _feats(n, d=16, seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(size=(n, d)) * scale


@pytest.mark.parametrize("fake", ["identical", "far away", "fewer than features", "huge spread"])
def test_fd_kid_pr_are_finite_on_odd_but_finite_features(fake):
    real = _feats(64)
    fakes = {"identical": np.zeros((64, 16)), "far away": _feats(64, seed=1) + 1e4,
             "fewer than features": _feats(8, seed=2), "huge spread": _feats(64, seed=3, scale=1e6)}[fake]
    mu1, s1 = stats.feature_stats(real)
    mu2, s2 = stats.feature_stats(fakes)
    assert math.isfinite(stats.frechet_distance(mu1, s1, mu2, s2))
    assert all(map(math.isfinite, stats.kernel_inception_distance(real, fakes, subsets=5, subset_size=8)))
    p, r = stats.precision_recall(real, fakes)
    assert 0 <= p <= 1 and 0 <= r <= 1


def test_features_that_are_not_finite_and_too_few_images_are_one_line_each():
    real, bad = _feats(32), _feats(32)
    bad[3, 2] = np.nan
    bad[5, 0] = np.inf
    for call in (lambda: stats.feature_stats(bad), lambda: stats.kernel_inception_distance(real, bad),
                 lambda: stats.precision_recall(real, bad), lambda: stats.inception_score(bad)):
        with pytest.raises(NotFinite, match=r"^2 of 32 images have (features|class logits) that are not finite"):
            call()
    with pytest.raises(ValueError, match=r"needs at least 2 images in each set \(got 1\)"):
        stats.feature_stats(_feats(1))


def test_generated_images_with_nan_pixels_are_refused_in_one_line_not_scored_as_nan(tmp_path):
    """A diverged model's samples: the evaluator says so instead of writing NaN scores."""
    from engine.metrics.evaluate import Evaluator
    data = build_dataset(DataConfig(dataset="digits", resolution=TINY_RES))
    ev = Evaluator(data.images[:64], data.labels[:64], data.num_classes, metrics=["fid", "kid", "pr"],
                   domain_steps=10, cache=tmp_path)
    fake = as_float(data.images[64:96]).clone()
    assert all(map(math.isfinite, ev.score(fake).values()))
    fake[[1, 7]] = float("nan")
    with pytest.raises(NotFinite) as e:
        ev.score(fake)
    assert str(e.value) == ("2 of the 32 generated images hold NaN or infinite pixel values (the model's output is "
                            "not finite): they cannot be scored")


def test_a_training_run_leaves_a_score_that_is_not_finite_out_of_its_row_and_goes_on(tmp_path, monkeypatch):
    """During training a score that comes out as NaN is a warning and a row without it: the run
    goes on, and metrics.jsonl (the runs table's source) never holds a NaN."""
    from engine.families.glow.model import FlowFamily
    from engine.training.loop import train
    from tests.conftest import tiny_family_config
    monkeypatch.setattr(FlowFamily, "bits_per_dim", lambda self, images, labels: float("nan"))
    cfg = tiny_family_config("glow").replace(metrics={"every": 1, "metrics": ["bpd"]})
    events = []
    res = train(cfg, tmp_path / "run", emit=events.append)
    assert res.state == "finished" and res.step == 2, res.message
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any(m.startswith("evaluation at step 1: bits/dim of this glow model came out as nan on ")
               and m.endswith("left out of the row") for m in warnings), warnings
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    evals = [json.loads(line) for line in text.splitlines() if "eval_s" in line]
    assert [r["step"] for r in evals] == [1, 2] and not any("bits_per_dim" in k for r in evals for k in r)
