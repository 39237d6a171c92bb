"""Distances between generated 1-D samples and the target normal distribution.

numpy in float64: every evaluation of every copy of a population computes them on 10,000
samples, where torch's per-call overhead was most of the time."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


@functools.lru_cache(maxsize=8)
def _target(n: int, mean: float, std: float) -> tuple[np.ndarray, np.ndarray]:
    """What n samples are compared with, the same at every evaluation: the empirical CDF's steps
    0, 1/n, ..., 1 and the target's quantiles at the midpoints (i + 0.5) / n."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    quantiles = mean + std * math.sqrt(2.0) * torch.special.erfinv(2 * u - 1)
    return np.arange(n + 1) / n, quantiles.numpy()


def ascending(samples: torch.Tensor) -> np.ndarray:
    # numpy's sort: 0.1 ms for 10,000 numbers here, torch.sort's 0.8 (every evaluation sorts)
    return np.sort(samples.detach().cpu().numpy().ravel().astype(np.float64))


def ks_statistic(samples: torch.Tensor | np.ndarray, mean: float, std: float, is_sorted: bool = False) -> float:
    """Kolmogorov-Smirnov distance sup |F_n - F| of the samples to N(mean, std)."""
    x = samples if is_sorted else ascending(samples)
    steps = _target(len(x), mean, std)[0]
    cdf = torch.special.ndtr(torch.from_numpy((x - mean) / std)).numpy()
    return float(max((steps[1:] - cdf).max(), (cdf - steps[:-1]).max()))


def wasserstein1(samples: torch.Tensor | np.ndarray, mean: float, std: float, is_sorted: bool = False) -> float:
    """W1 to N(mean, std) as the mean gap between sorted samples and target quantiles (midpoints)."""
    x = samples if is_sorted else ascending(samples)
    return float(np.abs(x - _target(len(x), mean, std)[1]).mean())


def summarize(samples: torch.Tensor, mean: float, std: float) -> dict[str, float]:
    x = ascending(samples)  # sorted once for both distances
    return {
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)),
        "ks": ks_statistic(x, mean, std, is_sorted=True),
        "w1": wasserstein1(x, mean, std, is_sorted=True),
    }
