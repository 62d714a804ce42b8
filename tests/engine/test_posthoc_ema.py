"""Post-hoc EMA (training.posthoc_ema, EDM2): the power-function EMA follows its formula, the
profiles' closed-form inner products match the integrals, reconstruction returns a stored profile
exactly and an intermediate σ_rel's EMA of a known trajectory closely, and a tiny run writes
snapshots whose reconstruction is a checkpoint that samples; with the option off nothing is written."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from engine.cli.main import main as engine_main
from engine.core.config import ConfigError, RunConfig
from engine.ops.posthoc_ema import EmaRequest, run as reconstruct
from engine.ops.base import never, no_progress
from engine.runs.posthoc_files import reconstructed, snapshots
from engine.training import checkpoint as ck
from engine.runs.rundir import RunDir
from engine.training.posthoc_ema import PowerEMA, read_snapshot_tensors, start
from engine.training.power_ema import (beta, gamma_of, posthoc_coefficients, profile_inner_products,
                                       sigma_rel_of)
from tests.conftest import tiny_family_config


def toy_family(width: int = 3):
    """What PowerEMA reads of a family: its networks, the averaged copies and its name."""
    networks = nn.ModuleDict({"net": nn.Linear(width, 1, bias=False)})
    networks["net"].register_buffer("count", torch.zeros(()))
    return SimpleNamespace(name="toy", networks=networks, ema=copy.deepcopy(networks))


def set_weights(fam, values) -> None:
    with torch.no_grad():
        fam.networks["net"].weight.copy_(torch.as_tensor(values, dtype=torch.float32).view(1, -1))


def test_sigma_rel_and_gamma_are_inverse_and_match_edm2():
    assert gamma_of(0.05) == pytest.approx(16.97, abs=0.01)   # EDM2's profiles: γ ≈ 16.97 and 6.94
    assert gamma_of(0.10) == pytest.approx(6.94, abs=0.01)
    for s in (0.02, 0.07, 0.15, 0.28):
        assert sigma_rel_of(gamma_of(s)) == pytest.approx(s, rel=1e-9)
    with pytest.raises(ValueError, match="sigma_rel"):
        gamma_of(0.3)


def test_inner_products_equal_the_integrals_of_the_profiles():
    tau = np.linspace(0, 300, 600_001)

    def profile(t, g):
        return np.where(tau <= t, (g + 1) * tau ** g / t ** (g + 1), 0.0)
    for (ta, ga), (tb, gb) in [((100, 6.9), (300, 16.9)), ((300, 3.0), (200, 6.9)), ((150, 6.9), (150, 6.9))]:
        numeric = getattr(np, "trapezoid", getattr(np, "trapz", None))(profile(ta, ga) * profile(tb, gb), tau)
        assert profile_inner_products(ta, ga, tb, gb) == pytest.approx(numeric, rel=1e-4)


def test_power_ema_update_follows_the_formula_for_a_few_steps():
    fam = toy_family()
    ema = PowerEMA(fam, [0.05, 0.10])
    weights = [[1.0, -2.0, 0.5], [3.0, 0.0, 1.5], [-1.0, 4.0, 2.5], [0.5, 0.5, -0.5]]
    expected = [np.zeros(3), np.zeros(3)]
    for t, w in enumerate(weights, start=1):
        set_weights(fam, w)
        ema.update(t)
        for i, s in enumerate((0.05, 0.10)):
            b = (1 - 1 / t) ** (gamma_of(s) + 1)
            expected[i] = b * expected[i] + (1 - b) * np.array(w)
            got = ema.profiles[i]["net.weight"].view(-1).double().numpy()
            np.testing.assert_allclose(got, expected[i], rtol=1e-6, atol=1e-6)
    assert beta(gamma_of(0.05), 1) == 0.0   # the first step replaces the initial weights entirely


def write_toy_run(run: Path, steps: int = 400, every: int = 20, direct_sigmas=(0.07, 0.15)):
    """A run folder of a toy network whose weights follow a known trajectory (moving by about ±1)
    for `steps` steps, with snapshots of σ_rel 0.05 and 0.10 every `every` steps and one training
    checkpoint at the end; returns the stored profiles and those of `direct_sigmas` computed directly
    along the same trajectory."""
    fam, direct_fam = toy_family(), toy_family()
    stored = PowerEMA(fam, [0.05, 0.10])
    direct = PowerEMA(direct_fam, list(direct_sigmas))
    tau = np.arange(1, steps + 1) / steps
    trajectory = np.stack([np.sin(3 * np.pi * tau), np.cos(1.4 * np.pi * tau) + tau, tau ** 2], 1)
    for t in range(1, steps + 1):
        set_weights(fam, trajectory[t - 1])
        set_weights(direct_fam, trajectory[t - 1])
        stored.update(t)
        direct.update(t)
        if t % every == 0:
            stored.snapshot(run, t)
    # the run's checkpoint the reconstruction takes its networks and metadata from
    ck.save_checkpoint(run / "checkpoints" / f"step_{steps:06d}",
                       {f"net.{k}": v for k, v in fam.networks.state_dict().items()}
                       | {f"ema.{k}": v for k, v in fam.ema.state_dict().items()},
                       {"step": steps, "config": {}, "data": {"channels": 1, "resolution": 8, "class_names": []}})
    return stored, direct


def test_reconstructing_a_stored_profile_gives_its_weights_and_an_intermediate_one_the_direct_ema(tmp_path):
    """A known weight trajectory over 400 steps, snapshots of σ_rel 0.05 and 0.10 every 20 steps:
    reconstructed at 0.05 it is the stored profile; at 0.07 (and 0.15) it is within 1e-3 of the
    power EMA computed directly along the trajectory (whose weights move by ±1), far closer than
    the two stored profiles are to each other."""
    steps, every = 400, 20
    stored, direct = write_toy_run(tmp_path, steps, every)

    def rebuilt(sigma_rel):
        res = reconstruct(None, EmaRequest(str(tmp_path), sigma_rel), no_progress, never)
        assert res.step == steps and res.snapshots == steps // every
        return ck.load_checkpoint(res.checkpoint).tensors["ema.net.weight"].view(-1).double().numpy()

    profile = [p["net.weight"].view(-1).double().numpy() for p in stored.profiles]
    np.testing.assert_allclose(rebuilt(0.05), profile[0], atol=1e-5)
    np.testing.assert_allclose(rebuilt(0.10), profile[1], atol=1e-5)
    gap = np.abs(profile[0] - profile[1]).max()
    for i, s in enumerate((0.07, 0.15)):
        want = direct.profiles[i]["net.weight"].view(-1).double().numpy()
        error = np.abs(rebuilt(s) - want).max()
        assert error < 1e-3 and error < 0.01 * gap, (s, error, gap)
    assert [round(s, 3) for _, s, _ in reconstructed(tmp_path)] == [0.05, 0.07, 0.1, 0.15]
    # buffers are copied as they were at the output's step, not averaged
    assert ck.load_checkpoint(reconstructed(tmp_path)[0][2]).tensors["ema.net.count"].item() == 0
    # --out: anywhere, at an earlier snapshot's step (from the snapshots up to it)
    res = reconstruct(None, EmaRequest(str(tmp_path), 0.07, step=200, out=str(tmp_path / "out" / "mine")),
                      no_progress, never)
    assert res.checkpoint == str(tmp_path / "out" / "mine.safetensors") and res.snapshots == 10
    assert ck.load_checkpoint(res.checkpoint).step == 200
    with pytest.raises(ValueError, match="may not hold a dot"):
        reconstruct(None, EmaRequest(str(tmp_path), 0.07, out=str(tmp_path / "ema-0.07.safetensors")), no_progress,
                    never)


def test_coefficients_of_a_stored_profile_pick_that_snapshot_alone():
    t = [100, 100, 200, 200, 300, 300]
    s = [0.05, 0.10] * 3
    x = posthoc_coefficients(t, s, 300, 0.10)
    np.testing.assert_allclose(x, [0, 0, 0, 0, 0, 1], atol=1e-8)


def test_config_takes_true_a_list_or_nothing():
    on = RunConfig().replace(training={"posthoc_ema": True})
    assert on.training.posthoc_ema == [0.05, 0.10]
    assert RunConfig.from_toml(on.to_toml()).training.posthoc_ema == [0.05, 0.10]
    assert RunConfig().training.posthoc_ema == [] and RunConfig().replace(training={"posthoc_ema": False}).training.posthoc_ema == []
    assert RunConfig().replace(training={"posthoc_ema": [0.04, 0.2]}).training.posthoc_ema == [0.04, 0.2]
    with pytest.raises(ConfigError, match="training.posthoc_ema"):
        RunConfig().replace(training={"posthoc_ema": [0.05, 0.5]})


@pytest.fixture(scope="module")
def phema_run(tmp_path_factory) -> Path:
    from engine.training.loop import train
    root = tmp_path_factory.mktemp("phema")
    cfg = tiny_family_config("ddpm", steps=4, checkpoint_every=2, posthoc_ema=True, posthoc_ema_every=2)
    res = train(cfg, root / "on", emit=lambda e: None)
    assert res.state == "finished", res.message
    return root / "on"


def test_a_tiny_run_writes_snapshots_and_its_reconstruction_samples(phema_run, capsys):
    assert [s for s, _ in snapshots(phema_run)] == [2, 4]
    meta = json.loads((phema_run / "phema" / "step_000004.json").read_text())
    assert meta["sigma_rels"] == [0.05, 0.1] and meta["family"] == "ddpm"
    last = ck.load_checkpoint(phema_run / "checkpoints" / "step_000004.safetensors")
    # what a resumed run goes on from: the training checkpoint's profiles load without a warning
    fam, _ = ck.family_from_checkpoint(last.path, "cpu")
    warnings = []
    resumed = start(last.config.training, fam, phema_run, last.tensors, 4, warnings.append, writes=False)
    assert not warnings and resumed.keys
    assert all(torch.equal(resumed.profiles[i][k], last.tensors[f"phema.{i}.{k}"]) for i in range(2) for k in resumed.keys)

    assert engine_main(["ema", str(phema_run), "--sigma-rel", "0.07"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["event"] == "result" and result["step"] == 4 and result["snapshots"] == 2
    fam, ckpt = ck.family_from_checkpoint(result["checkpoint"], "cpu")
    assert ckpt.meta["posthoc_ema"]["sigma_rel"] == 0.07 and "optimizers" not in ckpt.meta
    # the base checkpoint's networks, its EMA replaced by the reconstruction; no optimizer or random state
    ema_keys = [k for k in ckpt.tensors if k.startswith("ema.")]
    assert ema_keys and any(not torch.equal(ckpt.tensors[k], last.tensors[k]) for k in ema_keys)
    assert all(torch.equal(v, last.tensors[k]) for k, v in ckpt.tensors.items() if k.startswith("net."))
    assert all(k.startswith(("net.", "ema.")) for k in ckpt.tensors)
    images = fam.sample(2, seed=0)
    assert images.shape[0] == 2 and torch.isfinite(images).all()
    # it is not a training checkpoint: never resumed from, never pruned
    assert [s for s, _ in RunDir(phema_run).checkpoints()] == [2, 4]
    assert [(s, sigma) for s, sigma, _ in reconstructed(phema_run)] == [(4, 0.07)]
    assert engine_main(["ema", str(phema_run), "--sigma-rel", "0.07", "--step", "3"]) == 2
    assert "no snapshot at step 3" in capsys.readouterr().err


def test_a_checkpoint_carries_the_profiles_to_a_resumed_run_and_stale_snapshots_go(tmp_path):
    fam = toy_family()
    ema = PowerEMA(fam, [0.05, 0.10])
    for t in range(1, 6):
        set_weights(fam, [t, -t, 2 * t])
        ema.update(t)
        if t % 2 == 0:
            ema.snapshot(tmp_path, t)
    saved = {k: v.clone() for k, v in ema.state_tensors().items()}
    warnings = []
    resumed = start(SimpleNamespace(posthoc_ema=[0.05, 0.10]), fam, tmp_path, saved, 2, warnings.append, writes=True)
    assert not warnings
    for mine, theirs in zip(resumed.profiles, ema.profiles):
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    # the snapshot of step 4 came after the checkpoint resumed from (step 2): it is written again
    assert [s for s, _ in snapshots(tmp_path)] == [2]
    # other profiles than the config's: they start again, and the run says so
    start(SimpleNamespace(posthoc_ema=[0.05, 0.2]), fam, tmp_path, saved, 2, warnings.append, writes=True)
    assert len(warnings) == 1 and "start again at step 2" in warnings[0]["message"]
    assert start(SimpleNamespace(posthoc_ema=[]), fam, tmp_path, saved, 2, warnings.append, writes=True) is None


def test_with_the_option_off_nothing_is_written(tiny_runs):
    run = tiny_runs["ddpm"]
    assert not run.config.training.posthoc_ema
    assert not (run.result.run_dir / "phema").exists()
    assert not any(k.startswith("phema.") for k in ck.load_checkpoint(run.checkpoint).tensors)


def test_the_last_step_and_a_stop_get_a_snapshot_unless_one_was_just_taken(tmp_path, monkeypatch):
    """Snapshots every 2 steps of a 5-step run: step 5 gets one too, holding the profiles the final
    checkpoint carries; a run stopped at step 3 gets one at 3; step 4's (scheduled) is not taken twice."""
    from engine.training.loop import train
    cfg = tiny_family_config("ddpm", steps=5, checkpoint_every=0, posthoc_ema=True, posthoc_ema_every=2)
    res = train(cfg, tmp_path / "end", emit=lambda e: None)
    assert res.state == "finished", res.message
    assert [s for s, _ in snapshots(tmp_path / "end")] == [2, 4, 5]
    last = ck.load_checkpoint(tmp_path / "end" / "checkpoints" / "step_000005.safetensors")
    flat = read_snapshot_tensors(tmp_path / "end" / "phema" / "step_000005.safetensors")
    assert flat and all(torch.equal(v, last.tensors[f"phema.{k}"]) for k, v in flat.items())

    stopped = train(cfg, tmp_path / "stop", emit=lambda e: None, until_step=3)
    assert stopped.state == "stopped" and stopped.step == 3, stopped.message
    assert [s for s, _ in snapshots(tmp_path / "stop")] == [2, 3]
    cfg4 = tiny_family_config("ddpm", steps=4, checkpoint_every=0, posthoc_ema=True, posthoc_ema_every=2)
    written = []
    original = PowerEMA.snapshot
    monkeypatch.setattr(PowerEMA, "snapshot", lambda self, run_dir, step: written.append(step) or original(self, run_dir, step))
    assert train(cfg4, tmp_path / "even", emit=lambda e: None).state == "finished"
    assert written == [2, 4]
