"""Model factory: one entry a GAN family, keyed by `model.name`."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from ganlab.models.gan1d import Discriminator1d, Generator1d


def keras_init(module: nn.Module) -> None:
    """Keras' defaults, for faithful presets: Glorot-uniform weights and zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def build_models(model: DictConfig, dataset: DictConfig) -> tuple[nn.Module, nn.Module]:
    """Return (G, D) for the configured family, sized for the dataset."""
    if model.name == "gan1d":
        g = Generator1d(model.g_hidden)
        d = Discriminator1d(dataset.sample_size, model.d_hidden, model.d_features)
    else:
        raise ValueError(f"unknown model.name {model.name!r}")
    if model.init == "keras":
        keras_init(g)
        keras_init(d)
    return g, d


def sample_noise(model: DictConfig, dataset: DictConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """G's input. The 1-D GAN keeps the seed's uniform [0, 1) noise, one value per output sample."""
    if model.name == "gan1d":
        return torch.rand(batch, dataset.sample_size, generator=generator)
    raise ValueError(f"unknown model.name {model.name!r}")
