"""Bits/dim conventions shared by every likelihood family."""
import math

import torch

from engine.nn import likelihood as bpd

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1   # the 256 values of 8-bit data


def test_discretized_distributions_sum_to_one_over_the_levels():
    for mean, s in ((0.0, -3.0), (0.9, -4.0), (-1.2, -1.0), (0.3, 1.5)):
        m, ls = torch.full_like(LEVELS, mean), torch.full_like(LEVELS, s)
        for fn in (bpd.discretized_logistic_log_prob, bpd.discretized_gaussian_log_prob):
            total = fn(LEVELS, m, ls).exp().sum()
            assert abs(float(total) - 1.0) < 1e-5, (fn.__name__, mean, s, float(total))  # tails: pdf x width


def test_a_uniform_density_on_dequantized_data_is_about_8_bits():
    x = bpd.dequantize(torch.zeros(4, 3, 8, 8), torch.Generator().manual_seed(0))
    assert (x.abs() <= 1 / 255 + 1e-7).all() and x.std() > 0
    d = bpd.dims(x)
    nll = torch.full((4,), d * math.log(2.0))   # p(y) = 1/2 on [-1, 1] per dimension
    assert torch.allclose(bpd.bpd_continuous(nll, d), torch.full((4,), math.log2(255.0)))   # 7.994
    # a discrete model that spreads its mass evenly over the 256 levels: exactly 8 bits
    assert float(bpd.bpd_discrete(torch.tensor(d * math.log(256.0)), d)) == 8.0


def test_levels_round_trip():
    assert torch.equal(bpd.to_levels(LEVELS.float()), torch.arange(256))
