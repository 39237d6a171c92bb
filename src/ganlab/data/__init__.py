"""Dataset factory keyed by `dataset.name`. A sampler hands out real batches: `sample(batch)`."""

import torch
from omegaconf import DictConfig

from ganlab.data.normal import NormalSampler


def build_sampler(dataset: DictConfig, generator: torch.Generator):
    if dataset.name == "normal":
        return NormalSampler(dataset.mean, dataset.std, dataset.sample_size, generator)
    raise ValueError(f"unknown dataset.name {dataset.name!r}")
