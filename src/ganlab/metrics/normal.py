"""Distances between generated 1-D samples and the target normal distribution."""

from __future__ import annotations

import math

import numpy as np
import torch


def normal_cdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.special.ndtr((x - mean) / std)


def ascending(samples: torch.Tensor) -> torch.Tensor:
    # numpy's sort: 0.1 ms for 10,000 numbers here, torch.sort's 0.8 (every evaluation sorts)
    return torch.from_numpy(np.sort(samples.detach().flatten().double().cpu().numpy()))


def ks_statistic(samples: torch.Tensor, mean: float, std: float, is_sorted: bool = False) -> float:
    """Kolmogorov-Smirnov distance sup |F_n - F| of the samples to N(mean, std)."""
    x = samples if is_sorted else ascending(samples)
    n = len(x)
    cdf = normal_cdf(x, mean, std)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - cdf
    lower = cdf - torch.arange(0, n, dtype=torch.float64) / n
    return max(upper.max().item(), lower.max().item())


def wasserstein1(samples: torch.Tensor, mean: float, std: float, is_sorted: bool = False) -> float:
    """W1 to N(mean, std) as the mean gap between sorted samples and target quantiles (midpoints)."""
    x = samples if is_sorted else ascending(samples)
    n = len(x)
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    quantiles = mean + std * math.sqrt(2.0) * torch.special.erfinv(2 * u - 1)
    return (x - quantiles).abs().mean().item()


def summarize(samples: torch.Tensor, mean: float, std: float) -> dict[str, float]:
    x = ascending(samples)  # sorted once for both distances
    return {
        "mean": x.mean().item(),
        "std": x.std().item(),
        "ks": ks_statistic(x, mean, std, is_sorted=True),
        "w1": wasserstein1(x, mean, std, is_sorted=True),
    }
