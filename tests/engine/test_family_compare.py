"""Family comparison (engine/ops/compare.py): two tiny checkpoints of different families trained on the
same 8x8 digits give one row each, scored against the same real images; checkpoints of other data
are refused in one line; the CLI writes the table as CSV."""
from __future__ import annotations

import csv
import json
import math

import pytest

from engine.cli.main import main
from engine.ops.compare import CompareError, compare_checkpoints
from engine.runs.compare_table import best_index, columns, csv_text, overall_fraction, pareto_front
from engine.core.config import RunConfig
from engine.core.families import family_spec
from engine.training.loop import train

RES = 8
N = 20   # generated (and real) images per checkpoint: the smallest the metrics allow is 10


def tiny(name: str, **data) -> RunConfig:
    t = family_spec(name).config.TINY
    return RunConfig(name=f"cmp-{name}").replace(
        data={"dataset": "digits", "resolution": RES, **data},
        model={"family": name, **t.get("model", {})},
        training={"steps": 3, "batch_size": 8, "warmup_steps": 0, "log_every": 1, "sample_every": 0,
                  "checkpoint_every": 0, "device": "cpu", "ema_decay": 0.5},
        sampling={"grid_size": 4, **t.get("sampling", {})},
        metrics={"domain_steps": 20})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{family: last checkpoint} of a ddpm (iterative, no likelihood) and a vae (one pass, a
    likelihood bound), both 3 steps on 8x8 digits."""
    root = tmp_path_factory.mktemp("compare")
    out = {}
    for name in ("ddpm", "vae"):
        res = train(tiny(name), root / f"run-{name}", emit=lambda e: None)
        assert res.state == "finished", res.message
        out[name] = res.last_checkpoint
    return out


@pytest.fixture(scope="module")
def rows(runs):
    seen = []
    got = compare_checkpoints([runs["ddpm"], runs["vae"]], n=N, device="cpu",
                              progress=lambda *a: seen.append(a))
    return got, seen


def test_one_row_per_checkpoint_with_every_column_that_applies(rows, runs):
    got, _ = rows
    assert [r["family"] for r in got] == ["ddpm", "vae"]
    for r in got:
        assert list(r) == list(columns())
        assert r["run"] == f"run-{r['family']}" and r["step"] == 3
        assert (r["dataset"], r["resolution"], r["channels"]) == ("digits", RES, 1)
        assert r["fd_kind"] == "FD-domain"   # no Inception weights in the tests
        for key in ("fd", "kid", "precision", "recall", "images_per_s", "sample_seconds", "train_seconds"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r["family"], key, r[key])
        assert r["fd"] >= 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
        assert r["images_per_s"] > 0 and r["n"] == N and r["sample_batch"] == N
        assert r["params"] > 0
        assert r["train_steps"] == 3 and r["batch_size"] == 8 and r["images_seen"] == 24
        assert r["train_time_source"] == "metrics.jsonl"
        assert r["checkpoint"] == str(runs[r["family"]])
    ddpm, vae = got
    # bits/dim only where the family has a likelihood (the VAE's is a bound)
    assert ddpm["bits_per_dim"] is None and ddpm["bpd_split"] is None
    assert isinstance(vae["bits_per_dim"], float) and vae["bits_per_dim"] > 0 and vae["bpd_split"] == "training"
    # NFE: the diffusion sampler's 3 steps, doubled by classifier-free guidance (digits has classes);
    # the VAE decodes in one pass
    assert ddpm["sample_steps"] == 3 and ddpm["nfe"] == 6
    assert vae["sample_steps"] is None and vae["nfe"] == 1
    json.dumps(got, allow_nan=False)   # the CLI's JSON line


def test_progress_names_each_checkpoint_and_stage(rows):
    _, seen = rows
    assert {a[1] for a in seen} == {2}
    stages = {(a[0], a[2]) for a in seen}
    for item in (0, 1):
        assert (item, "warm-up") in stages and (item, "sampling") in stages
    assert (1, "bits/dim") in stages and (0, "bits/dim") not in stages
    fractions = [overall_fraction(*a) for a in seen]
    assert all(0 <= f <= 1 for f in fractions) and fractions[-1] == 1.0
    assert fractions == sorted(fractions)   # it never goes back
    # inside the long parts (one warm-up batch, one batch of N samples): the ddpm's denoising steps
    # move the progress while the batch is drawn, not only once it is done
    for stage, total in (("warm-up", 16), ("sampling", N)):
        inside = [a[3] for a in seen if a[:3] == (0, 2, stage) and 0 < a[3] < total]
        assert inside and all(a[4] == total for a in seen if a[:3] == (0, 2, stage)), (stage, seen)


def test_network_evaluations_per_family():
    """Without training: the count each family gives for its run's sample options."""
    from engine.family.base import build_family
    names = [str(i) for i in range(10)]

    def fam(name, **model):
        cfg = tiny(name).replace(model={**model})
        return build_family(cfg, 1, RES, names)

    d = fam("ddpm")
    assert d.network_evaluations() == 6                                   # 3 steps, guided
    assert d.network_evaluations(d.sample_options(guidance_scale=1.0)) == 3
    assert d.network_evaluations(d.sample_options(steps=500, guidance_scale=1.0)) == 50   # capped at T
    assert fam("ddpm", class_conditional=False).network_evaluations() == 3
    assert fam("pixelcnn").network_evaluations() == RES * RES * 1
    assert build_family(tiny("pixelcnn").replace(model={"hidden_channels": 12}), 3, RES, names) \
        .network_evaluations() == RES * RES * 3
    for name in ("gan", "vae", "glow"):
        assert fam(name).network_evaluations() == 1, name


def other_data(checkpoint, folder, **data):
    """A copy of a checkpoint whose JSON says it was trained on other data (refused before any
    weights are read, so the tensors need not fit)."""
    import shutil
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / checkpoint.name
    shutil.copyfile(checkpoint, dest)
    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    meta["config"]["data"].update(data)
    meta["data"].update({k: v for k, v in data.items() if k in meta["data"]})
    dest.with_suffix(".json").write_text(json.dumps(meta))
    return dest


def test_other_data_is_refused_in_one_line_naming_both(runs, tmp_path):
    other = other_data(runs["ddpm"], tmp_path / "a", resolution=16)
    with pytest.raises(CompareError) as e:
        compare_checkpoints([runs["vae"], other], n=N, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and str(runs["vae"]) in msg and str(other) in msg
    assert "digits at 8x8, 1 channel" in msg and "digits at 16x16, 1 channel" in msg
    shapes = other_data(runs["ddpm"], tmp_path / "b", dataset="shapes")
    with pytest.raises(CompareError, match="the second on shapes at 8x8"):
        compare_checkpoints([runs["vae"], shapes], n=N, device="cpu")


def test_table_helpers():
    rows = [{"images_per_s": 100.0, "fd": 5.0}, {"images_per_s": 10.0, "fd": 1.0},
            {"images_per_s": 5.0, "fd": 2.0}, {"images_per_s": 50.0, "fd": None}]
    assert pareto_front(rows) == [True, True, False, False]
    assert best_index(rows, "fd") == 1 and best_index(rows, "images_per_s") == 0
    assert best_index(rows, "nfe") is None
    lines = csv_text(rows).splitlines()
    assert lines[0].split(",") == list(columns()) and len(lines) == 5


def test_cli_prints_the_rows_and_writes_csv(runs, tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert main(["compare", "--checkpoints", str(runs["ddpm"]), str(runs["vae"]), "--n", "10", "--steps", "1",
                 "--csv", str(out), "--device", "cpu"]) == 0
    events = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert all(e["event"] == "progress" for e in events[:-1]) and events[-1]["event"] == "result"
    assert {"stage", "done", "total", "checkpoint", "checkpoints", "fraction"} <= set(events[0])
    rows = events[-1]["rows"]
    assert [r["family"] for r in rows] == ["ddpm", "vae"] and [r["n"] for r in rows] == [10, 10]
    assert (rows[0]["sample_steps"], rows[0]["nfe"]) == (1, 2)   # --steps reaches the diffusion sampler
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == list(columns()) and len(table) == 3
    assert [row[0] for row in table[1:]] == ["ddpm", "vae"]
    bpd = columns().index("bits_per_dim")
    assert table[1][bpd] == "" and float(table[2][bpd]) > 0


def test_cli_refuses_one_checkpoint_and_other_data_in_one_line(runs, tmp_path, capsys):
    assert main(["compare", "--checkpoints", str(runs["vae"]), "--n", str(N)]) == 2
    assert "two or more" in capsys.readouterr().err
    other = other_data(runs["vae"], tmp_path / "other", resolution=16)
    assert main(["compare", "--checkpoints", str(runs["vae"]), str(other), "--n", str(N)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genlab-engine: error: cannot compare")


def test_training_cost_of_a_checkpoint_outside_its_run_folder(runs, tmp_path):
    """An exported checkpoint: the time of its own last training session, from its JSON."""
    from engine.ops.compare import run_name, training_cost
    from engine.training.checkpoint import peek_checkpoint
    inside = peek_checkpoint(runs["vae"])
    out = peek_checkpoint(other_data(runs["vae"], tmp_path / "exported"))
    assert run_name(inside) == "run-vae" and run_name(out) == "step_000003"
    a, b = training_cost(inside), training_cost(out)
    assert a["train_time_source"] == "metrics.jsonl"
    assert b["train_time_source"].startswith("checkpoint") and b["train_seconds"] == out.meta["metrics"]["elapsed_s"]
    assert a["images_seen"] == b["images_seen"] == 24
