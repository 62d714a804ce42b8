"""Glow / RealNVP: exact invertibility, log-determinants against autograd's Jacobian, ActNorm's data
init (and that a restored model keeps it), bits/dim on uniform noise, both 1x1 convolutions, both
coupling masks, and the config's resolution rules."""
import math

import pytest
import torch

from engine.core.config import ConfigError, RunConfig, load_preset
from engine.nn.likelihood import to_levels
from engine.family.base import StepContext, build_family
from engine.family.base import Batch
from engine.families.glow.model import MultiScaleFlow
from engine.families.glow.layers import ActNorm, Coupling, InvConv1x1
from engine.training.loop import train

PARTS = [("channel", "lu", "affine"), ("channel", "plain", "additive"), ("checkerboard", "none", "affine"),
         ("checkerboard", "lu", "additive")]


def flow_config(res=8, **model):
    return RunConfig(name="f").replace(
        data={"dataset": "digits", "resolution": res},
        model={"family": "glow", "levels": 2, "steps_per_level": 2, "hidden_channels": 8, **model},
        training={"steps": 12, "batch_size": 16, "lr": 2e-3, "warmup_steps": 0, "log_every": 1, "sample_every": 0,
                  "checkpoint_every": 0, "device": "cpu", "ema_decay": 0.9},
        sampling={"grid_size": 4})


def family_for(cfg):
    return build_family(cfg, 1, cfg.data.resolution, [str(i) for i in range(10)])


def scrambled_flow(channels=1, res=8, levels=2, *, mask="channel", conv="lu", coupling="affine", num_classes=3,
                   dtype=torch.float32, seed=0):
    """A flow whose every parameter is moved off its init (zero-initialised couplings and priors
    would make most layers the identity and the checks trivial)."""
    torch.manual_seed(seed)
    f = MultiScaleFlow(channels, res, levels=levels, steps=2, hidden=8, coupling=coupling, mask=mask,
                       invertible_conv=conv, num_classes=num_classes).to(dtype)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return f


@pytest.mark.parametrize("mask,conv,coupling", PARTS)
def test_x_to_z_to_x_round_trip_is_exact_in_float32(mask, conv, coupling):
    f = scrambled_flow(mask=mask, conv=conv, coupling=coupling)
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    f.data_init(x, labels)
    for t in (1.0, 0.7):
        eps = f.encode(x, labels, t)
        assert eps.shape == (6, 64)
        assert (f.decode(eps, labels, t) - x).abs().max() < 1e-4


@pytest.mark.parametrize("mask,conv,coupling", PARTS)
def test_log_determinant_equals_autograd_jacobian(mask, conv, coupling):
    # 2 channels at 4x4 (32 dims); with channel masks two levels, so the split is in the map too
    levels = 2 if mask == "channel" else 1   # checkerboard needs 2x2 pixels at the last level
    f = scrambled_flow(channels=2, res=4, levels=levels, mask=mask, conv=conv, coupling=coupling, num_classes=0,
                       dtype=torch.float64)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        logdet = f(x)[3]

    def z_of(image):   # one image (2, 4, 4) -> all levels' z, flattened (32,)
        zs = f(image.unsqueeze(0))[0]
        return torch.cat([z.flatten() for z in zs])

    for i in range(3):
        jac = torch.autograd.functional.jacobian(z_of, x[i])
        sign, logabs = torch.linalg.slogdet(jac.reshape(32, 32))
        assert sign != 0 and abs(float(logabs - logdet[i])) < 1e-8, (float(logabs), float(logdet[i]))


def test_actnorm_data_init_gives_zero_mean_and_unit_variance_per_channel():
    torch.manual_seed(0)
    x = torch.randn(16, 3, 5, 5) * torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1) + \
        torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1)
    layer = ActNorm(3)
    layer.init_from_data = True
    y, logdet = layer(x)
    assert bool(layer.initialized)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(logdet, torch.full((16,), 25 * float(layer.log_scale.detach().sum())))
    assert torch.allclose(layer.reverse(y), x, atol=1e-5)

    # the whole flow: every ActNorm's output is normalized on the batch it was initialised with
    f = scrambled_flow()
    outputs = []
    hooks = [a.register_forward_hook(lambda m, i, o: outputs.append(o[0])) for a in f.actnorms()]
    f.data_init(torch.rand(32, 1, 8, 8) * 2 - 1, torch.arange(32) % 3)
    for h in hooks:
        h.remove()
    assert len(outputs) == 4 and f.is_initialized()
    for y in outputs:
        assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(y.shape[1]), atol=1e-5)
        assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(y.shape[1]), atol=1e-4)


def test_first_training_step_initialises_actnorm_once_and_a_restored_model_keeps_it():
    cfg = flow_config()
    fam = family_for(cfg)
    ctx = StepContext(torch.device("cpu"), torch.Generator().manual_seed(0), fam.make_optimizers())
    first = Batch(torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 10)
    assert not fam.networks["flow"].is_initialized()
    fam.training_step(first, ctx)
    assert fam.networks["flow"].is_initialized() and fam.ema["flow"].is_initialized()
    state = {k: v.clone() for k, v in fam.networks.state_dict().items()}

    restored = family_for(cfg)               # as a resumed run builds it, then loads the checkpoint
    restored.networks.load_state_dict(state)
    restored.init_ema()
    ctx2 = StepContext(torch.device("cpu"), torch.Generator().manual_seed(0), restored.make_optimizers(), grad_clip=0.0)
    for group in ctx2.optimizers["flow"].param_groups:
        group["lr"] = 0.0                     # the step changes nothing, unless ActNorm re-initialises
    other = Batch(torch.rand(16, 1, 8, 8) * 0.2 + 0.5, torch.arange(16) % 10)   # very different statistics
    restored.training_step(other, ctx2)
    for k, v in restored.networks.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_bits_per_dim_of_an_untrained_flow_on_uniform_noise_is_8_plus_the_gaussian_gap():
    # Uniform 8-bit noise has exactly 8 bits/dim. An untrained flow (every coupling the identity,
    # every 1x1 conv a rotation, every prior N(0, I)) whose ActNorms were initialised on the noise
    # is the Gaussian with the noise's variance, and a Gaussian fitted to uniform data costs exactly
    # KL(uniform || Gaussian) = 0.5 * log2(pi * e / 6) = 0.2546 bits/dim more. What the finite batch
    # changes is the variance ActNorm measures: over 16k values its standard error moves the result by
    # about 0.005 bits (8.247 here), so 0.02 is four standard errors.
    fam = family_for(flow_config(class_conditional=False))
    g = torch.Generator().manual_seed(1)
    levels = torch.randint(0, 256, (256, 1, 8, 8), generator=g)
    images = levels.float() / 127.5 - 1
    assert torch.equal(to_levels(images), levels)
    fam.networks["flow"].data_init(images + (torch.rand(images.shape, generator=g) * 2 - 1) / 255)
    fam.init_ema()
    bpd = fam.bits_per_dim(images, torch.zeros(256, dtype=torch.long))
    gap = 0.5 * math.log2(math.pi * math.e / 6)
    assert 8.0 < bpd and abs(bpd - (8.0 + gap)) < 0.02, bpd


@pytest.mark.parametrize("seed", [0, 1])
def test_lu_and_plain_1x1_convs_are_invertible_with_matching_logdets(seed):
    torch.manual_seed(seed)
    lu = InvConv1x1(6, lu=True)
    with torch.no_grad():
        for p in lu.parameters():
            p.add_(0.3 * torch.randn_like(p))
    plain = InvConv1x1(6, lu=False)
    x = torch.randn(4, 6, 3, 5)
    with torch.no_grad():
        w, lu_logdet = lu.weight_and_logdet()
        plain.weight.copy_(w)
        y_lu, ld_lu = lu(x)
        y_plain, ld_plain = plain(x)
    assert torch.allclose(y_lu, y_plain, atol=1e-5)
    assert torch.allclose(ld_lu, ld_plain, atol=1e-4)
    assert torch.allclose(ld_lu, torch.full((4,), 15 * float(torch.linalg.slogdet(w.double())[1])), atol=1e-4)
    assert abs(float(lu_logdet)) > 0.1   # the scrambled weight is no longer a rotation
    for layer, y in ((lu, y_lu), (plain, y_plain)):
        with torch.no_grad():
            assert torch.allclose(layer.reverse(y), x, atol=1e-5)


@pytest.mark.parametrize("mask", ["channel", "checkerboard"])
def test_a_coupling_keeps_its_mask_half_and_alternates_with_parity(mask):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 4, 4)
    changed = []
    for parity in (0, 1):
        layer = Coupling(4, 8, mask=mask, parity=parity)
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.3 * torch.randn_like(p))
        y, _ = layer(x)
        diff = (y - x).abs().sum(0)               # (C, H, W): which values changed
        changed.append(diff > 1e-6)
        assert torch.allclose(layer.reverse(y), x, atol=1e-5)
        assert changed[-1].float().mean() == 0.5   # exactly half of the values change
    assert torch.equal(changed[0], ~changed[1])   # the other parity changes the other half
    if mask == "channel":
        assert changed[0][2:].all() and not changed[0][:2].any()
    else:
        ij = torch.arange(4).view(-1, 1) + torch.arange(4).view(1, -1)
        assert torch.equal(changed[0], (ij % 2 == 1).expand(4, -1, -1))


@pytest.mark.parametrize("mask,conv", [("channel", "lu"), ("checkerboard", "none")])
def test_both_masks_train_through_the_loop(mask, conv, tmp_path):
    rows = []
    res = train(flow_config(coupling_mask=mask, invertible_conv=conv), tmp_path / "run",
                emit=lambda e: rows.append(e) if e.get("event") == "metrics" else None)
    assert res.state == "finished", res.message
    bpd = [r["loss/bpd"] for r in rows]
    assert len(bpd) == 12 and all(math.isfinite(b) for b in bpd)
    assert sum(bpd[-4:]) < sum(bpd[:4])


def test_temperature_zero_gives_one_image_per_class_and_encoding_inverts_decoding():
    fam = family_for(flow_config())
    fam.networks["flow"].data_init(torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 10)
    with torch.no_grad():
        for p in fam.networks["flow"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    fam.init_ema()
    a = fam.sample(3, seed=0, labels=[4, 4, 4], temperature=0.0)
    assert torch.allclose(a, a[:1].expand_as(a), atol=1e-6)
    x = torch.rand(3, 1, 8, 8) * 1.8 - 0.9
    eps = fam.encode_images(x, [1, 2, 3], options={"temperature": 0.9})
    assert fam.encoding_key({"temperature": 0.9}) == (0.9,)
    back = fam.decode_latents(eps, [1, 2, 3], options={"temperature": 0.9})
    assert (back - x).abs().max() < 1e-4


def test_config_refuses_resolutions_the_levels_cannot_halve():
    with pytest.raises(ConfigError, match="divisible by 8"):
        flow_config(res=12, levels=3)
    with pytest.raises(ConfigError, match="checkerboard"):
        flow_config(res=8, levels=3, coupling_mask="checkerboard")
    flow_config(res=8, levels=3)   # channel masks work down to 1x1


def test_presets_load():
    for name, mask in (("glow-digits", "channel"), ("realnvp-shapes", "checkerboard")):
        cfg = load_preset(name)
        assert cfg.model.family == "glow" and cfg.model.coupling_mask == mask
