"""The family conformance suite: every family in the registry, trained two steps on 8x8 digits
(its config section's TINY overrides), must sample the right shape and range, give the same images
for the same seed, round-trip its checkpoint bit-exactly, advertise exactly the capabilities of the
interfaces it implements, and pass the contract of each of them. A new family gets all of this by
registering (engine/core/families.py); nothing here names a family. The other suites of the kind:
test_family_training.py, test_network_evaluations.py, test_ops_conformance.py, test_light_imports.py and
tests/app/test_canvas_conformance.py."""
from __future__ import annotations

import pytest
import torch

from engine.core.capabilities import Capabilities
from engine.core.families import FAMILIES, family_spec
from engine.family.interfaces import (INTERFACES, Conditional, Inpainter, IterativeSampler, LatentModel, Likelihood,
                                      PixelPredictor, Reconstructor, StyleMixer, Tokenizer)
from engine.family.progress import Cancelled
from engine.core.schema import ConfigError
from engine.core.sections import option_fields
from engine.training import checkpoint as ck
from tests.conftest import TINY_RES

RES = TINY_RES


@pytest.fixture(scope="module", params=FAMILIES.names())
def trained(request, tiny_runs):
    """(family loaded from its checkpoint, the run's result, its metrics rows): the session's tiny
    run of the family (tests/conftest.py), shared with the other conformance suites."""
    run = tiny_runs[request.param]
    fam, _ = ck.family_from_checkpoint(run.checkpoint, "cpu")
    return fam, run.result, run.rows


def res_path(trained):
    return trained[1].last_checkpoint


def implements(fam, iface) -> bool:
    return isinstance(fam, iface)


# ---- every family ----------------------------------------------------------------------------
def test_trains_and_logs_its_headline_losses_under_namespaces(trained):
    fam, res, rows = trained
    assert res.step == 2 and [r["step"] for r in rows] == [1, 2]
    spec = family_spec(fam.name)
    for key in spec.headline:
        assert all(key in r and torch.isfinite(torch.tensor(r[key])) for r in rows), key
    loop_keys = {"step", "time", "elapsed_s", "lr", "img_per_s", "eta_s"}
    assert all("/" in k for r in rows for k in r if k not in loop_keys), "family values need a namespace"


def test_samples_right_shape_and_range_and_same_seed_same_images(trained):
    fam, _, _ = trained
    a, b = fam.sample(3, seed=4), fam.sample(3, seed=4)
    assert a.shape == (3, fam.channels, RES, RES) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, fam.sample(3, seed=5))


def test_image_i_of_a_batch_is_the_image_of_seed_plus_i_alone(trained):
    """The Family.generate contract: a batch draws each image's noise from its own seed, so a
    gallery's "use this seed" gives the image again without drawing one image at a time."""
    fam, _, _ = trained
    batch = fam.sample(4, seed=20, labels=fam.labels_for(4))
    for i in range(4):
        alone = fam.sample(1, seed=20 + i, labels=None if fam.labels_for(4) is None else fam.labels_for(4)[i:i + 1])
        assert (alone[0] - batch[i]).abs().max() < 1e-3, f"image {i}"
    assert not torch.equal(batch[0], batch[1])


def test_checkpoint_round_trip_is_bit_exact(trained):
    fam, res, _ = trained
    ckpt = ck.load_checkpoint(res.last_checkpoint)
    for prefix, nets in (("net.", fam.networks), ("ema.", fam.ema)):
        saved = ckpt.prefixed(prefix)
        for k, v in (nets.state_dict().items() if nets is not None else []):
            assert torch.equal(saved[k], v.cpu()), f"{prefix}{k}"
    again, _ = ck.family_from_checkpoint(res.last_checkpoint, "cpu")
    assert torch.equal(again.sample(2, seed=1), fam.sample(2, seed=1))


def test_capabilities_are_the_interfaces_it_implements(trained):
    fam, _, _ = trained
    caps = fam.capabilities()
    assert caps.family == fam.name and caps.resolution == RES and caps.channels == fam.channels
    for iface, (attr, _) in INTERFACES.items():
        record = getattr(caps, attr)
        if iface is Conditional:  # implemented by the class; offered when this instance has labels
            assert (record is not None) == (implements(fam, Conditional) and fam.is_conditional)
        else:
            assert (record is not None) == implements(fam, iface), attr
    assert caps.sampling.steps == implements(fam, IterativeSampler)
    assert caps.sampling.options == [f.name for f in option_fields(type(fam.cfg.sampling))]
    assert Capabilities.from_dict(caps.to_dict()) == caps  # what the GUI receives is the same record


def test_sample_options_are_typed_and_a_foreign_one_is_named(trained):
    fam, _, _ = trained
    with pytest.raises(ConfigError, match="unknown sampling option 'no_such_option'"):
        fam.sample(1, seed=0, no_such_option=1)
    opts = fam.sample_options()
    assert type(opts) is family_spec(fam.name).sample_options


# ---- interface contracts ---------------------------------------------------------------------
def test_latent_model_encode_then_decode_returns_close_to_the_input(trained):
    fam, _, _ = trained
    if not implements(fam, LatentModel):
        pytest.skip(f"{fam.name} has no latent space")
    lat = fam.seed_latents([3, 9])
    assert torch.equal(lat, fam.seed_latents([3, 9]))
    x = fam.decode_latents(lat)                       # images the model can make
    assert x.shape == (2, fam.channels, RES, RES)
    back = fam.decode_latents(fam.encode_images(x, steps=30))
    other = fam.decode_latents(fam.seed_latents([21, 40]))
    assert (back - x).abs().mean() < (other - x).abs().mean()


def test_likelihood_bits_per_dim_is_finite_and_positive(trained):
    fam, _, _ = trained
    if not implements(fam, Likelihood):
        pytest.skip(f"{fam.name} has no likelihood")
    from engine.data import build_dataset
    data = build_dataset(fam.cfg.data)
    bpd = fam.bits_per_dim(data.float_batch(torch.arange(16)), data.labels[:16])
    assert 0 < bpd < 64 and bpd == bpd
    # the evaluate operation (genlab-engine eval --metrics bpd, the Evaluate button) reports it too
    from engine.ops.base import ModelSession, never, no_progress
    from engine.ops.evaluate import EvaluateRequest, run
    res = run(ModelSession(fam, res_path(trained), 2, fam.cfg), EvaluateRequest(n=16, metrics="bpd"), no_progress, never)
    assert 0 < res.scores["bits_per_dim"] < 64 and res.scores["bpd_images"] == 16


def test_inpainter_keeps_unmasked_pixels(trained):
    fam, _, _ = trained
    if not implements(fam, Inpainter):
        pytest.skip(f"{fam.name} does not inpaint")
    x = fam.sample(2, seed=1)
    mask = torch.zeros(2, 1, RES, RES)
    mask[..., : RES // 2, :] = 1
    out = fam.inpaint(x, mask, seeds=[0, 1])
    keep = (mask == 0).expand_as(x)
    assert out.shape == x.shape and torch.allclose(out[keep], x[keep], atol=1e-5)


def test_tokenizer_codes_are_in_the_codebook_one_row_per_image_and_deterministic(trained):
    fam, _, _ = trained
    if not implements(fam, Tokenizer):
        pytest.skip(f"{fam.name} has no codebook")
    x = fam.sample(3, seed=2)
    codes = fam.image_codes(x)
    assert codes.shape[0] == 3 and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < fam.num_codes == fam.capabilities().codebook.size
    assert torch.equal(codes, fam.image_codes(x))


def test_reconstructor_returns_images_of_the_same_shape_deterministically(trained):
    fam, _, _ = trained
    if not implements(fam, Reconstructor):
        pytest.skip(f"{fam.name} does not reconstruct")
    x = fam.sample(3, seed=2)
    rec = fam.reconstruct(x)
    assert rec.shape == x.shape and torch.isfinite(rec).all() and rec.min() >= -1 and rec.max() <= 1
    assert torch.equal(rec, fam.reconstruct(x))


def test_pixel_predictor_levels_sum_to_one_and_give_the_reported_bits_per_dim(trained):
    fam, _, _ = trained
    if not implements(fam, PixelPredictor):
        pytest.skip(f"{fam.name} gives no per-pixel level distributions")
    x = fam.sample(2, seed=3)
    labels = [0, 1] if getattr(fam, "num_classes", 0) else None
    lp = fam.level_log_probs(x, labels)
    assert lp.shape == (2, fam.channels, RES, RES, 256) and torch.isfinite(lp).all()
    assert torch.allclose(lp.exp().sum(-1), torch.ones(()), atol=1e-4)
    levels = ((x.clamp(-1, 1) + 1) * 127.5).round().long()
    nll_bits = -lp.gather(-1, levels.unsqueeze(-1)).sum() / (torch.log(torch.tensor(2.0)) * x[0].numel() * 2)
    bpd = fam.bits_per_dim(x, torch.tensor(labels) if labels else None)
    assert abs(float(nll_bits) - bpd) < 1e-3


def test_style_mixer_takes_the_chosen_layers_from_the_columns(trained):
    fam, _, _ = trained
    if not implements(fam, StyleMixer):
        pytest.skip(f"{fam.name} has no per-layer styles")
    n = len(fam.style_layers())
    groups = fam.style_groups()
    assert sorted(i for g in groups.values() for i in g) == list(range(n))
    rows, cols = fam.seed_latents([1, 2]), fam.seed_latents([3, 4, 5])
    none = fam.style_mix(rows, cols, [])
    every = fam.style_mix(rows, cols, list(range(n)))
    assert none.shape == (3 * 4, fam.channels, RES, RES)
    body = lambda g: g.view(3, 4, *g.shape[1:])[1:, 1:]  # noqa: E731 (rows x cols cells)
    assert torch.allclose(body(none), body(none)[:, :1].expand(-1, 3, -1, -1, -1), atol=1e-5)  # the row's own image
    assert torch.allclose(body(every), body(every)[:1].expand(2, -1, -1, -1, -1), atol=1e-5)  # the column's image


def test_conditional_labels_are_checked_and_cycled(trained):
    fam, _, _ = trained
    if not (implements(fam, Conditional) and fam.is_conditional):
        pytest.skip(f"this {fam.name} model is unconditional")
    k = fam.num_classes
    assert fam.labels_for(k + 2) == list(range(k)) + [0, 1]
    with pytest.raises(ValueError, match="out of range"):
        fam.sample(1, seed=0, labels=[k])
    a, b = fam.sample(2, seed=0, labels=[0, 0]), fam.sample(2, seed=0, labels=[1, 1])
    assert not torch.equal(a, b)
    if fam.null_label() is None:  # a negative label means "no class", the same everywhere
        for ask in (lambda: fam.sample(1, seed=0, labels=[-1]), lambda: fam.labels_for(2, -1)):
            with pytest.raises(ValueError, match="no unconditional mode"):
                ask()
    else:
        assert fam.labels_for(2, -1) == [-1, -1]
        assert torch.equal(fam.sample(2, seed=0, labels=[-1, -1]), fam.sample(2, seed=0, labels=None))


def test_iterative_sampler_steps_progress_and_cancel(trained):
    fam, _, _ = trained
    if not implements(fam, IterativeSampler):
        pytest.skip(f"{fam.name} samples in one pass")
    seen = []
    fam.sample(2, seed=0, steps=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2, 2)
    with pytest.raises(Cancelled):
        fam.sample(2, seed=0, cancel=lambda: True)
    assert fam.capabilities().sampling.solvers
    for solver in fam.capabilities().sampling.solvers:
        assert torch.isfinite(fam.sample(1, seed=0, sampler=solver)).all()
