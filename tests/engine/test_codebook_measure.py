"""The codebook measure (engine/core/metrics.py, engine/metrics/measures.py): a tokenizer's code
usage and perplexity on held-out images. Known histograms give the known numbers; a tiny vqvae
run's training passes and `genlab-engine eval` report them for every quantizer; a family without a
codebook is neither offered the measure nor scored on it."""
from __future__ import annotations

import json
import math

import pytest
import torch

from engine.core import metrics
from engine.core.families import FAMILIES
from engine.family.interfaces import Tokenizer, capabilities_of, offers
from engine.metrics.measures import code_histogram, codebook_stats
from engine.training import checkpoint as ck
from engine.training.loop import train
from tests.conftest import tiny_family_config


@pytest.mark.parametrize("counts, usage, perplexity", [
    ([5, 5, 5, 5], 1.0, 4.0),                      # every code equally often: perplexity = the codebook size
    ([0, 9, 0, 0], 0.25, 1.0),                     # one code: perplexity 1
    ([2, 2, 0, 0, 0, 0, 0, 0], 0.25, 2.0),
    ([3, 1, 0, 0], 0.5, math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))),
])
def test_known_histograms_give_the_known_usage_and_perplexity(counts, usage, perplexity):
    got = codebook_stats(torch.tensor(counts))
    assert got == pytest.approx((usage, perplexity), rel=1e-12)


@pytest.fixture(scope="module", params=["vq", "fsq", "msrq"])
def tokenizer_run(request, tmp_path_factory):
    """A two-step vqvae run of each quantizer whose evaluation passes ask for the codebook measure
    alone (no samples scored: no feature network)."""
    cfg = tiny_family_config("vqvae").replace(model={"quantizer": request.param}, data={"holdout": 0.1},
                                              metrics={"every": 2, "metrics": ["codebook"], "samples": 40})
    res = train(cfg, tmp_path_factory.mktemp(f"codebook-{request.param}") / "run", emit=lambda e: None)
    assert res.state == "finished", res.message
    return request.param, res


def test_a_tokenizer_runs_evaluation_pass_logs_usage_and_perplexity(tokenizer_run):
    quantizer, res = tokenizer_run
    fam, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    assert capabilities_of(fam).codebook.size == fam.num_codes and capabilities_of(fam).codebook.quantizer == quantizer
    rows = [json.loads(line) for line in (res.last_checkpoint.parent.parent / "metrics.jsonl").read_text().splitlines()]
    row = next(r for r in rows if "quality/codebook_usage" in r)
    assert row["codebook_split"] == "held-out" and row["codebook_images"] == 40
    assert 0 < row["quality/codebook_usage"] <= 1
    assert 1 <= row["quality/codebook_perplexity"] <= row["quality/codebook_usage"] * fam.num_codes + 1e-9


def test_eval_reports_the_histogram_of_the_held_out_images_codes(tokenizer_run, capsys):
    """`genlab-engine eval --metrics codebook`: the numbers of the histogram of the codes of the
    same held-out images, every scale's positions counted for msrq."""
    from engine.cli.main import main
    from engine.data import build_dataset
    quantizer, res = tokenizer_run
    assert main(["eval", "--checkpoint", str(res.last_checkpoint), "--metrics", "codebook", "--n", "30",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fam, ckpt = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    _, held = build_dataset(ckpt.config.data).split(ckpt.config.data.holdout, ckpt.config.data.seed)
    counts = code_histogram(fam, held, 30, "cpu")
    assert int(counts.sum()) == 30 * sum(h * w for h, w in fam.token_shapes)
    usage, ppl = codebook_stats(counts)
    assert result["event"] == "result" and result["codebook_images"] == 30 and result["codebook_split"] == "held-out"
    assert result["codebook_usage"] == pytest.approx(usage) and result["codebook_perplexity"] == pytest.approx(ppl)
    assert "fid" not in result and "fd_domain" not in result   # only what was asked


def test_only_tokenizers_are_offered_the_measure_and_others_are_refused_in_one_line(tiny_runs, capsys):
    from engine.cli.main import main
    for name in FAMILIES.names():
        assert (name == "vqvae") == issubclass(FAMILIES.get(name).family_class(), Tokenizer), name
    fam, _ = ck.family_from_checkpoint(tiny_runs["maskgit"].checkpoint, "cpu")
    assert not offers(fam, metrics.CODEBOOK) and not capabilities_of(fam).has("codebook")
    assert main(["eval", "--checkpoint", str(tiny_runs["maskgit"].checkpoint), "--metrics", "codebook",
                 "--n", "10", "--device", "cpu"]) != 0
    out = capsys.readouterr()
    message = (out.out + out.err).strip().splitlines()[-1]
    assert "maskgit" in message and "codebook" in message, message
