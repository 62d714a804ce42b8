"""Run directories written by GenLab before the one-folder-per-family move (tests/fixtures/
legacy_runs/, one per family: its README says how they were made) still open, sample and
resume as they did: the checkpoint loads into today's family class, samples the images the old
code drew from it, and resuming one step more logs the losses and reaches the weights the old
code reached. (Close, not bit-equal: the fixtures were computed on another machine's CPU, whose
float rounding may differ in the last bit.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.core.capabilities import Capabilities
from engine.core.config import RunConfig
from engine.runs.index import RunsIndex, list_samples
from engine.training import checkpoint as ck
from engine.training.loop import train

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy_runs"
FAMILY_DIRS = sorted(p.name for p in FIXTURES.iterdir() if (p / "run" / "config.toml").is_file())


def test_there_is_a_legacy_run_of_every_family_present_then():
    assert set(FAMILY_DIRS) >= {"ddpm", "gan", "stylegan", "vae", "glow", "pixelcnn", "hvae"}


@pytest.fixture(params=FAMILY_DIRS)
def legacy(request, tmp_path):
    src = FIXTURES / request.param
    shutil.copytree(src / "run", tmp_path / "run")
    return request.param, tmp_path / "run", load_file(str(src / "expected.safetensors")), \
        json.loads((src / "expected.json").read_text())


def test_opens_in_the_runs_index_with_its_family_and_samples(legacy):
    name, run, _, _ = legacy
    summary = RunsIndex().summary(run)
    assert summary.family == name and summary.step == 2 and summary.state == "finished"
    assert [s for s, _ in list_samples(run)] == [0, 2]
    cfg = RunConfig.load(run / "config.toml", stored=True)
    assert cfg.family == name


def test_checkpoint_loads_and_samples_the_images_it_did(legacy):
    name, run, expected, _ = legacy
    path = run / "checkpoints" / "step_000002.safetensors"
    fam, ckpt = ck.family_from_checkpoint(path, "cpu")
    assert fam.name == name and ckpt.step == 2
    # what it could do then, it can do now (records compared by field; a record naming a module
    # path, like the inpainting options' class, may name where that class lives today; the solvers
    # and sampling options a sampler offers may have grown, but every one offered then is offered still)
    then, now = Capabilities.from_dict(ckpt.meta["capabilities"]).to_dict(), fam.capabilities().to_dict()
    assert then["family"] == now["family"] == name
    for record in then:
        if isinstance(then[record], dict) and isinstance(now[record], dict):
            assert then[record].keys() == now[record].keys(), record
            if record == "sampling":
                assert set(then[record]["solvers"]) <= set(now[record]["solvers"])
                assert set(then[record]["options"]) <= set(now[record]["options"])
            # a capability added since (the denoising trajectory) may be on now where the record lacked it
            same = {k for k in then[record] if (k, record) not in {("options", "inpaint"), ("solvers", "sampling"),
                                                                  ("options", "sampling"), ("trajectory", "sampling")}}
            assert {k: then[record][k] for k in same} == {k: now[record][k] for k in same}, record
        else:
            assert then[record] == now[record], record
    got = fam.sample(2, seed=1)
    torch.testing.assert_close(got, expected["samples"], atol=1e-5, rtol=1e-5)


def test_resumes_one_step_as_the_old_code_did(legacy):
    name, run, expected, rows = legacy
    cfg = RunConfig.load(run / "config.toml", stored=True).replace(training={"steps": 3})
    cfg.save(run / "config.toml")
    res = train(cfg, run, resume=True, emit=lambda e: None)
    assert res.state == "finished" and res.step == 3, res.message
    row = next(json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if json.loads(l)["step"] == 3)
    for key, want in rows["step3"].items():
        if isinstance(want, float):
            assert row[key] == pytest.approx(want, rel=1e-4, abs=1e-6), key
        else:
            assert row[key] == want, key
    weights = ck.load_checkpoint(res.last_checkpoint).prefixed("net.")
    old = {k[len("resumed."):]: v for k, v in expected.items() if k.startswith("resumed.")}
    assert set(weights) == set(old)
    # Adam divides by the gradient's running size, so a last-bit difference in a near-zero gradient
    # (another CPU's rounding) can move a weight by a fair part of the step's lr; a resume that lost
    # the optimizer state moves most weights by about the lr itself
    atol = 1e-5 + 0.1 * rows["step3"]["lr"]
    for k, v in old.items():
        torch.testing.assert_close(weights[k], v, atol=atol, rtol=1e-4, msg=k)
