"""The denoising trajectory (engine/family/trajectory.py, IterativeSampler.trajectory, the
`trajectory` op): one entry per solver step, the last x̂0 of a deterministic solver is the sample
itself (the image sampling gives that seed), Cancel stops it between steps."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.family.progress import Cancelled
from engine.ops.base import ModelSession
from engine.ops.trajectory import TrajectoryRequest, run
from tests.conftest import TINY_RES


@pytest.fixture(scope="module")
def ddpm(tiny_runs):
    return ModelSession.load(tiny_runs["ddpm"].checkpoint, "cpu")


@pytest.mark.parametrize("sampler, steps", [("ddim", 4), ("ddpm", 3), ("heun", 3)])
def test_one_entry_per_solver_step(ddpm, sampler, steps):
    fam = ddpm.family
    opts = fam.sample_options(sampler=sampler, steps=steps)
    trajectory, image = fam.trajectory(5, labels=fam.labels_for(1, 2), options=opts)
    solver_steps = len(fam.solver(opts).levels(steps, torch.device("cpu"))) - 1
    assert [s.index for s in trajectory] == list(range(solver_steps))
    assert all(s.x.shape == s.x0.shape == image.shape == (fam.channels, fam.resolution, fam.resolution)
               for s in trajectory)
    sigmas = [s.sigma for s in trajectory]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[0] > sigmas[-1]   # noisiest first
    # the trajectory is of the very image sampling gives with that seed and class
    assert torch.equal(image, fam.sample(1, seed=5, labels=fam.labels_for(1, 2), options=opts)[0])


def test_last_x0_of_a_deterministic_solver_is_the_sample(ddpm):
    fam = ddpm.family
    trajectory, image = fam.trajectory(7, options=fam.sample_options(sampler="ddim", steps=4, eta=0.0))
    assert torch.allclose(trajectory[-1].x0.clamp(-1, 1), image, atol=1e-6)
    assert torch.allclose(trajectory[-1].x.clamp(-1, 1), image, atol=1e-6)
    assert not torch.allclose(trajectory[0].x, image, atol=1e-3)   # the first x_t is still noise


def test_cancel_stops_it_between_steps(ddpm):
    fam = ddpm.family
    seen = []
    with pytest.raises(Cancelled):
        fam.trajectory(1, options=fam.sample_options(sampler="ddim", steps=6),
                       progress=lambda done, total: seen.append(done), cancel=lambda: len(seen) >= 2)
    assert seen == [1, 2]


def test_op_writes_a_png_pair_per_step_and_the_sample(ddpm, tmp_path):
    stages = []
    res = run(ddpm, TrajectoryRequest(out=str(tmp_path / "traj"), seed=3, options={"sampler": "ddim", "steps": 4},
                                      scale=2),
              lambda stage, done, total: stages.append((stage, done, total)), lambda: False)
    assert res.steps == 4 and len(res.x_images) == len(res.x0_images) == len(res.sigmas) == len(res.ts) == 4
    for path in res.x_images + res.x0_images + [res.image]:
        assert Image.open(path).size == (2 * ddpm.family.resolution,) * 2
    assert Image.open(res.x0_images[-1]).tobytes() == Image.open(res.image).tobytes()
    assert stages[-1] == ("trajectory", 4, 4)
    assert res.ts == sorted(res.ts, reverse=True)   # DDPM's timesteps, from T-1 down


def test_a_family_without_steps_is_refused_naming_it(tiny_runs, tmp_path):
    gan = ModelSession.load(tiny_runs["gan"].checkpoint, "cpu")
    with pytest.raises(ValueError, match="gan model has no denoising trajectory"):
        run(gan, TrajectoryRequest(out=str(tmp_path / "t")), lambda *a: None, lambda: False)
    assert not Path(tmp_path / "t").exists()


def test_the_command_writes_the_strip_x_t_above_x0(tiny_runs, tmp_path, capsys):
    """`genlab-engine trajectory`: the op's PNGs and strip.png, one column per step (scale 2, 1 px gaps)."""
    import json

    from engine.cli.main import main
    assert main(["trajectory", "--checkpoint", str(tiny_runs["ddpm"].checkpoint), "--out", str(tmp_path / "t"),
                 "--sampler", "ddim", "--steps", "3", "--scale", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["steps"] == 3 and line["strip"] == str(tmp_path / "t" / "strip.png")
    r = TINY_RES
    strip = Image.open(line["strip"])
    assert strip.size == (2 * (3 * (r + 1) + 1), 2 * (2 * (r + 1) + 1))   # 3 columns, 2 rows, 1 px gaps, x2
    # its bottom-right cell is the last x̂0 (for DDIM, the sample itself)
    x, y = 2 * (1 + 2 * (r + 1)), 2 * (1 + (r + 1))
    last = Image.open(tmp_path / "t" / "x0_0002.png").convert("RGB")
    assert strip.convert("RGB").crop((x, y, x + 2 * r, y + 2 * r)).tobytes() == last.tobytes()
