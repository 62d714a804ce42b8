import torch

from engine.family.base import build_family
from engine.diffusion.denoise import Denoiser, denoise
from engine.family.progress import Cancelled
from engine.diffusion.levels import spaced_timesteps
from engine.diffusion.solvers import build_solver
from engine.diffusion.schedules import make_schedule
from tests.conftest import tiny_config


def _family():
    torch.manual_seed(0)
    fam = build_family(tiny_config(), 1, 8, [str(i) for i in range(10)])
    # perturb the zero-initialised output layers so the network is not trivially zero
    with torch.no_grad():
        for p in fam.ema.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return fam


def test_ddim_eta0_is_deterministic_and_seeded():
    fam = _family()
    kw = dict(labels=[1, 2, 3, 4], sampler="ddim", steps=8, eta=0.0, guidance_scale=2.0)
    a = fam.sample(4, seed=5, **kw)
    b = fam.sample(4, seed=5, **kw)
    c = fam.sample(4, seed=6, **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 1, 8, 8) and a.min() >= -1 and a.max() <= 1


def test_ddim_eta0_uses_no_fresh_noise():
    """With eta = 0 the result depends only on x_T: a generator in any state gives the same images."""
    sched = make_schedule("cosine", 50)["alphas_cumprod"]
    eps = lambda x, t: 0.3 * x + 0.01 * t.view(-1, 1, 1, 1)
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    den = Denoiser(eps)

    def run(eta, seed):
        return denoise(den, build_solver("ddim", sched, eta=eta), x_T, 10, generator=torch.Generator().manual_seed(seed))
    a, b = run(0.0, 1), run(0.0, 2)
    assert torch.equal(a, b)
    c = run(1.0, 2)
    assert not torch.equal(a, c)


def test_ddpm_sampler_and_progress_and_cancel():
    fam = _family()
    seen = []
    out = fam.sample(3, seed=1, sampler="ddpm", steps=6, progress=lambda d, t: seen.append((d, t)))
    assert out.shape == (3, 1, 8, 8) and seen[-1] == (6, 6)
    try:
        fam.sample(2, seed=1, steps=6, cancel=lambda: True)
        raise AssertionError("expected Cancelled")
    except Cancelled:
        pass


def test_respacing_and_schedules():
    assert spaced_timesteps(1000, 1000) == list(range(999, -1, -1))
    ts = spaced_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50
    for kind in ("linear", "cosine"):
        ab = make_schedule(kind, 1000)["alphas_cumprod"]
        assert (ab[1:] < ab[:-1]).all() and ab[0] > 0.99 and ab[-1] < 0.01


def test_guidance_uses_class_labels():
    fam = _family()
    a = fam.sample(2, seed=0, labels=[1, 1], steps=4, guidance_scale=3.0)
    b = fam.sample(2, seed=0, labels=[7, 7], steps=4, guidance_scale=3.0)
    assert not torch.equal(a, b)


def test_heun_samples_end_to_end_and_counts_its_network_evaluations():
    """Heun (EDM's 2nd order) as a DDPM sampler: deterministic, its own images, and two UNet passes
    per step but the last, each doubled under guidance (the rows the UNet sees per image)."""
    fam = _family()
    rows = []
    hook = fam.nets(True)["unet"].register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    try:
        outs = {}
        for sampler, guidance in (("heun", 2.0), ("heun", 1.0), ("ddim", 2.0), ("ddpm", 1.0)):
            opts = fam.sample_options(sampler=sampler, steps=6, guidance_scale=guidance)
            rows.clear()
            outs[sampler, guidance] = fam.sample(2, seed=3, labels=[1, 2], options=opts)
            assert sum(rows) == 2 * fam.network_evaluations(opts), (sampler, guidance)
        assert fam.network_evaluations(fam.sample_options(sampler="heun", steps=6, guidance_scale=1.0)) == 11
    finally:
        hook.remove()
    heun = outs["heun", 2.0]
    assert heun.shape == (2, 1, 8, 8) and torch.isfinite(heun).all() and heun.abs().max() <= 1
    assert torch.equal(heun, fam.sample(2, seed=3, labels=[1, 2], sampler="heun", steps=6, guidance_scale=2.0))
    assert not torch.equal(heun, outs["ddim", 2.0])
