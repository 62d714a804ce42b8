"""The FD-vs-NFE sweep (engine/ops/sweep.py) on the tiny trained DDPM run: one row per (solver,
steps) for every solver the registry offers the family, each row's NFE the family's count, the
three files written in the run's sweeps/ folder; a cancelled sweep stops before its next point and
writes nothing; a family without solvers is refused in one line; `eval --sweep` parses into the
op's request."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from engine.cli.evaluate import sweep_argv
from engine.cli.main import build_parser
from engine.cli.request_args import request_from_args
from engine.family.progress import Cancelled
from engine.ops import OPS
from engine.ops.base import ModelSession, never, parse_request
from engine.ops.sweep import DEFAULT_STEPS, SweepRequest, run, summarize


def _session(tiny_runs, name="ddpm") -> ModelSession:
    return ModelSession.load(tiny_runs[name].checkpoint, "cpu")


def test_a_sweep_writes_one_row_per_solver_and_step_count_with_the_familys_nfe(tiny_runs):
    session = _session(tiny_runs)
    fam = session.family
    solvers = fam.sampling_record().solvers           # the registry's, as the family offers them
    assert "ddim" in solvers and "unipc" in solvers and len(solvers) >= 2
    stages: list[str] = []
    req = parse_request(SweepRequest, {"steps": [1, 2, 3], "samples": 10, "reference": "ddim:3"}, "sweep")
    res = run(session, req, lambda stage, done, total: stages.append(stage), never)

    folder = Path(res.folder)
    assert folder.parent == tiny_runs["ddpm"].checkpoint.parent.parent / "sweeps"
    rows = list(csv.DictReader(open(res.csv)))
    pairs = [(r["solver"], int(r["steps"])) for r in rows]
    assert len(pairs) == len(set(pairs))
    # every solver at every step count, but a count that visits no new level (same NFE) only once
    for name in solvers:
        mine = [r for r in rows if r["solver"] == name]
        assert [int(r["steps"]) for r in mine][0] == 1 and len(mine) >= 2
        nfes = [int(r["nfe"]) for r in mine]
        assert nfes == sorted(set(nfes))
    for r in rows:
        options = fam.sample_options(sampler=r["solver"], steps=int(r["steps"]))
        guided = 2 if fam.num_classes and options.guidance_scale != 1 else 1
        assert int(r["nfe"]) == fam.network_evaluations(options)
        assert int(r["nfe"]) == fam.solver(options).network_evaluations(int(r["steps"])) * guided
        assert float(r[res.metric]) > 0
        if r["solver"] in ("unipc", "dpmpp_2m"):   # multistep: one network pass a step, the corrector's reused
            assert int(r["nfe"]) == int(r["steps"]) * guided
    assert res.metric in ("fid", "fd_domain")

    record = json.loads(Path(res.json).read_text())
    assert [(p["solver"], p["steps"]) for p in record["points"]] == pairs
    ref = record["reference"]
    assert (ref["solver"], ref["steps"]) == ("ddim", 3)
    ddim3 = next(r for r in rows if (r["solver"], r["steps"]) == ("ddim", "3"))
    assert ref["fd"] == pytest.approx(float(ddim3[res.metric]))   # an in-grid reference is that point
    assert len(res.summary) == len(solvers) and res.summary[0].startswith("ddim: reaches ddim-3's ")
    png = Image.open(res.png)
    assert png.format == "PNG" and png.size[0] > 300
    assert any(s.startswith("heun, 3 steps") for s in stages)


def test_a_cancelled_sweep_stops_before_its_next_point_and_leaves_no_file(tiny_runs, tmp_path):
    session = _session(tiny_runs)
    stages: list[str] = []
    stop = [False]

    def progress(stage, done, total):
        stages.append(stage)
        if stage.startswith("ddim, 2 steps"):
            stop[0] = True          # Cancel pressed while the second point samples

    req = parse_request(SweepRequest, {"solvers": ["ddim", "heun"], "steps": [1, 2, 4], "samples": 10,
                                       "out": str(tmp_path / "sweep")}, "sweep")
    with pytest.raises(Cancelled):
        run(session, req, progress, lambda: stop[0])
    assert not any(s.startswith(("ddim, 4", "heun")) for s in stages)
    assert not (tmp_path / "sweep").exists()


def test_deterministic_only_skips_the_stochastic_solvers_and_says_so(tiny_runs, tmp_path):
    session = _session(tiny_runs)
    req = parse_request(SweepRequest, {"solvers": ["ddim", "ddpm"], "steps": [1], "samples": 10, "reference": "",
                                       "deterministic": True, "out": str(tmp_path / "s")}, "sweep")
    res = run(session, req, lambda *a: None, never)
    assert {p["solver"] for p in res.points} == {"ddim"} and "ddpm skipped (stochastic)" in res.note
    assert res.reference is None and res.summary == []


def test_a_family_without_solvers_is_refused_in_one_line(tiny_runs):
    session = _session(tiny_runs, "gan")
    req = parse_request(SweepRequest, {"samples": 10}, "sweep")
    with pytest.raises(ValueError) as e:
        run(session, req, lambda *a: None, never)
    assert str(e.value).startswith("a gan model has no solvers") and "\n" not in str(e.value)


def test_an_unknown_solver_names_the_familys(tiny_runs):
    session = _session(tiny_runs)
    req = parse_request(SweepRequest, {"solvers": ["rk45"], "samples": 10}, "sweep")
    with pytest.raises(ValueError, match="has no solver 'rk45'; its solvers: ddim"):
        run(session, req, lambda *a: None, never)


def test_the_summary_is_the_fewest_nfe_reaching_the_reference():
    rows = [{"solver": "a", "steps": s, "nfe": s, "fd": fd} for s, fd in ((1, 9.0), (2, 4.0), (4, 2.5), (8, 3.0))] \
        + [{"solver": "b", "steps": s, "nfe": 2 * s - 1, "fd": fd} for s, fd in ((1, 9.0), (2, 3.5))]
    ref = {"solver": "a", "steps": 50, "nfe": 50, "fd": 3.0}
    lines = summarize(rows, ref, "FD")
    assert lines[0] == "a: reaches a-50's FD 3 at 4 NFE (4 steps, FD 2.5)"
    assert lines[1] == "b: does not reach a-50's FD 3 within 3 NFE (best 3.5 at 3 NFE)"


def test_eval_sweep_parses_into_the_sweep_request():
    argv = sweep_argv(["eval", "--sweep", "--checkpoint", "c.safetensors", "--solvers", "ddim,heun",
                       "--steps", "1,2,4", "--samples", "20", "--deterministic"])
    assert argv[0] == "sweep"
    args = build_parser(argv[:1]).parse_args(argv)
    fields = request_from_args(OPS.get("sweep").request, args, "sweep").fields
    assert fields["solvers"] == ["ddim", "heun"] and fields["steps"] == [1, 2, 4]
    assert fields["samples"] == 20 and fields["deterministic"] is True
    req = parse_request(SweepRequest, fields, "sweep")
    assert req.reference == "ddim:50" and req.out == ""
    # the defaults: every solver, the usual step counts
    args = build_parser(["sweep"]).parse_args(["sweep", "--checkpoint", "c.safetensors"])
    req = parse_request(SweepRequest, request_from_args(SweepRequest, args, "sweep").fields, "sweep")
    assert req.solvers == [] and req.steps == list(DEFAULT_STEPS)
    assert sweep_argv(["eval", "--checkpoint", "c"]) == ["eval", "--checkpoint", "c"]   # plain eval stays
    with pytest.raises(SystemExit):
        build_parser(["sweep"]).parse_args(["sweep", "--checkpoint", "c", "--steps", "1,two"])
    with pytest.raises(ValueError, match="step count 0"):
        parse_request(SweepRequest, {"steps": [0, 2]}, "sweep")
    with pytest.raises(ValueError, match="expected solver:steps"):
        parse_request(SweepRequest, {"reference": "ddim"}, "sweep")
