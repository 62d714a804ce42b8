"""A metric added with one registry line (engine/core/metrics.py) plus its function flows everywhere
with no other edit: config validation, the Evaluator, a training run's evaluation passes, the runs
index's best value, and the panels' titles. The metric here is the test's own ("mean brightness" of
the generated images, higher is better), registered for this test and unregistered after it."""
from __future__ import annotations

import json
import math

import pytest

from app.canvases.sampling import eval_lines
from app.panels.family_compare import FamilyCompare
from app.panels.plots_panel import MetricPlot
from app.panels.run_tree import C_BEST
from app.panels.runs import RunsBrowser
from engine.core import metrics
from engine.core.config import ConfigError
from engine.metrics.evaluate import Evaluator
from engine.runs.compare_table import columns, metric_cells
from engine.runs.index import better, scan_runs
from engine.training.loop import train
from tests.conftest import tiny_config
from tests.engine.test_metrics import _toy_data


def mean_brightness(samples) -> dict[str, float]:
    """The mean pixel of the generated images, in [-1, 1]."""
    return {"brightness": float(samples.images.float().mean())}


BRIGHTNESS = metrics.MeasureSpec("brightness", f"{__name__}:mean_brightness", features=False,
                                 values=(metrics.MetricSpec("brightness", "mean brightness", metrics.HIGHER),))


@pytest.fixture
def brightness():
    metrics.register(BRIGHTNESS)   # the one line
    try:
        yield BRIGHTNESS
    finally:
        metrics.unregister("brightness")


def test_a_metric_registered_in_one_line_flows_everywhere(qtbot, tmp_path, brightness):
    # config validation accepts it in metrics.metrics (and `eval --metrics` parses it)
    cfg = tiny_config(training={"steps": 10, "checkpoint_every": 0},
                      metrics={"every": 5, "samples": 20, "sampling_steps": 2, "domain_steps": 20,
                               "metrics": ["fid", "brightness"]})
    assert cfg.metrics.metrics == ["fid", "brightness"] and metrics.parse_metrics("fid, Brightness")[1] == "brightness"

    # the Evaluator computes it, under its own name (it is not scored on features: no -domain variant)
    imgs, labels = _toy_data(60)
    ev = Evaluator(imgs, labels, 2, metrics="brightness,fid", domain_steps=20)
    fake = imgs[:30].float() / 127.5 - 1
    scores = ev.score(fake)
    assert scores["brightness"] == pytest.approx(float(fake.mean())) and "fd_domain" in scores
    assert set(Evaluator(imgs, labels, 2, domain_steps=20).score(fake)) >= {"brightness", "fd_domain", "kid_domain"}

    # a tiny training run's evaluation passes log it under quality/
    run = tmp_path / "runs" / "20240101-000000-bright"
    assert train(cfg, run, emit=lambda e: None).state == "finished"
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    passes = [(r["step"], r["quality/brightness"]) for r in rows if "quality/brightness" in r]
    assert [s for s, _ in passes] == [5, 10] and all(-1 <= v <= 1 and math.isfinite(v) for _, v in passes)
    assert passes[0][1] != passes[1][1]   # two models, two values: the direction decides the best

    # the runs index keeps its best by its direction (higher is better)
    s = next(s for s in scan_runs(run.parent) if s.path == run)
    best_step, best_value = max(passes, key=lambda p: p[1])
    assert s.best["quality/brightness"] == (best_value, best_step)
    assert better("quality/brightness", 0.5, 0.4) and not better("quality/brightness", 0.4, 0.5)

    # the panels show its title: the runs browser's best-score tooltip and details...
    b = RunsBrowser(run.parent, trash_dir=tmp_path / "trash")
    qtbot.addWidget(b)
    assert f"best mean brightness: {best_value:.4g} at step {best_step}" in b.run_item(run).toolTip(C_BEST)
    b.select_run(run)
    assert "mean brightness" in b.header.text()
    # ... the quality plot's readout, the Sampling canvas's evaluation result ...
    plot = MetricPlot()
    qtbot.addWidget(plot)
    plot.add_rows(rows)
    assert f"brightness {passes[-1][1]:.3g}" in plot.status.text()
    assert f"mean brightness: <b>{passes[-1][1]:.4g}</b>" in eval_lines({"brightness": passes[-1][1], "fid": 3.0})
    # ... and the family comparison: its column, titled, with the best (higher) value in bold
    cells = metric_cells({"brightness": 0.25, "fd_domain": 2.0}, domain=True)
    assert cells["brightness"] == 0.25 and cells["fd"] == 2.0 and "brightness" in columns()
    w = FamilyCompare()
    qtbot.addWidget(w)
    base = {c: None for c in columns()} | {"fd_kind": "FD-domain", "n": 20}
    w.show_result({"rows": [base | {"family": "ddpm", "run": "a", "brightness": 0.25},
                            base | {"family": "vae", "run": "b", "brightness": 0.5}], "n": 20})
    heads = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    col = heads.index("mean brightness ↑")
    assert w.table.item(1, col).font().bold() and not w.table.item(0, col).font().bold()
    assert w.table.item(0, col).text() == "0.25"


def test_an_unregistered_metric_is_refused_again(brightness):
    metrics.unregister("brightness")
    try:
        with pytest.raises(ConfigError, match="metrics.metrics contains 'brightness'; choose from: fid, kid, pr, is, bpd, codebook"):
            tiny_config(metrics={"metrics": ["brightness"]})
        with pytest.raises(ValueError, match="unknown metric 'brightness'"):
            metrics.parse_metrics("fid,brightness")
        assert "brightness" not in columns() and metrics.logged("brightness") is None
    finally:
        metrics.register(BRIGHTNESS)   # for the fixture's own unregistration


def test_the_built_in_metrics_read_as_they_always_have():
    """The panels' texts of the built-in metrics, now drawn from the registry."""
    from app.panels.family_compare import row_tooltip, table_columns
    from app.panels.plots_panel import quality_curve_keys, quality_readouts
    from app.panels.run_tree import metric_label
    r = {"fd_domain": 1.5, "kid_domain": 0.012344, "kid_domain_std": 0.001, "precision_domain": 0.5,
         "recall_domain": 0.25, "is_domain": 1.9, "is_domain_std": 0.1, "bits_per_dim": 3.25, "bpd_images": 20,
         "bpd_split": "held-out"}
    assert eval_lines(r) == ["FD-domain: <b>1.5</b>", "KID-domain: <b>0.01234</b>", "precision-domain: <b>0.5</b>",
                             "recall-domain: <b>0.25</b>", "IS-domain: <b>1.9</b>",
                             "bits/dim: <b>3.25</b> on 20 held-out images"]
    assert eval_lines({"fid": 2.0, "is": 3.0}) == ["FID: <b>2</b>", "IS: <b>3</b>"]
    assert [metric_label("quality/" + k) for k in ("fid", "fd_domain", "kid", "bits_per_dim", "recall_domain", "is")] \
        == ["FID", "FD-domain", "KID", "bits/dim", "recall-domain", "IS"]
    assert quality_curve_keys() == ("quality/fid", "quality/fd_domain")
    assert quality_readouts({"quality/" + k: v for k, v in r.items()}) == [
        "kid 0.0123", "precision 0.5", "recall 0.25", "is 1.9", "bits_per_dim 3.25"]
    assert [c[0] for c in table_columns("FID")][3:7] == ["FID ↓", "precision ↑", "recall ↑", "bits/dim ↓"]
    assert [c[2](0.123456) for c in table_columns("FID")[3:7]] == ["0.1235", "0.123", "0.123", "0.123"]
    row = {"checkpoint": "/r/x.safetensors", "kid": 0.012344, "kid_std": 0.00123, "is": 2.345, "n": 20,
           "sample_seconds": 0.5, "sample_batch": 20, "device": "cpu", "train_steps": 10, "batch_size": 8,
           "images_seen": 80}
    assert row_tooltip(row).splitlines()[:2] == ["/r/x.safetensors", "KID 0.01234 ± 0.0012 · IS 2.35"]
    assert row_tooltip({**row, "is": None}).splitlines()[1] == "KID 0.01234 ± 0.0012"


def test_the_codebook_measure_reads_in_the_panels_as_the_registry_declares_it():
    """A tokenizer's codebook values (scored on real images, like bits/dim): the Sampling canvas's
    evaluation lines say which images, the quality plot's readout and the runs tree title them."""
    from app.panels.plots_panel import quality_readouts
    from app.panels.run_tree import metric_label
    r = {"codebook_usage": 0.75, "codebook_perplexity": 9.5, "codebook_images": 40, "codebook_split": "held-out"}
    assert eval_lines(r) == ["codebook usage: <b>0.75</b> on 40 held-out images",
                             "code perplexity: <b>9.5</b> on 40 held-out images"]
    assert quality_readouts({"quality/" + k: v for k, v in r.items()}) == [
        "codebook_usage 0.75", "codebook_perplexity 9.5"]
    assert metric_label("quality/codebook_usage") == "codebook usage"
    # the Sampling canvas's Evaluate asks for it where the checkpoint's capabilities have a codebook
    from app.canvases.sampling import offered_measures
    from engine.core.capabilities import Capabilities, CodebookCaps, LikelihoodCaps
    assert offered_measures(Capabilities("vqvae", codebook=CodebookCaps(16, "vq"))) == ["fid", "kid", "pr", "is", "codebook"]
    assert offered_measures(Capabilities("pixelcnn", likelihood=LikelihoodCaps())) == ["fid", "kid", "pr", "is", "bpd"]
    assert offered_measures(None) == ["fid", "kid", "pr", "is"]
