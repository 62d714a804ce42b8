import dataclasses
import json
import math

import torch

from engine.core.families import FAMILIES
from engine.families.ddpm.model import DDPMFamily
from engine.family.interfaces import Likelihood
from engine.runs.rundir import RunDir, send_control
from engine.training import checkpoint as ck
from engine.training.loop import Trainer, lr_factor, train


def _quiet(events):
    return events.append


def test_tiny_run_lowers_loss_and_writes_run_dir(tmp_path, tiny_cfg):
    events = []
    cfg = tiny_cfg.replace(training={"steps": 60, "checkpoint_every": 30, "sample_every": 30})
    res = train(cfg, tmp_path / "run", emit=events.append)
    assert res.state == "finished" and res.step == 60
    rd = RunDir(tmp_path / "run")
    rows = [json.loads(l) for l in rd.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, *range(5, 61, 5)]   # step 1: the first feedback comes at once
    rows = rows[1:]
    first, last = sum(r["loss/mse"] for r in rows[:2]) / 2, sum(r["loss/mse"] for r in rows[-3:]) / 3
    assert last < 0.6 * first, (first, last)
    assert all(r["img_per_s"] > 0 and r["lr"] > 0 for r in rows)
    assert json.loads(rd.status_path.read_text())["state"] == "finished"
    assert rd.config_path.exists()
    assert sorted(p.name for p in rd.samples_dir.iterdir()) == ["step_000000.png", "step_000030.png", "step_000060.png"]
    assert [s for s, _ in rd.checkpoints()] == [30, 60]
    kinds = [e["event"] for e in events if e["event"] != "phase"]
    assert kinds[0] == "started" and "metrics" in kinds and "checkpoint" in kinds and kinds[-1] == "status"


def test_the_first_loss_point_comes_before_the_step_0_grid_which_shows_the_untrained_model(tmp_path, tiny_cfg):
    """A slow step-0 grid (many sampling steps on a CPU) must not hold the first loss point back:
    the engine says what it does, logs step 1, then draws step 0's grid from the weights it began with."""
    from PIL import Image

    from engine.family.base import build_family
    from engine.family.grid import sample_grid_image
    events = []
    cfg = tiny_cfg.replace(training={"steps": 12, "log_every": 10, "checkpoint_every": 0})
    train(cfg, tmp_path / "run", emit=events.append)
    phases = [e["what"] for e in events if e["event"] == "phase"]
    assert phases[:2] == ["loading data", "building the model"] and "drawing the step-0 sample grid" in phases
    order = [(e["event"], e["step"]) for e in events if e["event"] in ("metrics", "sample")]
    assert order == [("metrics", 1), ("sample", 0), ("metrics", 10), ("metrics", 12), ("sample", 12)]
    # the same picture as a grid drawn from a freshly built (untrained) model with the run's seed
    torch.manual_seed(cfg.training.seed)
    fresh = build_family(cfg, 1, 8, [str(i) for i in range(10)])
    expected = sample_grid_image(fresh, cfg.sampling.grid_size, seed=cfg.sampling.seed, use_ema=True,
                                 options=cfg.sampling)
    got = Image.open(RunDir(tmp_path / "run").sample_path(0))
    import numpy as np
    assert np.array_equal(np.asarray(got), np.asarray(expected))
    trained = Image.open(RunDir(tmp_path / "run").sample_path(12))
    assert not np.array_equal(np.asarray(got), np.asarray(trained))


def test_checkpoint_round_trip_is_bit_exact(tmp_path, tiny_cfg):
    res = train(tiny_cfg.replace(training={"steps": 10}), tmp_path / "run", emit=lambda e: None)
    ckpt = ck.load_checkpoint(res.last_checkpoint)
    fam, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    for k, v in fam.networks.state_dict().items():
        assert torch.equal(v, ckpt.tensors[f"net.{k}"])
    for k, v in fam.ema.state_dict().items():
        assert torch.equal(v, ckpt.tensors[f"ema.{k}"])
    # saving again gives the same bytes for the same tensors
    stem = tmp_path / "copy" / "step_000010"
    ck.save_checkpoint(stem, ckpt.tensors, {k: v for k, v in ckpt.meta.items() if k not in ("format", "version")})
    assert (tmp_path / "copy" / "step_000010.safetensors").read_bytes() == res.last_checkpoint.read_bytes()
    again = ck.load_checkpoint(stem)
    assert again.meta == ckpt.meta and all(torch.equal(again.tensors[k], v) for k, v in ckpt.tensors.items())


def test_resume_equals_uninterrupted_run(tmp_path, tiny_cfg):
    cfg = tiny_cfg.replace(training={"steps": 20, "checkpoint_every": 0}, data={"hflip": True},
                           model={"dropout": 0.1})
    full = Trainer(cfg, tmp_path / "a", emit=lambda e: None)
    assert full.run().state == "finished"
    part = Trainer(cfg, tmp_path / "b", emit=lambda e: None)
    r = part.run(until_step=11)
    assert r.state == "stopped" and r.step == 11
    resumed = Trainer(cfg, tmp_path / "b", resume=True, emit=lambda e: None)
    assert resumed.run().state == "finished"
    for name in ("networks", "ema"):
        a, b = getattr(full.family, name).state_dict(), getattr(resumed.family, name).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs after resume"
    oa, ob = full.optimizers["unet"].state_dict(), resumed.optimizers["unet"].state_dict()
    assert all(torch.equal(oa["state"][0][k], ob["state"][0][k]) for k in oa["state"][0])
    # the curve of the resumed run has each step once
    steps = [json.loads(l)["step"] for l in RunDir(tmp_path / "b").metrics_path.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 20


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path, tiny_cfg, monkeypatch):
    original = DDPMFamily.training_step
    calls = {"n": 0}

    def exploding(self, batch, ctx):
        calls["n"] += 1
        if calls["n"] > 13:  # from step 14 on, the loss (and so the weights) become NaN
            loss = self.networks["unet"](batch.images, torch.zeros(len(batch.images), dtype=torch.long)).mean() * math.nan
            ctx.optimize("unet", loss)
            return {"loss": loss}
        return original(self, batch, ctx)

    monkeypatch.setattr(DDPMFamily, "training_step", exploding)
    events = []
    res = train(tiny_cfg.replace(training={"steps": 40, "checkpoint_every": 5, "log_every": 5}),
                tmp_path / "run", emit=events.append)
    assert res.state == "failed"
    assert "NaN" in res.message and "step_000010" in res.message
    rd = RunDir(tmp_path / "run")
    status = json.loads(rd.status_path.read_text())
    assert status["state"] == "failed" and "NaN" in status["message"]
    assert [s for s, _ in rd.checkpoints()] == [5, 10]  # nothing saved after the NaN
    good = ck.load_checkpoint(rd.latest_checkpoint())
    assert all(torch.isfinite(v).all() for k, v in good.tensors.items() if v.is_floating_point())
    assert events[-1]["event"] == "error"


def test_control_file_pause_resume_stop(tmp_path, tiny_cfg):
    run = tmp_path / "run"
    seen = []

    def emit(ev):
        seen.append(ev)
        if ev["event"] == "metrics" and ev["step"] == 10:
            send_control(run, "pause")
        if ev["event"] == "status" and ev["state"] == "paused":
            send_control(run, "sample-now")
            send_control(run, "resume")
        if ev["event"] == "status" and ev["state"] == "running" and any(
                e["event"] == "status" and e["state"] == "paused" for e in seen):
            send_control(run, "stop")

    (run).mkdir()
    (run / "config.toml").write_text("")  # send_control only needs the folder
    res = train(tiny_cfg.replace(training={"steps": 100, "checkpoint_every": 0}), run, emit=emit)
    states = [e["state"] for e in seen if e["event"] == "status"]
    assert states[:3] == ["running", "paused", "running"] and states[-1] == "stopped"
    assert res.state == "stopped" and 10 <= res.step < 100
    assert RunDir(run).latest_checkpoint() is not None  # stopping saves
    assert any(e["event"] == "sample" and e["step"] >= 10 for e in seen)


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10, 0.1) == 0.1
    assert lr_factor(9, 100, 10, 0.1) == 1.0
    assert abs(lr_factor(10, 100, 10, 0.1) - 1.0) < 1e-9
    assert abs(lr_factor(100, 100, 10, 0.1) - 0.1) < 1e-9
    vals = [lr_factor(s, 100, 10, 0.1) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_failed_config_device_is_reported(tmp_path, tiny_cfg):
    if torch.cuda.is_available():
        return
    res = train(tiny_cfg.replace(training={"device": "cuda"}), tmp_path / "r", emit=lambda e: None)
    assert res.state == "failed" and "no CUDA GPU" in res.message


def test_metrics_during_training_are_logged(tmp_path, tiny_cfg):
    events = []
    cfg = tiny_cfg.replace(training={"steps": 20, "checkpoint_every": 0},
                           metrics={"every": 10, "samples": 40, "sampling_steps": 3, "domain_steps": 20,
                                    "metrics": ["fid", "kid", "pr", "is"]})
    res = train(cfg, tmp_path / "run", emit=events.append)
    assert res.state == "finished"
    rows = [json.loads(l) for l in RunDir(tmp_path / "run").metrics_path.read_text().splitlines()]
    evals = [r for r in rows if "quality/fd_domain" in r]
    assert [r["step"] for r in evals] == [10, 20]
    assert all(r["quality/fd_domain"] >= 0 and 0 <= r["quality/precision_domain"] <= 1 and r["quality/is_domain"] >= 1
               for r in evals)
    assert any(e["event"] == "eval_progress" for e in events)
    assert any(e["event"] == "warning" and "FD-domain" in e["message"] for e in events)
    phases = [e["what"] for e in events if e["event"] == "phase"]
    assert "evaluating at step 10" in phases and "evaluating at step 20" in phases


def test_a_run_shorter_than_the_evaluation_interval_says_so_instead_of_evaluating(tmp_path, tiny_cfg):
    events = []
    cfg = tiny_cfg.replace(training={"steps": 6, "checkpoint_every": 0},
                           metrics={"every": 600, "samples": 40, "sampling_steps": 3, "domain_steps": 20})
    assert train(cfg, tmp_path / "run", emit=events.append).state == "finished"
    rows = [json.loads(l) for l in RunDir(tmp_path / "run").metrics_path.read_text().splitlines()]
    assert not any(k.startswith("quality/") for r in rows for k in r)
    assert not any(e["event"] == "eval_progress" for e in events)   # no feature network was trained
    note = next(e["message"] for e in events if e["event"] == "info" and "no evaluation" in e["message"])
    assert "6 steps" in note and "metrics.every = 600" in note and "Evaluate" in note


class LikelihoodDDPM(DDPMFamily, Likelihood):
    """A DDPM that claims a likelihood: what the loop does with any family implementing Likelihood.
    Its "bits/dim" is the number of images it was given, so the test can see what was asked."""

    def bits_per_dim(self, images, labels):
        assert images.shape[1:] == (1, 8, 8) and len(labels) == len(images)
        return float(images.shape[0])


def test_bits_per_dim_is_logged_when_the_family_has_a_likelihood(tmp_path, tiny_cfg, monkeypatch):
    spec = FAMILIES.get("ddpm")
    monkeypatch.setitem(FAMILIES._specs, "ddpm",
                        dataclasses.replace(spec, impl="tests.engine.test_training:LikelihoodDDPM"))
    cfg = tiny_cfg.replace(training={"steps": 10, "checkpoint_every": 0},
                           metrics={"every": 10, "samples": 30, "sampling_steps": 2, "domain_steps": 10,
                                    "metrics": ["fid"]})
    assert train(cfg, tmp_path / "run", emit=lambda e: None).state == "finished"
    rows = [json.loads(l) for l in RunDir(tmp_path / "run").metrics_path.read_text().splitlines()]
    ev = [r for r in rows if "quality/fd_domain" in r]
    assert ev and ev[-1]["quality/bits_per_dim"] == 30 and ev[-1]["bpd_split"] == "training"
    # with images held out, bits/dim is measured on them; with only bpd asked, no samples are scored
    cfg = cfg.replace(data={"holdout": 0.1}, metrics={"metrics": ["bpd"], "samples": 500})
    events = []
    assert train(cfg, tmp_path / "run2", emit=events.append).state == "finished"
    started = next(e for e in events if e["event"] == "started")
    assert started["images"] == 1797 - 180  # the held-out tenth never trains
    row = [json.loads(l) for l in RunDir(tmp_path / "run2").metrics_path.read_text().splitlines()][-1]
    assert row["bpd_split"] == "held-out" and row["bpd_images"] == 180 and row["quality/bits_per_dim"] == 180
    assert not any(k.startswith("quality/f") for k in row)
