"""Training conformance of every family and preset: resuming from a checkpoint continues exactly
the run that was never stopped, every preset trains at a tiny size, and every value a family
declares for the GUI's plots and Training panel is actually logged. Parametrized over the
registries (engine/core/families.py, resources/presets); nothing here names a family or a preset."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from engine.core.config import list_presets, load_preset
from engine.core.families import FAMILIES, PlotGroup, family_spec
from engine.core.logkeys import QUALITY
from engine.core.schema import ConfigError
from engine.runs.rundir import RunDir
from engine.training.loop import Trainer, train
from tests.conftest import TINY_RES, family_cases, tiny_family_config, tiny_parent_fields

# the loop's own bookkeeping: clock readings, which differ between any two runs
CLOCK_KEYS = {"time", "elapsed_s", "img_per_s", "eta_s", "eval_s"}


def rows_of(run_dir) -> list[dict]:
    return [json.loads(line) for line in RunDir(run_dir).metrics_path.read_text().splitlines()]


def assert_same_state(a: dict, b: dict, where: str) -> None:
    """Two state_dicts (networks, EMA or optimizer, nested), tensors compared bit for bit."""
    assert a.keys() == b.keys(), f"{where}: {sorted(a)} != {sorted(b)}"
    for k in a:
        va, vb = a[k], b[k]
        if torch.is_tensor(va):
            assert torch.is_tensor(vb) and torch.equal(va, vb), f"{where}.{k} differs"
        elif isinstance(va, dict):
            assert_same_state(va, vb, f"{where}.{k}")
        elif isinstance(va, (list, tuple)) and any(isinstance(x, dict) for x in va):
            assert len(va) == len(vb), f"{where}.{k}"
            for i, (xa, xb) in enumerate(zip(va, vb)):
                assert_same_state(xa, xb, f"{where}.{k}[{i}]")
        else:  # hyperparameters (a checkpoint keeps tuples such as betas as lists)
            plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
            assert plain(va) == plain(vb), f"{where}.{k}: {va!r} != {vb!r}"


# ---- resume ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", family_cases())
def test_resume_equals_uninterrupted_training_bit_for_bit(name, tmp_path):
    """Train 4 steps straight, and 2 steps, stop (a checkpoint), resume to 4: the same weights, EMA,
    optimizer state and logged values, bit for bit on the CPU (mirrored images draw random numbers
    too, so the data order and augmentation must resume as well)."""
    cfg = tiny_family_config(name, steps=4).replace(data={"hflip": True})
    full = Trainer(cfg, tmp_path / "straight", emit=lambda e: None)
    assert full.run().state == "finished"
    part = Trainer(cfg, tmp_path / "resumed", emit=lambda e: None)
    stopped = part.run(until_step=2)
    assert stopped.state == "stopped" and stopped.step == 2, stopped.message
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True, emit=lambda e: None)
    done = resumed.run()
    assert done.state == "finished" and done.step == 4, done.message

    a, b = full.family, resumed.family
    assert_same_state(a.networks.state_dict(), b.networks.state_dict(), f"{name} networks")
    assert (a.ema is None) == (b.ema is None)
    if a.ema is not None:
        assert_same_state(a.ema.state_dict(), b.ema.state_dict(), f"{name} ema")
    assert full.optimizers.keys() == resumed.optimizers.keys()
    for opt in full.optimizers:
        assert_same_state(full.optimizers[opt].state_dict(), resumed.optimizers[opt].state_dict(),
                          f"{name} optimizer {opt}")

    straight, again = rows_of(tmp_path / "straight"), rows_of(tmp_path / "resumed")
    assert [r["step"] for r in straight] == [r["step"] for r in again] == [1, 2, 3, 4]
    for ra, rb in zip(straight, again):
        logged = {k: v for k, v in ra.items() if k not in CLOCK_KEYS}
        assert logged == {k: v for k, v in rb.items() if k not in CLOCK_KEYS}, f"{name}, step {ra['step']}"


# ---- presets -----------------------------------------------------------------------------------
def tiny_preset(preset: str):
    """The preset as written, at its family's TINY size on 8x8 digits: two steps of batch 8 on the
    CPU, no evaluation, a small grid."""
    cfg = load_preset(preset)
    tiny = family_spec(cfg.model.family).config.TINY
    return cfg.replace(data={"dataset": "digits", "resolution": TINY_RES},
                       model={**tiny.get("model", {}), **tiny_parent_fields(cfg.model.family, cfg.model)},
                       training={"steps": 2, "batch_size": 8, "log_every": 1, "sample_every": 0,
                                 "checkpoint_every": 0, "device": "cpu"},
                       sampling={"grid_size": 4, **tiny.get("sampling", {})},
                       metrics={"every": 0})


class PresetRuns:
    """Each preset's tiny run (its metrics rows), trained on first use: the preset test and the
    plot-key test (a key that only some settings log may be logged by a preset's) share them."""

    def __init__(self, root):
        self.root, self.rows = root, {}

    def __getitem__(self, preset: str) -> list[dict]:
        if preset not in self.rows:
            res = train(tiny_preset(preset), self.root / preset, emit=lambda e: None)
            assert res.state == "finished" and res.step == 2, f"{preset}: {res.message}"
            self.rows[preset] = rows_of(self.root / preset)
        return self.rows[preset]


@pytest.fixture(scope="module")
def preset_runs(tmp_path_factory):
    return PresetRuns(tmp_path_factory.mktemp("tiny-presets"))


@pytest.mark.parametrize("preset", list(list_presets()))
def test_every_preset_trains_two_steps_at_a_tiny_size(preset, preset_runs):
    rows = preset_runs[preset]
    assert [r["step"] for r in rows] == [1, 2]
    for key in family_spec(load_preset(preset).model.family).headline:
        assert all(math.isfinite(r[key]) for r in rows), f"{preset}: {key} = {[r.get(key) for r in rows]}"
    values = {k: v for r in rows for k, v in r.items() if isinstance(v, float)}
    assert all(math.isfinite(v) for v in values.values()), f"{preset}: {values}"


# ---- plotted keys ------------------------------------------------------------------------------
def metrics_logging(keys: list[str]) -> list[str]:
    """The measures (metrics.metrics) whose evaluation pass logs these quality/ keys, by the metric
    registry (a key it does not know asks for every sample measure)."""
    from engine.core.metrics import MEASURES, SAMPLING, measure_names
    found = MEASURES.lookup()
    out = set()
    for k in keys:
        logged = found.get(k[len(QUALITY):])
        out |= {logged.measure.key} if logged is not None else set(measure_names(SAMPLING))
    return sorted(out)


def logs(key: str, name: str) -> bool:
    """Whether a logged value `name` is one a plot key asks for (a name, or a namespace ending in
    '/'), by the rule the GUI's plots use."""
    return PlotGroup(key, key, (key,)).wants(name)


def model_variants(model) -> list[dict]:
    """The [model] section with one choice changed: every other value of each choice field and
    the other value of each switch (the family field aside)."""
    out = []
    for f in dataclasses.fields(model):
        value, choices = getattr(model, f.name), f.metadata.get("choices")
        if f.name == "family":
            continue
        if choices:
            out += [{f.name: c} for c in choices if c != value]
        elif isinstance(value, bool):
            out.append({f.name: not value})
    return out


@pytest.mark.parametrize("name", FAMILIES.names())
def test_every_plotted_and_headline_key_is_logged_by_a_tiny_run(name, tiny_runs, preset_runs, tmp_path):
    """Each key of the family's plots and headline is logged by its tiny run (with an evaluation
    pass for quality/ keys); a key that only some settings log (a GAN's ADA probability) by the
    tiny run of one of its presets, or else by a one-step tiny run with one [model] choice changed."""
    spec = family_spec(name)
    wanted = {f"plot {g.key!r}": list(g.keys) for g in spec.plots}
    wanted["headline"] = list(spec.headline)
    keys = {k for ks in wanted.values() for k in ks}
    rows = list(tiny_runs[name].rows)
    missing = lambda: [k for k in keys if not any(logs(k, n) for r in rows for n in r)]  # noqa: E731
    quality = sorted(k for k in keys if k.startswith(QUALITY))
    if quality:  # an evaluation pass of the metrics that log them
        cfg = tiny_family_config(name).replace(metrics={"every": 2, "metrics": metrics_logging(quality)})
        rows += run_rows(cfg, tmp_path / "evaluated")
    for preset in spec.presets():
        if missing():
            rows += preset_runs[preset]
    probe = tiny_family_config(name, steps=1).replace(sampling={"grid_size": 1})
    for i, change in enumerate(model_variants(probe.model)):
        if not missing():
            break
        try:
            cfg = probe.replace(model=change)
        except ConfigError:
            continue   # a choice that needs other settings too
        rows += run_rows(cfg, tmp_path / f"probe{i}")
    logged = sorted({n for r in rows for n in r})
    for where, ks in wanted.items():
        for key in ks:
            assert any(logs(key, n) for n in logged), f"{name}: {where} wants {key!r}; logged: {logged}"
            assert all(math.isfinite(r[n]) for r in rows for n in r if logs(key, n)), f"{name}: {key} not finite"


def run_rows(cfg, run_dir) -> list[dict]:
    res = train(cfg, run_dir, emit=lambda e: None)
    assert res.state == "finished", f"{cfg.model}: {res.message}"
    return rows_of(run_dir)
