import math

import torch

from ganlab.metrics.normal import ks_statistic, summarize, wasserstein1


def quantile_samples(n, mean, std):
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return mean + std * math.sqrt(2) * torch.special.erfinv(2 * u - 1)


def test_ks_of_exact_quantiles_is_half_a_step():
    x = quantile_samples(1000, 4.0, 1.25)
    assert abs(ks_statistic(x, 4.0, 1.25) - 0.0005) < 1e-9


def test_ks_and_w1_of_a_shift():
    x = quantile_samples(10000, 4.5, 1.25)  # shifted by 0.4 std
    assert abs(ks_statistic(x, 4.0, 1.25) - (math.erf(0.2 / math.sqrt(2)))) < 1e-3  # 2 Phi(0.2) - 1
    assert abs(wasserstein1(x, 4.0, 1.25) - 0.5) < 1e-9


def test_real_draws_score_near_zero_and_constant_scores_badly():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(10000, generator=g) * 1.25 + 4
    stats = summarize(real, 4.0, 1.25)
    assert stats["ks"] < 0.02 and stats["w1"] < 0.05
    assert abs(stats["mean"] - 4) < 0.05 and abs(stats["std"] - 1.25) < 0.05
    assert summarize(torch.full((10000,), 4.0), 4.0, 1.25)["ks"] > 0.49
