"""Gated PixelCNN: causality of both stacks (no blind spot), colour ordering, exact and normalised
likelihoods, seeded sampling with progress and cancel, and completion that keeps the given pixels."""
from __future__ import annotations

import pytest
import torch

from engine.core.config import RunConfig
from engine.nn.likelihood import to_levels
from engine.family.base import Batch, StepContext
from engine.families.pixelcnn.model import PixelCNNFamily
from engine.families.pixelcnn.layers import GatedPixelCNN, LogisticMixtureOutput, SoftmaxOutput
from engine.family.progress import Cancelled
from engine.families.pixelcnn.cached import CachedPixelCNN
from engine.families.pixelcnn.levels import inverse_cdf_levels, quick_mixture_levels

CLASSES = ["0", "1", "2"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests run thousands of tiny forward passes: handing each to a second thread costs more
    than it saves, and much more when other processes compete for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_family(output: str = "softmax", *, res: int = 8, channels: int = 1, random_head: bool = True,
                **model) -> PixelCNNFamily:
    """A tiny untrained family; random_head replaces the zeroed last layer, so outputs depend on inputs."""
    cfg = RunConfig(name="t").replace(
        data={"dataset": "digits", "resolution": res},
        model={"family": "pixelcnn", "hidden_channels": 6 if channels == 3 else 8, "layers": 2,
               "first_kernel_size": 3, "output": output, "mixture_components": 3, **model},
        sampling={"grid_size": 4})
    torch.manual_seed(0)
    fam = PixelCNNFamily(cfg, channels, res, CLASSES)
    if random_head:
        for nets in (fam.networks, fam.ema):
            torch.nn.init.normal_(nets["pixelcnn"].out.conv.weight, std=0.5)
    return fam


def input_gradient(net: GatedPixelCNN, x: torch.Tensor, c: int, i: int, j: int) -> torch.Tensor:
    """|d out[c, :, i, j] / d x| for one image: (C, H, W)."""
    x = x.clone().requires_grad_(True)
    net(x)[0, c, :, i, j].sum().backward()
    return x.grad[0].abs()


# ---- causality --------------------------------------------------------------------------------
def test_a_pixel_depends_on_exactly_the_earlier_pixels_of_its_receptive_field_in_both_stacks():
    torch.manual_seed(0)
    k0, k, layers = 5, 3, 3
    net = GatedPixelCNN(1, 16, layers, k, k0, params=4).double()
    size, i, j = 12, 6, 6
    grad = input_gradient(net, torch.rand(1, 1, size, size, dtype=torch.float64) * 2 - 1, 0, i, j)[0]
    # receptive field: a = k0//2 + (layers-1)*(k//2) columns either side, on rows i-1-a .. i-1 (the
    # vertical stack, reaching above-right too: no blind spot) and a columns to the left on row i
    # (the horizontal stack); the pixel itself and everything after it in raster order: nothing
    a = k0 // 2 + (layers - 1) * (k // 2)
    expected = torch.zeros(size, size, dtype=torch.bool)
    expected[i - 1 - a:i, j - a:j + a + 1] = True
    expected[i, j - a:j] = True
    assert torch.equal(grad != 0, expected), (grad != 0).int()
    later = torch.arange(size * size).view(size, size) >= i * size + j
    assert (grad[later] == 0).all()
    assert grad[i - 1, j + a] > 0 and grad[i - 1 - a, j + a] > 0    # above-right: the original PixelCNN's blind spot
    assert grad[i, j - 1] > 0 and grad[i - 1, j] > 0


def test_colour_channels_are_predicted_in_order_within_a_pixel():
    torch.manual_seed(0)
    net = GatedPixelCNN(3, 48, 2, 3, 3, params=2).double()   # wide enough that no group's ReLUs are all dead
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64) * 2 - 1
    i, j = 3, 3
    for c in range(3):
        grad = input_gradient(net, x, c, i, j)
        assert (grad[:, i, j + 1:] == 0).all() and (grad[:, i + 1:] == 0).all()   # later pixels: no channel
        assert (grad[c:, i, j] == 0).all()                                     # itself and later colours
        assert (grad[:c, i, j] > 0).all()                                      # R for G; R and G for B
        assert (grad[:, i, j - 1] > 0).all() and (grad[:, i - 1, j + 1] > 0).all()


def test_the_row_by_row_evaluation_that_sampling_uses_equals_the_full_network():
    torch.manual_seed(0)
    net = GatedPixelCNN(1, 8, 3, 3, 5, params=4, num_classes=3)
    x, lab = torch.rand(2, 1, 8, 8) * 2 - 1, torch.tensor([0, 2])
    full = net(x, lab)
    for i, j in ((0, 0), (3, 5), (7, 7)):
        links = [link[:, :, i:i + 1, :j + 1] for link in net.links(x[:, :, :i + 1], lab)]
        part = net.horizontal_stack(x[:, :, i:i + 1, :j + 1], links, lab)
        assert torch.allclose(part[..., 0, j], full[..., i, j], atol=1e-6)


# ---- likelihood ---------------------------------------------------------------------------------
def random_levels(n: int, res: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, res, res), generator=torch.Generator().manual_seed(1)).float() / 127.5 - 1


def test_bits_per_dim_at_init_is_8_for_the_softmax_and_about_8_for_the_mixture():
    x, lab = random_levels(8), torch.zeros(8, dtype=torch.long)
    assert make_family("softmax", random_head=False).bits_per_dim(x, lab) == pytest.approx(8.0, abs=1e-5)
    mixture = make_family("logistic_mixture", random_head=False, mixture_components=5).bits_per_dim(x, lab)
    assert 7.5 < mixture < 8.5


@pytest.mark.parametrize("dist", [SoftmaxOutput(), LogisticMixtureOutput(4)], ids=["softmax", "mixture"])
def test_the_output_distribution_is_normalised_and_matches_the_training_likelihood(dist):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 1, dist.params, 3, 3, generator=g, dtype=torch.float64) * 3   # N, C, params, H, W
    x = torch.randint(0, 256, (2, 1, 3, 3), generator=g).double() / 127.5 - 1
    for t in (1.0, 0.3):
        per_level = dist.level_log_probs(out.movedim(2, -1), t)                          # N, C, H, W, 256
        assert torch.allclose(per_level.exp().sum(-1), torch.ones(2, 1, 3, 3, dtype=torch.float64), atol=1e-6)
    per_level = dist.level_log_probs(out.movedim(2, -1))
    at_data = per_level.gather(-1, to_levels(x).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(dist.log_prob(out, x), at_data, atol=1e-6)   # what is sampled is what is scored


def test_training_lowers_the_bits_per_dim():
    fam = make_family("softmax", random_head=False)
    fam.cfg.training.lr = 0.02
    x = (torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.7).float() * 2 - 1
    labels = torch.zeros(16, dtype=torch.long)
    opts = fam.make_optimizers()
    ctx = StepContext(torch.device("cpu"), torch.Generator().manual_seed(0), opts)
    losses = [float(fam.training_step(Batch(x, labels), ctx)["loss/bpd"].detach()) for _ in range(15)]
    assert losses[0] == pytest.approx(8.0, abs=1e-4) and losses[-1] < 4.0


# ---- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["softmax", "logistic_mixture"])
def test_same_seed_same_images_and_the_temperature_and_labels_matter(output):
    fam = make_family(output)
    a = fam.sample(3, seed=7)
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, fam.sample(3, seed=7))
    assert torch.equal(to_levels(a).float() / 127.5 - 1, a)        # every sub-pixel is one of the 256 levels
    assert not torch.equal(a, fam.sample(3, seed=8))
    assert not torch.equal(a, fam.sample(3, seed=7, temperature=0.3))
    assert not torch.equal(fam.sample(2, seed=7, labels=[0, 0]), fam.sample(2, seed=7, labels=[1, 1]))
    assert torch.equal(fam.sample(3, seed=7, labels=None), fam.sample(3, seed=7, labels=[0, 1, 2]))  # cycles


def test_colour_sampling_draws_every_channel():
    fam = make_family("softmax", channels=3, res=4)
    a = fam.sample(2, seed=0)
    assert a.shape == (2, 3, 4, 4) and torch.equal(a, fam.sample(2, seed=0))
    assert all(a[:, c].std() > 0 for c in range(3))


def test_progress_follows_the_rows_and_cancel_stops_between_rows():
    fam = make_family()
    seen = []
    fam.sample(2, seed=0, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(r, 8) for r in range(1, 9)]
    with pytest.raises(Cancelled):
        fam.sample(2, seed=0, cancel=lambda: True)
    seen.clear()
    with pytest.raises(Cancelled):
        fam.sample(2, seed=0, progress=lambda d, t: seen.append((d, t)), cancel=lambda: len(seen) >= 3)
    assert seen == [(1, 8), (2, 8), (3, 8)]


# ---- cached sampling: the same pixels as the uncached reference ------------------------------
def uncached(fam: PixelCNNFamily) -> PixelCNNFamily:
    """The same family sampling through the reference loop that re-runs the stacks."""
    fam.cached_sampling = False
    return fam


def test_the_cached_network_gives_the_full_networks_outputs_pixel_by_pixel():
    torch.manual_seed(0)
    net = GatedPixelCNN(3, 12, 3, 3, 5, params=6, num_classes=3)
    x, lab = torch.rand(2, 3, 6, 7) * 2 - 1, torch.tensor([0, 2])
    full = net(x, lab)
    with torch.no_grad():
        cache = CachedPixelCNN(net, x, lab)
        for i in range(6):
            for j in range(7):
                assert torch.allclose(cache.pixel(i, j), full[..., i, j], atol=1e-6), (i, j)
            cache.finish_row(i)


@pytest.mark.parametrize("output,channels,labels", [("logistic_mixture", 1, [0, 1, 2, 1]),
                                                    ("softmax", 1, None), ("logistic_mixture", 3, [2, 0, 1, 0])],
                         ids=["mixture-classes", "softmax", "colour-classes"])
def test_cached_sampling_draws_exactly_the_pixels_of_uncached_sampling(output, channels, labels):
    res = 6 if channels == 3 else 8
    fam, reference = make_family(output, channels=channels, res=res), uncached(make_family(output, channels=channels, res=res))
    for seed, temperature in ((0, 1.0), (11, 0.6), (123, 1.0)):
        cached = fam.sample(4, seed=seed, labels=labels, temperature=temperature)
        assert torch.equal(cached, reference.sample(4, seed=seed, labels=labels, temperature=temperature))


def test_cached_completion_draws_exactly_the_pixels_of_uncached_completion():
    fam = make_family("logistic_mixture")
    x = random_levels(3)
    mask = torch.zeros(3, 1, 8, 8)
    mask[:, :, 5:] = 1
    mask[0, :, 2, 3] = mask[1, :, 4, 0] = mask[2, :, 6:, :4] = 1
    mask[1, :, 7, 6:] = 0                   # known pixels at the end of a drawn row
    for seeds in ([0, 1, 2], [7, 7, 40]):
        assert torch.equal(fam.inpaint(x, mask, seeds=seeds, labels=[0, 1, 2]),
                           uncached(make_family("logistic_mixture")).inpaint(x, mask, seeds=seeds, labels=[0, 1, 2]))


def test_the_quick_mixture_levels_are_the_inverse_cdf_levels_even_at_extreme_scales():
    g = torch.Generator().manual_seed(0)
    dist = LogisticMixtureOutput(5)
    out = torch.randn(400, 15, generator=g) * 2
    out[:, 10:] = torch.rand(400, 5, generator=g) * 11 - 8          # log scales from the floor to wide
    out[:100, 5:10] = torch.rand(100, 5, generator=g) * 3 - 1.5       # means beyond the edge levels too
    u = torch.rand(400, generator=g, dtype=torch.float64)
    for t in (1.0, 0.3, 1.7):
        reference = inverse_cdf_levels(dist, out, u, t)
        assert torch.equal(quick_mixture_levels(dist, out, u, t), reference)
        alone = quick_mixture_levels(dist, out, u, t, margin=0.0)      # the edge CDF alone, no row handed over
        assert (alone != reference).sum() <= 2
        assert torch.equal(quick_mixture_levels(dist, out, u, t, margin=2.0), reference)   # every row handed over


# ---- completion --------------------------------------------------------------------------------
def test_completion_keeps_the_given_pixels_and_draws_the_masked_ones():
    fam = make_family()
    x = random_levels(3)
    mask = torch.zeros(3, 1, 8, 8)
    mask[:, :, 5:] = 1                      # the rows below a line
    mask[1, :, 2, 3] = 1                    # and any pixel: later known pixels are kept, not used
    seen = []
    out = fam.inpaint(x, mask, seeds=[0, 1, 2], progress=lambda d, t: seen.append((d, t)))
    keep = mask == 0
    assert torch.equal(out[keep], x[keep])
    assert not torch.equal(out[~keep], x[~keep])
    assert torch.equal(out, fam.inpaint(x, mask, seeds=[0, 1, 2]))
    assert seen[-1] == (4, 4)               # only the rows with something to draw: 2, 5, 6, 7
    assert torch.equal(fam.inpaint(x, torch.zeros(3, 1, 8, 8), seeds=[0, 1, 2]), x)


def test_completion_of_everything_is_sampling_and_the_known_rows_condition_the_rest():
    fam = make_family()
    x = random_levels(2)
    both = fam.inpaint(x, torch.ones(2, 1, 8, 8), seeds=[5, 9], labels=[1, 2])   # image i draws with seeds[i]
    assert torch.equal(both[:1], fam.sample(1, seed=5, labels=[1]))
    assert torch.equal(both[1:], fam.sample(1, seed=9, labels=[2]))
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 4:] = 1
    other = x.flip(0)                       # different known rows, same noise
    assert not torch.equal(fam.inpaint(x, mask, seeds=[0, 0])[:, :, 4:], fam.inpaint(other, mask, seeds=[0, 0])[:, :, 4:])
    with pytest.raises(ValueError, match="raster completion"):
        fam.inpaint(x, mask, seeds=[0, 0], method="diffusion")


def test_sampling_gives_back_the_thread_count_it_lowered_even_when_cancelled():
    fam = make_family()
    torch.set_num_threads(2)
    try:
        fam.sample(1, seed=0)
        assert torch.get_num_threads() == 2
        with pytest.raises(Cancelled):
            fam.sample(1, seed=0, cancel=lambda: True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)   # this module's setting
