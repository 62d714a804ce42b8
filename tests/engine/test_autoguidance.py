"""Autoguidance (engine/diffusion/autoguidance.py, engine/ops/guide.py): the same checkpoint as
guide is unguided sampling, scale 1 is the main model and scale 0 the guide, an earlier checkpoint
of the run moves the samples, and a guide that cannot guide is refused in one line."""
from __future__ import annotations

import pytest
import torch

from engine.diffusion.autoguidance import AutoGuided
from engine.diffusion.denoise import Denoiser
from engine.diffusion.levels import DiscreteVP
from engine.diffusion.schedules import make_schedule
from engine.ops.base import ModelSession
from engine.ops.guide import with_guide
from engine.ops.sample import SampleRequest, run as run_sample
from engine.training.loop import train
from tests.conftest import tiny_family_config


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """An earlier (step 2) and a later (step 4) checkpoint of one tiny unconditional DDPM run."""
    root = tmp_path_factory.mktemp("autoguide")
    cfg = tiny_family_config("ddpm", steps=4, checkpoint_every=2).replace(model={"class_conditional": False})
    res = train(cfg, root / "run", emit=lambda e: None)
    assert res.state == "finished", res.message
    early = root / "run" / "checkpoints" / "step_000002.safetensors"
    assert early.is_file()
    return ModelSession.load(res.last_checkpoint, "cpu"), early


def sample(fam, options, n=3):
    return lambda f: f.sample(n, seed=11, options=options)


def test_the_wrapper_is_the_formula():
    levels = DiscreteVP(make_schedule("cosine", 20)["alphas_cumprod"], "linspace")
    lv = levels.level(7)
    x = torch.randn(2, 1, 4, 4)
    main = Denoiser(lambda x, t: 0.5 * x, scalar_cond=True)
    guide = Denoiser(lambda x, t: -x, scalar_cond=True)
    m, g = main.predict(x, lv), guide.predict(x, lv)
    got = AutoGuided(main, guide, 2.5).predict(x, lv)
    assert torch.allclose(got.x0, g.x0 + 2.5 * (m.x0 - g.x0)) and torch.allclose(got.eps, g.eps + 2.5 * (m.eps - g.eps))
    assert torch.allclose(lv.alpha * got.x0 + lv.sigma * got.eps, x, atol=1e-5)   # still a consistent pair


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_the_same_checkpoint_as_guide_is_unguided_sampling(two_checkpoints, sampler):
    session, _ = two_checkpoints
    fam = session.family
    opts = fam.sample_options(sampler=sampler, steps=4)
    plain = sample(fam, opts)(fam)
    guided = with_guide(fam, str(session.checkpoint), 3.0, opts, sample(fam, opts))
    assert torch.allclose(guided, plain, atol=1e-6)


def test_scale_one_is_the_main_model_and_zero_the_guide(two_checkpoints):
    session, early = two_checkpoints
    fam = session.family
    opts = fam.sample_options(sampler="ddim", steps=4)
    plain = sample(fam, opts)(fam)
    assert torch.allclose(with_guide(fam, str(early), 1.0, opts, sample(fam, opts)), plain, atol=1e-5)
    guide_alone = sample(fam, opts)(ModelSession.load(early, "cpu").family)
    assert torch.allclose(with_guide(fam, str(early), 0.0, opts, sample(fam, opts)), guide_alone, atol=1e-5)
    guided = with_guide(fam, str(early), 2.0, opts, sample(fam, opts))
    assert not torch.allclose(guided, plain, atol=1e-3)   # the earlier checkpoint does guide


def test_the_sample_op_takes_the_guide_and_records_it(two_checkpoints, tmp_path):
    session, early = two_checkpoints
    req = SampleRequest(out=str(tmp_path / "g.png"), n=2, seed=4, options={"steps": 3}, guide_checkpoint=str(early),
                        autoguidance_scale=2.0)
    res = run_sample(session, req, lambda *a: None, lambda: False)
    from engine.core.pnginfo import read_png_info
    info = read_png_info(res.path)
    assert info["guide_checkpoint"] == str(early) and info["autoguidance_scale"] == 2.0


def one_line(e) -> str:
    text = str(e.value)
    assert "\n" not in text, text
    return text


def test_a_missing_guide_is_refused_in_one_line(two_checkpoints, tmp_path):
    session, _ = two_checkpoints
    fam = session.family
    with pytest.raises(ValueError) as e:
        with_guide(fam, str(tmp_path / "nope.safetensors"), 2.0, fam.sample_options(), sample(fam, None))
    assert "nope.safetensors: not found" in one_line(e)


def test_a_guide_of_another_family_is_refused_in_one_line(two_checkpoints, tiny_runs):
    session, _ = two_checkpoints
    fam = session.family
    other = tiny_runs["gan"].checkpoint
    with pytest.raises(ValueError) as e:
        with_guide(fam, str(other), 2.0, fam.sample_options(), sample(fam, None))
    text = one_line(e)
    assert str(other) in text and "it is a gan model, the main model a ddpm" in text


def test_a_guide_of_another_data_shape_or_schedule_is_refused_in_one_line(two_checkpoints, tmp_path):
    session, _ = two_checkpoints
    fam = session.family
    for overrides, why in [({"data": {"dataset": "digits", "resolution": 16}}, "its images are 1×16×16"),
                           ({"model": {"class_conditional": False, "timesteps": 30}}, "noise schedule differs")]:
        cfg = tiny_family_config("ddpm", steps=1).replace(**overrides)
        res = train(cfg, tmp_path / why[:8], emit=lambda e: None)
        with pytest.raises(ValueError) as e:
            with_guide(fam, str(res.last_checkpoint), 2.0, fam.sample_options(), sample(fam, None))
        assert why in one_line(e)
