"""The metric registry (engine/core/metrics.py): its specs are sound, it names values per feature
extractor as runs have always logged them, and the readers it feeds say what they said before."""
from __future__ import annotations

import pytest

from engine.core import metrics
from engine.core.config import MetricsConfig, RunConfig
from engine.core.families import BPD_PLOT
from engine.core.logkeys import normalize_row
from engine.core.registry import load_object
from engine.metrics import stats
from engine.metrics.evaluate import Evaluator
from engine.runs.compare_table import best_index, columns, direction
from engine.runs.index import RunSummary
from tests.engine.test_metrics import _toy_data


def test_every_function_reference_resolves_and_names_are_unique():
    for m in metrics.measures():
        assert callable(load_object(m.function)), m.function
        assert m.needs in (metrics.SAMPLING, *metrics.HELDOUT) and m.values
    keys = metrics.measure_names()
    assert len(keys) == len(set(keys))
    value_keys = [v.key for _, v in metrics.values()]
    assert len(value_keys) == len(set(value_keys))
    logged = [n for m in metrics.measures() for v in m.values for n in {v.name(d) for d in m.variants()}]
    assert len(logged) == len(set(logged))
    for _, v in metrics.values():
        assert v.direction in (metrics.LOWER, metrics.HIGHER, metrics.NONE)
        assert v.plot in (metrics.PLOT_CURVE, metrics.PLOT_READOUT, "")
        assert v.table in (metrics.TABLE_COLUMN, metrics.TABLE_DETAIL, "")
        assert not v.spread_of or (v.direction == metrics.NONE and v.spread_of in value_keys)
        format(1.5, v.fmt)


def test_the_built_in_measures_log_what_runs_have_always_logged():
    assert metrics.measure_names() == ["fid", "kid", "pr", "is", "bpd", "codebook"]
    assert metrics.measure_names(metrics.LIKELIHOOD) == ["bpd"]
    assert metrics.measure_names(metrics.HELDOUT) == ["bpd", "codebook"]
    names = {m.key: [v.name(d) for v in m.values for d in m.variants()] for m in metrics.measures()}
    assert names == {"fid": ["fid", "fd_domain"], "kid": ["kid", "kid_domain", "kid_std", "kid_domain_std"],
                     "pr": ["precision", "precision_domain", "recall", "recall_domain"],
                     "is": ["is", "is_domain", "is_std", "is_domain_std"], "bpd": ["bits_per_dim"],
                     "codebook": ["codebook_usage", "codebook_perplexity"]}
    labels = {n: metrics.label(n) for n in ("fid", "fd_domain", "kid_domain", "precision_domain", "is",
                                            "bits_per_dim", "lpips", "lpips_domain")}
    assert labels == {"fid": "FID", "fd_domain": "FD-domain", "kid_domain": "KID-domain",
                      "precision_domain": "precision-domain", "is": "IS", "bits_per_dim": "bits/dim",
                      "lpips": "lpips", "lpips_domain": "lpips-domain"}
    assert metrics.direction("recall_domain") == metrics.HIGHER and metrics.direction("kid_std") == metrics.NONE
    assert metrics.logged("fid_domain").value.key == "fid"   # the naming rule's name for fid is read too


def test_config_help_validation_and_legacy_names_read_the_registry():
    help_text = next(f.metadata["help"] for f in __import__("dataclasses").fields(MetricsConfig) if f.name == "metrics")
    assert help_text == ("Which metrics: fid (Fréchet distance), kid, pr (precision/recall), is, "
                         "bpd (bits/dim on held-out images, for models with a likelihood), "
                         "codebook (a tokenizer's code usage and perplexity on held-out images).")
    with pytest.raises(ValueError, match="metrics.metrics contains 'lpips'; choose from: fid, kid, pr, is, bpd, codebook"):
        RunConfig().replace(metrics={"metrics": ["fid", "lpips"]})
    assert normalize_row({"step": 1, "is_domain_std": 0.1, "recall": 0.5, "eval_s": 2.0}) == {
        "step": 1, "quality/is_domain_std": 0.1, "quality/recall": 0.5, "eval_s": 2.0}
    assert BPD_PLOT.title == "bits/dim, evaluation pass (lower is better)" and BPD_PLOT.keys == ("quality/bits_per_dim",)


def test_headline_order_and_comparison_columns():
    order = ["fid", "fd_domain", "kid", "kid_domain", "bits_per_dim", "precision", "precision_domain",
             "recall", "recall_domain", "is", "is_domain"]
    s = RunSummary(path=None, name="r", state="finished")
    for i, name in enumerate(reversed(order)):
        s.best["quality/" + name] = (1.0, i)
    picked = []
    while s.best:
        key = s.headline_metric()[0]
        picked.append(key.removeprefix("quality/"))
        del s.best[key]
    assert picked == order
    assert columns()[6:17] == ("fd_kind", "fd", "kid", "kid_std", "precision", "recall", "is", "bits_per_dim",
                               "bpd_split", "bpd_images", "images_per_s")
    assert [direction(c) for c in ("fd", "kid", "precision", "images_per_s", "kid_std", "nfe")] == \
        ["lower", "lower", "higher", "higher", "none", "none"]
    assert best_index([{"recall": 0.2}, {"recall": 0.4}], "recall") == 1


def test_registering_refuses_a_second_measure_of_a_key_or_a_logged_name():
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register(metrics.MeasureSpec("kid", "x:y", (metrics.MetricSpec("kid2", "KID2"),)))
    with pytest.raises(ValueError, match="logs 'precision'"):
        metrics.register(metrics.MeasureSpec("prec", "x:y", (metrics.MetricSpec("precision", "p"),)))
    with pytest.raises(ValueError, match="needs 'latent'"):
        metrics.register(metrics.MeasureSpec("z", "x:y", (metrics.MetricSpec("z", "z"),), needs="latent"))
    assert "prec" not in metrics.MEASURES and "z" not in metrics.MEASURES
    with pytest.raises(ValueError, match="returned 'kd'"):
        metrics.MEASURES.get("kid").named({"kd": 1.0}, False)


def test_the_evaluator_scores_are_the_statistics_called_as_the_reference_implementations_do(tmp_path):
    """The registry's dispatch hands each function the same features and arguments as before."""
    imgs, labels = _toy_data(200)
    ev = Evaluator(imgs, labels, 2, domain_steps=20, cache=tmp_path)
    fake = imgs[:80].float() / 127.5 - 1 + 0.05
    got = ev.score(fake, n_real=200)
    ref = ev.reference(200)
    feats, logits = ev.features(fake)
    mu, sigma = stats.feature_stats(feats)
    kid, kid_sd = stats.kernel_inception_distance(ref["features"], feats, subsets=50, subset_size=40)
    p, r = stats.precision_recall(ref["features"], feats, k=3)
    is_m, is_sd = stats.inception_score(logits)
    assert got == {"fd_domain": stats.frechet_distance(mu, sigma, ref["mu"], ref["sigma"]),
                   "kid_domain": kid, "kid_domain_std": kid_sd, "precision_domain": p, "recall_domain": r,
                   "is_domain": is_m, "is_domain_std": is_sd}
    assert list(Evaluator(imgs, labels, 2, metrics="pr,fid,pr,bpd", domain_steps=20, cache=tmp_path)
                .score(fake, n_real=200)) == ["precision_domain", "recall_domain", "fd_domain"]
