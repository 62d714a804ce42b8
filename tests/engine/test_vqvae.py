"""The tokenizer family's quantizers (engine/families/vqvae/quantizers.py) against numbers worked
out by hand, and its token API. The conformance suites check the family like any other
(`-k vqvae` on test_family_training.py, test_family_conformance.py, test_network_evaluations.py,
test_ops_conformance.py)."""
from __future__ import annotations

import pytest
import torch

from engine.core.schema import ConfigError
from engine.family.base import build_family
from engine.families.vqvae.quantizers import FiniteScalarQuantizer, MultiScaleResidualQuantizer, VectorQuantizer
from tests.conftest import tiny_family_config


def vectors(*rows) -> torch.Tensor:
    """Vectors (N, D) as a (1, D, 1, N) map, the quantizers' input layout."""
    return torch.tensor(rows, dtype=torch.float32).t().reshape(1, len(rows[0]), 1, len(rows))


def vq_with_codes(codes, **kw) -> VectorQuantizer:
    codes = torch.tensor(codes, dtype=torch.float32)
    vq = VectorQuantizer(codes.shape[1], codes.shape[0], **kw)
    vq.codebook.copy_(codes)
    vq.embed_sum.copy_(codes)          # each code counted once, at itself (cluster_size starts at 1)
    return vq


# ---- VQ: EMA codebook -----------------------------------------------------------------------------
def test_ema_update_moves_codes_toward_the_mean_of_their_vectors_by_the_ema_formula():
    vq = vq_with_codes([[0.0, 0.0], [10.0, 10.0]], decay=0.8, eps=0.1, dead_after=0)
    q = vq(vectors([1.0, 1.0], [3.0, 1.0], [9.0, 11.0]), update=True)
    assert q.tokens.flatten().tolist() == [0, 0, 1]
    # by hand: N_k = 0.8 * 1 + 0.2 * n_k with n = (2, 1)            -> N = (1.2, 1.0), sum 2.2
    #          m_k = 0.8 * e_k + 0.2 * (sum of its vectors)            -> m0 = (0.8, 0.4), m1 = (9.8, 10.2)
    #          N~_k = (N_k + 0.1) / (2.2 + 2 * 0.1) * 2.2               -> (1.3 * 2.2 / 2.4, 1.1 * 2.2 / 2.4)
    n0, n1 = 1.3 * 2.2 / 2.4, 1.1 * 2.2 / 2.4
    expected = torch.tensor([[0.8 / n0, 0.4 / n0], [9.8 / n1, 10.2 / n1]])
    assert torch.allclose(vq.codebook, expected, atol=1e-6)
    assert torch.allclose(vq.cluster_size, torch.tensor([1.2, 1.0]))
    # without smoothing, code 0 is the count-weighted mix of where it was (weight 0.8 * 1) and its
    # vectors' mean (2, 1) (weight 0.2 * 2): it moved a third of the way toward the mean
    vq = vq_with_codes([[0.0, 0.0], [10.0, 10.0]], decay=0.8, eps=0.0, dead_after=0)
    vq(vectors([1.0, 1.0], [3.0, 1.0], [9.0, 11.0]), update=True)
    assert torch.allclose(vq.codebook[0], torch.tensor([2.0, 1.0]) * (0.4 / 1.2))


def test_codes_do_not_move_without_update_and_the_commitment_loss_is_beta_times_the_distance():
    vq = vq_with_codes([[0.0, 0.0], [10.0, 10.0]], beta=0.5)
    before = vq.codebook.clone()
    q = vq(vectors([1.0, 1.0], [9.0, 11.0]))
    assert torch.equal(vq.codebook, before) and int(vq.usage.step) == 0
    # squared distances to the chosen codes: 1 + 1 and 1 + 1, mean over the 4 numbers = 1
    assert torch.allclose(q.loss, torch.tensor(0.5))
    assert torch.equal(q.z_q, vectors([0.0, 0.0], [10.0, 10.0]))


def test_a_dead_code_is_restarted_at_a_recent_encoder_output():
    vq = vq_with_codes([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]],
                       dead_after=2, pool_size=8, decay=0.9)
    seen = [[0.1, 0.2], [0.3, -0.1], [-0.2, 0.1]]
    g = torch.Generator().manual_seed(0)
    first = vq(vectors(*seen), update=True, generator=g)
    assert float(first.logs["codebook/restarts"]) == 0          # unused for 1 step: not yet dead
    assert torch.allclose(vq.codebook[1:], torch.tensor([[100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]), rtol=1e-4)
    second = vq(vectors(*seen), update=True, generator=g)
    assert float(second.logs["codebook/restarts"]) == 3         # codes 1..3 unused for 2 steps
    pool = torch.tensor(seen)
    for k in (1, 2, 3):
        assert any(torch.equal(vq.codebook[k], v) for v in pool), f"code {k} = {vq.codebook[k]}"
        assert float(vq.cluster_size[k]) == 1.0
    assert float(second.logs["codebook/usage"]) == 0.25          # a restart is not a use
    # a fresh grace period: not restarted again at the next step
    assert float(vq(vectors(*seen), update=True, generator=g).logs["codebook/restarts"]) == 0


def test_straight_through_gradient_is_the_identity():
    for quantizer in (vq_with_codes([[0.0, 0.0], [1.0, 1.0]]),
                      MultiScaleResidualQuantizer(VectorQuantizer(2, 8), [1, 2, 4])):
        z = torch.randn(3, 2, 4, 4, requires_grad=True)
        out = quantizer(z).z_q
        g = torch.randn_like(out)
        (out * g).sum().backward()
        assert torch.equal(z.grad, g)


@pytest.mark.parametrize("quantizer", ["vq", "fsq", "msrq"])
def test_the_decoders_gradient_reaches_the_encoder(quantizer):
    cfg = tiny_family_config("vqvae").replace(model={"quantizer": quantizer})
    fam = build_family(cfg, 1, 8, ["0"])
    nets = fam.networks
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    out = nets["decoder"](nets["quantizer"](nets["encoder"](x)).z_q)
    ((out - x) ** 2).mean().backward()            # the reconstruction loss alone (no commitment term)
    grads = [p.grad for p in nets["encoder"].parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


# ---- FSQ ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [8, 8, 8], [4, 3], [2, 7]])
def test_fsq_rounds_each_dimension_to_its_levels(levels):
    fsq = FiniteScalarQuantizer(len(levels), levels)
    z = torch.randn(20000, len(levels)) * 3
    codes = fsq.quantize(z)
    for i, n in enumerate(levels):
        allowed = fsq.level_values(i)
        assert len(allowed) == n and allowed.min() == -1
        got = codes[:, i].unique()
        # every level is reached (an even L needs the half-level offset for its last one) and nothing else
        assert torch.allclose(got, allowed), f"dim {i}: {got.tolist()} vs {allowed.tolist()}"


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [8, 8, 8], [4, 3]])
def test_fsq_index_and_vector_are_a_bijection_over_all_codes(levels):
    fsq = FiniteScalarQuantizer(len(levels), levels)
    n = fsq.num_codes
    assert n == torch.tensor(levels).prod()
    idx = torch.arange(n)
    codes = fsq.indices_to_codes(idx)
    assert torch.equal(fsq.codes_to_indices(codes), idx)
    assert codes.unique(dim=0).shape[0] == n                    # n distinct vectors
    for i in range(len(levels)):                                # each on its dimension's level set
        assert set(codes[:, i].tolist()) == set(fsq.level_values(i).tolist())
    # and the forward pass's tokens decode to its quantized map
    z = torch.randn(2, len(levels), 3, 3) * 2
    q = fsq(z)
    assert torch.allclose(fsq.decode_tokens(q.tokens), q.z_q)


# ---- multi-scale residual quantization ----------------------------------------------------------
def test_multi_scale_parts_sum_to_the_output_and_the_tokens_decode_to_it():
    torch.manual_seed(0)
    msrq = MultiScaleResidualQuantizer(VectorQuantizer(3, 32), [1, 2, 4])
    z = torch.randn(2, 3, 4, 4)
    q = msrq(z)
    assert [tuple(t.shape) for t in q.tokens] == [(2, 1, 1), (2, 2, 2), (2, 4, 4)]
    assert len(q.scales) == 3
    assert torch.allclose(sum(q.scales), q.z_q, atol=1e-5)
    assert torch.allclose(msrq.decode_tokens(q.tokens), q.z_q, atol=1e-5)
    # the finest scale quantizes what the coarser ones left: each scale's codes are the residual's nearest
    rest = z - q.scales[0] - q.scales[1]
    assert torch.equal(q.tokens[2].flatten(), msrq.vq.nearest(rest.permute(0, 2, 3, 1).reshape(-1, 3)))


# ---- the family's token API ---------------------------------------------------------------------
@pytest.mark.parametrize("quantizer", ["vq", "fsq", "msrq"])
def test_encode_tokens_then_decode_tokens_is_the_reconstruction(quantizer):
    cfg = tiny_family_config("vqvae").replace(model={"quantizer": quantizer})
    fam = build_family(cfg, 1, 8, ["0"])
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    tokens = fam.encode_tokens(x)
    maps = tokens if isinstance(tokens, list) else [tokens]
    assert [tuple(m.shape[1:]) for m in maps] == fam.token_shapes and all(m.dtype == torch.int64 for m in maps)
    assert all(0 <= int(m.min()) and int(m.max()) < fam.num_codes for m in maps)
    assert torch.allclose(fam.decode_tokens(tokens), fam.reconstruct(x), atol=1e-5)


def test_config_errors_name_the_field():
    base = tiny_family_config("vqvae")
    with pytest.raises(ConfigError, match="model.scales"):
        base.replace(model={"quantizer": "msrq", "scales": [1, 2]})        # the tiny grid is 4x4
    with pytest.raises(ConfigError, match="factorised"):
        base.replace(model={"quantizer": "msrq", "code_dim": 4})
    with pytest.raises(ConfigError, match="downsample"):
        base.replace(model={"downsample": 3})


def test_l2_codes_stay_unit_length_and_factorised_codes_are_looked_up_in_the_small_space():
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 8, code_dim=2, l2=True, dead_after=1, pool_size=16)
    assert vq.codebook.shape == (8, 2)
    z = torch.randn(2, 6, 3, 3)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        vq(z, update=True, generator=g)             # EMA steps and restarts keep the codes on the sphere
    q = vq(z)                                       # (a step quantizes with the codes before its update)
    assert torch.allclose(vq.codebook.norm(dim=1), torch.ones(8), atol=1e-5)
    assert q.z_q.shape == z.shape                    # projected back up to the encoder's dims
    assert torch.allclose(vq.decode_tokens(q.tokens), q.z_q, atol=1e-5)
