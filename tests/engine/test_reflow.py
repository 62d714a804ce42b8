"""Reflow (Liu et al. 2022) of flow_matching runs (engine/families/flow_matching/reflow.py,
straightness.py, model.py): the parent's (noise, sample) pairs are deterministic and drawn once
(cached in the child's run folder, read back on resume); training regresses z - x0 on them; the
straightness estimate is 0 for a straight field; a reflow run without a flow_matching parent is
refused in one line; a tiny child trains, logs straightness and resumes."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from engine.core.config import RunConfig
from engine.core.reflow import can_reflow, reflow_child_config
from engine.core.schema import ConfigError
from engine.family.base import Batch, StepContext
from engine.family.parent import ENCODED_DIR
from engine.families.flow_matching.reflow import PAIR_SEED, draw_pairs
from engine.families.flow_matching.straightness import straightness
from engine.training import checkpoint as ck
from engine.training.loop import Trainer, train
from engine.training.parent import load_parent
from tests.conftest import tiny_family_config, tiny_parent


def one_line(msg: str) -> str:
    assert "\n" not in msg, msg
    return msg


def reflow_config(parent, **model) -> RunConfig:
    return tiny_family_config("flow_matching").replace(
        model={"reflow": True, "parent": str(parent), "reflow_pairs": 12, "reflow_steps": 2, **model})


# ---- straightness ---------------------------------------------------------------------------------
def test_straightness_of_an_exactly_straight_field_is_zero_and_positive_otherwise():
    z = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.zeros_like(z) + 0.3
    # the field of straight lines to `target`: v(x, t) = (x - target) / t is constant along each path
    straight = lambda x, t: (x - target) / t.view(-1, 1, 1, 1).clamp(min=1e-6)  # noqa: E731
    assert straightness(straight, z, steps=6) == pytest.approx(0.0, abs=1e-10)
    bent = lambda x, t: x * (1 + 3 * t.view(-1, 1, 1, 1))  # noqa: E731  (speed changes along the path)
    assert straightness(bent, z, steps=6) > 1e-3
    with pytest.raises(ValueError):
        straightness(straight, z, steps=0)


# ---- the pairs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def parent_ckpt():
    return tiny_parent("flow_matching")


def test_pairs_are_deterministic_given_seeds_and_follow_the_parents_ode(parent_ckpt):
    fam, _ = ck.family_from_checkpoint(parent_ckpt, "cpu")
    a, b = draw_pairs(fam, 5, 2), draw_pairs(fam, 5, 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(a["noise"], fam.initial_noise(list(range(PAIR_SEED, PAIR_SEED + 5))))
    labels = a["labels"].tolist()
    assert labels == fam.labels_for(5)   # cycled classes, kept
    direct = fam.sample(5, seed=PAIR_SEED, labels=labels, steps=2, guidance_scale=1.0)
    assert torch.allclose(a["sample"], direct, atol=1e-5)


@pytest.fixture(scope="module")
def reflow_run(tmp_path_factory, parent_ckpt):
    """A tiny reflow child of the tiny fm run, stopped at step 1 and resumed to 3."""
    root = tmp_path_factory.mktemp("reflow")
    cfg = reflow_config(parent_ckpt, reflow_init="parent").replace(training={"steps": 3})
    events = []
    first = Trainer(cfg, root / "child", emit=events.append)
    assert first.run(until_step=1).state == "stopped"
    assert first.family.pairs_from_cache is False
    cached = sorted((root / "child" / ENCODED_DIR).glob("*.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in cached]
    resumed = Trainer(cfg, root / "child", resume=True, emit=events.append)
    res = resumed.run()
    assert res.state == "finished", res.message
    return first, resumed, root / "child", cached, mtimes, events


def test_pairs_are_cached_once_and_reused_on_resume(reflow_run, parent_ckpt):
    first, resumed, run_dir, cached, mtimes, events = reflow_run
    assert len(cached) == 1
    assert resumed.family.pairs_from_cache is True
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    pairs = load_file(cached[0])
    assert pairs["noise"].shape == (12, 1, 8, 8) and pairs["sample"].shape == (12, 1, 8, 8)
    assert all(torch.equal(pairs[k], resumed.family.pairs[k].cpu()) for k in pairs)
    said = [e.get("message", "") for e in events if e.get("event") == "info"]
    assert any("reflow pairs: 12/12 drawn by the parent" in m for m in said)
    assert any("read from" in m and "straightness" in m for m in said)
    meta = json.loads(ck.checkpoint_paths(resumed.last_ckpt)[1].read_text())
    assert meta["parent"]["path"] == str(parent_ckpt.resolve())


def test_the_child_starts_from_the_parents_weights(reflow_run, parent_ckpt):
    first, *_ = reflow_run
    # rebuilt from the config: the weights before any step are the parent's averaged ones
    parent = load_parent(first.cfg, "cpu")
    from engine.family.base import build_family
    fam = build_family(first.cfg, 1, 8, first.data.class_names, parent=parent)
    src = parent.family.nets(True).state_dict()
    assert all(torch.equal(v, src[k]) for k, v in fam.networks.state_dict().items())
    scratch = build_family(first.cfg.replace(model={"reflow_init": "scratch"}), 1, 8, first.data.class_names,
                           parent=parent)
    assert not all(torch.equal(v, src[k]) for k, v in scratch.networks.state_dict().items())


def test_straightness_is_logged_for_the_parent_and_the_child(reflow_run):
    *_, run_dir, _, _, _ = reflow_run
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "reflow/straightness" in r]
    assert logged and all(r["reflow/straightness"] >= 0 and r["reflow/straightness_parent"] > 0 for r in logged)


def test_the_training_target_is_z_minus_x0_on_the_pairs(reflow_run):
    _, resumed, *_ = reflow_run
    fam = resumed.family
    net = fam.networks["unet"]
    seen = {}

    class Spy(torch.nn.Module):   # predicts 0 and remembers what it was given
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x_t, time, labels):
            seen["x_t"], seen["t"] = x_t.detach(), time.detach() / fam.time_scale
            return self.w * x_t

    spy = Spy()
    fam.networks["unet"] = spy
    try:
        g = torch.Generator().manual_seed(3)
        opt = {"unet": torch.optim.SGD(spy.parameters(), lr=0.0)}
        ctx = StepContext(torch.device("cpu"), g, opt)
        ctx.step = 1   # not a straightness step
        batch = Batch(torch.full((4, 1, 8, 8), 9.0), torch.zeros(4, dtype=torch.long))   # ignored by reflow
        loss = float(fam.training_step(batch, ctx)["loss/flow"].detach())
    finally:
        fam.networks["unet"] = net
    # replay the draws: the pair indices, then t; the prediction was 0, so the loss is E (z - x0)²
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, len(fam.pairs["noise"]), (4,), generator=g)
    t = torch.rand(4, generator=g)
    x0, z = fam.pairs["sample"][idx], fam.pairs["noise"][idx]
    assert torch.allclose(seen["t"], t) and torch.allclose(seen["x_t"], (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(
        -1, 1, 1, 1) * z, atol=1e-6)
    assert loss == pytest.approx(float(((z - x0) ** 2).mean()), rel=1e-5)


# ---- refused ------------------------------------------------------------------------------------------
def test_a_reflow_run_without_a_parent_is_one_line(tmp_path):
    cfg = tiny_family_config("flow_matching").replace(model={"reflow": True})
    res = train(cfg, tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed" and "model.parent is empty" in one_line(res.message)
    assert "flow_matching" in res.message


def test_a_reflow_run_on_a_non_flow_parent_is_one_line(tmp_path, tiny_runs):
    ddpm = tiny_runs["ddpm"].checkpoint
    res = train(reflow_config(ddpm), tmp_path / "run", emit=lambda e: None)
    assert res.state == "failed" and str(ddpm.resolve()) in one_line(res.message)
    assert "a ddpm checkpoint cannot be the parent of a flow_matching model" in res.message


def test_a_parent_without_reflow_is_refused_and_a_plain_run_takes_none(parent_ckpt):
    with pytest.raises(ConfigError) as e:
        tiny_family_config("flow_matching").replace(model={"parent": str(parent_ckpt)})
    assert "model.reflow is false" in one_line(str(e.value))
    assert load_parent(tiny_family_config("flow_matching"), "cpu") is None


# ---- the config of a child --------------------------------------------------------------------------
def test_a_child_config_and_the_cli_flag_path(parent_ckpt):
    from engine.cli.train import add_arguments, load_run_config
    import argparse
    assert can_reflow("flow_matching") and not can_reflow("ddpm") and not can_reflow("ldm")
    parent_cfg = tiny_family_config("flow_matching")
    child = reflow_child_config(parent_cfg, parent_ckpt)
    assert child.model.reflow and child.model.parent == str(parent_ckpt) and child.name.endswith("-reflow")
    assert child.model.base_channels == parent_cfg.model.base_channels
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--preset", "fm-digits", "--parent", str(parent_ckpt), "--set", "model.reflow=true"])
    cfg = load_run_config(args)
    assert cfg.model.reflow is True and cfg.model.parent == str(parent_ckpt)


# ---- the comparison at few steps (benchmarks/reflow_steps.py), on tiny models -------------------------
def test_fd_by_euler_steps_scores_parent_and_child(reflow_run, parent_ckpt, tmp_path):
    import importlib.util

    from tests.conftest import ROOT
    spec = importlib.util.spec_from_file_location("reflow_steps", ROOT / "benchmarks" / "reflow_steps.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, resumed, *_ = reflow_run
    scores = mod.fd_by_steps({"parent": parent_ckpt, "child": resumed.last_ckpt}, steps=(1, 2), samples=24,
                             domain_steps=5, cache=tmp_path)
    assert set(scores) == {"parent", "child"} and all(set(s) == {1, 2} for s in scores.values())
    assert all(v >= 0 and v == v for s in scores.values() for v in s.values())
    # deterministic: the same checkpoint, seeds and features score the same
    again = mod.fd_by_steps({"child": resumed.last_ckpt}, steps=(1,), samples=24, domain_steps=5, cache=tmp_path)
    assert again["child"][1] == pytest.approx(scores["child"][1], rel=1e-6)
