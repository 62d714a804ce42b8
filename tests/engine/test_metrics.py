import math

import numpy as np
import pytest
import torch

from engine.metrics import domain, inception
from engine.metrics.evaluate import Evaluator, parse_metrics
from engine.metrics.stats import (feature_stats, frechet_distance, inception_score, kernel_inception_distance,
                                  precision_recall)


def test_frechet_zero_for_identical_and_closed_form_for_diagonal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8))
    mu, sigma = feature_stats(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
    expected = ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_stable_on_rank_deficient_covariance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 64))  # fewer samples than dimensions: singular covariances
    y = rng.normal(size=(20, 64)) + 0.5
    d = frechet_distance(*feature_stats(x), *feature_stats(y))
    assert np.isfinite(d) and d > 0
    z = np.zeros((64, 64))
    assert np.isfinite(frechet_distance(np.zeros(64), z, np.ones(64), z))  # fully singular: eps path


def test_kid_unbiased_near_zero_for_same_distribution():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1000, 32)), rng.normal(size=(1000, 32))
    mean, std = kernel_inception_distance(a, b, subsets=20, subset_size=500)
    assert abs(mean) < 3 * std + 1e-3
    far, _ = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=500)
    assert far > 10 * abs(mean) and far > 0


def test_precision_recall_identical_and_mode_dropping():
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 20])
    p, r = precision_recall(real, real.copy())
    assert p == 1.0 and r == 1.0
    one_mode = rng.normal(size=(600, 4))  # covers only the first mode
    p, r = precision_recall(real, one_mode)
    assert p > 0.9 and r < 0.6
    assert r == pytest.approx(0.5, abs=0.1)


def test_inception_score_bounds():
    uniform_confident = np.eye(10)[np.arange(1000) % 10] * 50
    assert inception_score(uniform_confident)[0] == pytest.approx(10, rel=1e-3)
    assert inception_score(np.zeros((100, 10)))[0] == pytest.approx(1.0)


# Shapes of a few tensors of the standard pt_inception-2015-12-05 file (the PyTorch FID port).
STANDARD_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def test_inception_accepts_standard_state_dict_and_gives_2048_features(tmp_path):
    template = inception.FIDInceptionV3().state_dict()
    for k, shape in STANDARD_SHAPES.items():
        assert tuple(template[k].shape) == shape
    n_params = sum(v.numel() for k, v in template.items() if not k.startswith(("num_", )) and "running" not in k
                   and not k.endswith("num_batches_tracked"))
    assert n_params == 23_850_960  # torchvision Inception-v3 without aux head, 1008 classes
    g = torch.Generator().manual_seed(0)
    # as in the original file: random values, no num_batches_tracked counters
    sd = {k: (torch.rand(v.shape, generator=g) + 0.5 if "running_var" in k else torch.randn(v.shape, generator=g) * 0.05)
          for k, v in template.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / inception.WEIGHTS_NAME
    torch.save(sd, path)
    net, note = inception.load_inception(str(path))
    assert net is not None and str(path) in note
    feats, logits = net(torch.rand(2, 1, 16, 16) * 2 - 1)  # grayscale, small: repeated and resized
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.equal(net.state_dict()["fc.weight"], sd["fc.weight"])
    bad = dict(sd)
    bad["fc.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(ValueError, match="fc.weight has shape"):
        inception.build_inception(bad)


def _closed_form_is(logits: np.ndarray) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) over all rows, written out independently of stats.py."""
    z = logits - logits.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(log_p)
    log_py = np.log(p.mean(0, keepdims=True))
    return float(np.exp((p * (log_p - log_py)).sum(1).mean()))


def test_inception_logits_for_is_leave_out_the_fc_bias():
    # Random weights that keep activations alive (He-scaled convs, identity batch norm), so different
    # images give different features, and a clearly non-zero fc bias.
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in inception.FIDInceptionV3().state_dict().items():
        if k.endswith("conv.weight"):
            sd[k] = torch.randn(v.shape, generator=g) * math.sqrt(2 / v[0].numel())
        elif k.endswith(("bn.weight", "running_var")):
            sd[k] = torch.ones(v.shape)
        elif k.endswith(("bn.bias", "running_mean")):
            sd[k] = torch.zeros(v.shape)
    sd["fc.weight"] = torch.randn(1008, 2048, generator=g) * 0.5
    sd["fc.bias"] = torch.randn(1008, generator=g) * 4
    net = inception.build_inception(sd)
    ramp = torch.linspace(-1, 1, 16)
    x = torch.stack([torch.full((3, 16, 16), -1.0), torch.full((3, 16, 16), 1.0),
                     torch.rand(3, 16, 16, generator=g) * 2 - 1, ramp.expand(3, 16, 16), ramp[:, None].expand(3, 16, 16)])
    feats, logits = net(x)
    w, b = sd["fc.weight"], sd["fc.bias"]
    assert torch.allclose(logits, feats @ w.T, rtol=1e-5, atol=1e-4)  # W f, no bias
    assert not torch.allclose(logits, feats @ w.T + b, atol=1e-1)
    unbiased = logits.double().numpy()
    biased = (feats.double() @ w.double().T + b.double()).numpy()
    assert unbiased.std(0).mean() > 0.5  # the images really do get different class distributions
    is_unbiased, _ = inception_score(unbiased, splits=1)
    assert is_unbiased == pytest.approx(_closed_form_is(unbiased), rel=1e-9)
    assert is_unbiased > 1.01
    # the bias changes the score: this is what the reference implementations leave out
    assert abs(inception_score(biased, splits=1)[0] - is_unbiased) > 0.01


def test_missing_inception_weights_fall_back_to_domain(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GENLAB_INCEPTION", raising=False)
    net, note = inception.load_inception(None)
    assert net is None and "not found" in note and "FD-domain" in note
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        inception.load_inception(str(tmp_path / "nope.pth"))


def _toy_data(n=200):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    imgs = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    imgs[labels == 0, :, :, :4] = 255            # class 0: left half bright
    imgs[labels == 1, :, :4, :] = 255            # class 1: top half bright
    noise = (torch.rand(n, 1, 8, 8, generator=g) * 40).to(torch.uint8)
    return (imgs.int() - noise.int()).clamp(0, 255).to(torch.uint8), labels


def test_domain_extractor_is_cached(tmp_path):
    imgs, labels = _toy_data()
    net1, folder1, trained1 = domain.load_or_train(imgs, labels, 2, steps=20, cache=tmp_path)
    net2, folder2, trained2 = domain.load_or_train(imgs, labels, 2, steps=20, cache=tmp_path)
    assert trained1 and not trained2 and folder1 == folder2
    x = imgs[:5].float() / 127.5 - 1
    assert torch.allclose(net1(x)[0], net2(x)[0])
    other = imgs.clone()
    other[0, 0, 0, 0] ^= 1  # one pixel differs: a different dataset, a different extractor
    _, folder3, trained3 = domain.load_or_train(other, labels, 2, steps=20, cache=tmp_path)
    assert trained3 and folder3 != folder1


def test_evaluator_scores_real_vs_shuffled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    imgs, labels = _toy_data(300)
    ev = Evaluator(imgs, labels, 2, domain_steps=40, cache=tmp_path)
    assert ev.kind == "domain"
    real = imgs.float() / 127.5 - 1
    same = ev.score(real[:150], n_real=300)
    noise = ev.score(torch.rand(150, 1, 8, 8) * 2 - 1, n_real=300)
    assert set(same) >= {"fd_domain", "kid_domain", "precision_domain", "recall_domain", "is_domain"}
    assert same["fd_domain"] < noise["fd_domain"]
    assert same["precision_domain"] > noise["precision_domain"]
    with pytest.raises(ValueError, match="unknown metric 'lpips'"):
        parse_metrics("fid,lpips")
