"""Dataset factory keyed by `dataset.name` (SAMPLERS). A sampler hands out real batches: `sample(batch)`."""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig

from ganlab.data.mnist import MnistSampler, load_mnist
from ganlab.data.normal import NormalSampler

log = logging.getLogger("ganlab")


def build_sampler(dataset: DictConfig, generator: torch.Generator):
    return SAMPLERS[dataset.name](dataset, generator)


def normal_sampler(dataset: DictConfig, generator: torch.Generator) -> NormalSampler:
    return NormalSampler(dataset.mean, dataset.std, dataset.sample_size, generator)


def mnist_sampler(dataset: DictConfig, generator: torch.Generator) -> MnistSampler:
    images, _, source = load_mnist(dataset.root, dataset.download)
    if dataset.n_train > len(images):
        log.warning("dataset.n_train=%d asks for more digits than %s holds: all %d are used",
                    dataset.n_train, source, len(images))
    if dataset.n_train:
        images = images[: dataset.n_train]
    log.info("MNIST: %d training digits from %s", len(images), source)
    if dataset.eval_samples > len(images):  # (the reference set is drawn from them without repeats)
        log.warning("dataset.eval_samples=%d is more than the %d training digits: each evaluation compares its "
                    "generated digits with all of them", dataset.eval_samples, len(images))
    return MnistSampler(images, dataset.shuffle, generator)


SAMPLERS = {"normal": normal_sampler, "mnist": mnist_sampler}  # by dataset.name
