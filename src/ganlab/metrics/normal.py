"""Distances between generated 1-D samples and the target normal distribution."""

from __future__ import annotations

import math

import torch


def normal_cdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.special.ndtr((x - mean) / std)


def ks_statistic(samples: torch.Tensor, mean: float, std: float) -> float:
    """Kolmogorov-Smirnov distance sup |F_n - F| of the samples to N(mean, std)."""
    x = torch.sort(samples.flatten().double()).values
    n = len(x)
    cdf = normal_cdf(x, mean, std)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - cdf
    lower = cdf - torch.arange(0, n, dtype=torch.float64) / n
    return max(upper.max().item(), lower.max().item())


def wasserstein1(samples: torch.Tensor, mean: float, std: float) -> float:
    """W1 to N(mean, std) as the mean gap between sorted samples and target quantiles (midpoints)."""
    x = torch.sort(samples.flatten().double()).values
    n = len(x)
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    quantiles = mean + std * math.sqrt(2.0) * torch.special.erfinv(2 * u - 1)
    return (x - quantiles).abs().mean().item()


def summarize(samples: torch.Tensor, mean: float, std: float) -> dict[str, float]:
    return {
        "mean": samples.double().mean().item(),
        "std": samples.double().std().item(),
        "ks": ks_statistic(samples, mean, std),
        "w1": wasserstein1(samples, mean, std),
    }
