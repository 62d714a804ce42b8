"""The helpers behind benchmarks/efficiency.py --switches and benchmarks/diffusers_sampling.py: a
speed switch changes how a training step runs, never what it computes, and the diffusers UNet the
side-by-side benchmarks compare against is the same size as ours."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.conftest import ROOT


def _bench_module(name: str):
    """A benchmark script as a module (its `from common import ...` needs benchmarks/ on the path)."""
    path = str(ROOT / "benchmarks")
    sys.path.insert(0, path)
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(path)


@pytest.fixture(scope="module")
def efficiency():
    return _bench_module("efficiency")


def test_an_optimizer_rebuilt_for_foreach_or_fused_keeps_its_hyperparameters(efficiency):
    params = [torch.nn.Parameter(torch.randn(3, 3)), torch.nn.Parameter(torch.randn(3))]
    opt = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}],
                            lr=0.01, weight_decay=0.1, betas=(0.5, 0.9))
    for impl in ("foreach", "fused"):
        new = efficiency.with_implementation(opt, impl)
        assert type(new) is torch.optim.AdamW
        assert [g["lr"] for g in new.param_groups] == [0.01, 0.5]
        assert all(g["weight_decay"] == 0.1 and g["betas"] == (0.5, 0.9) and g[impl] for g in new.param_groups)
        assert [p for g in new.param_groups for p in g["params"]] == params


def test_every_switch_takes_the_default_paths_steps(efficiency, tiny_cfg):
    """Same weights, batch and generator: two steps give the default path's losses to float
    rounding under every switch (so the optimizer kept its hyper-parameters, and channels-last
    computes the same convolutions)."""
    losses = {}
    for switch in efficiency.SWITCHES:
        _, _, step = efficiency.preset_step("tiny", torch.device("cpu"), switch, cfg=tiny_cfg)
        losses[switch] = [efficiency.first_loss(step()) for _ in range(2)]
    assert losses["default"][0] != losses["default"][1]   # the first step moved the weights
    for switch, values in losses.items():
        assert values == pytest.approx(losses["default"], rel=1e-5), switch


def test_the_diffusers_unet_has_the_ddpm_digits_parameter_count():
    pytest.importorskip("diffusers")
    from engine.core.config import load_preset
    from engine.family.base import build_family
    common = _bench_module("common")
    cfg = load_preset("ddpm-digits")
    fam = build_family(cfg, 1, cfg.data.resolution, [str(i) for i in range(10)])
    theirs = common.diffusers_unet(cfg)
    assert sum(p.numel() for p in theirs.parameters()) == fam.num_parameters() == 1_114_209
