"""Model factory: one entry a GAN family, keyed by `model.name`; G also knows its noise."""

from __future__ import annotations

from typing import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from ganlab.models.conv_mnist import DcganDiscriminator, DcganGenerator, SeedDiscriminator, SeedGenerator
from ganlab.models.gan1d import Discriminator1d, Generator1d


def keras_init(module: nn.Module) -> None:
    """Keras' defaults, for faithful presets: Glorot-uniform weights and zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def build_models(model: DictConfig, dataset: DictConfig) -> tuple[nn.Module, nn.Module]:
    """Return (G, D) for the configured family, sized for the dataset."""
    if model.name == "gan1d":
        g = Generator1d(model.g_hidden)
        d = Discriminator1d(dataset.sample_size, model.d_hidden, model.d_features, model.d_negative_slope)
    elif model.arch == "seed":
        g, d = SeedGenerator(model.z_dim), SeedDiscriminator()
    else:
        g, d = DcganGenerator(model.z_dim, model.width), DcganDiscriminator(model.width)
    if model.init == "keras":
        keras_init(g)
        keras_init(d)
    return g, d


def noise_size(model: DictConfig, dataset: DictConfig) -> int:
    """Numbers in G's input for one batch row."""
    return dataset.sample_size if model.name == "gan1d" else model.z_dim


def noise_sampler(model: DictConfig, dataset: DictConfig) -> Callable[[int, torch.Generator], torch.Tensor]:
    """draw(batch, generator) -> G's input, with the config read once (the loop calls it every step).

    The 1-D GAN keeps the seed's uniform [0, 1) noise, one value per output sample; the conv GANs
    draw z_dim values, uniform on (-1, 1) as the seed or standard normal."""
    n = noise_size(model, dataset)
    if model.name == "gan1d":
        return lambda batch, generator: torch.rand(batch, n, generator=generator)
    if model.noise == "uniform":
        return lambda batch, generator: torch.rand(batch, n, generator=generator).mul_(2).sub_(1)
    return lambda batch, generator: torch.randn(batch, n, generator=generator)


def sample_noise(model: DictConfig, dataset: DictConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    return noise_sampler(model, dataset)(batch, generator)
