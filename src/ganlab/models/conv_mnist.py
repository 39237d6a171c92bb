"""Convolutional GANs for 28 x 28 MNIST digits in [-1, 1], images shaped (batch, 1, 28, 28).

`seed` is the book's chapter 7.3 pair, layer for layer (computed with the equivalent layers of
layers.py); `dcgan` is a smaller, faster pair in the style of Radford et al. (2016) for the CPU
preset.
"""

from __future__ import annotations

from torch import nn

from ganlab.models.layers import Dense, UpsampleConv2d


class SeedGenerator(nn.Module):
    """Dense(1024, tanh) -> Dense(128*7*7, tanh) -> BatchNorm -> 2x up -> conv 64 -> 2x up -> conv 1."""

    def __init__(self, z_dim: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            Dense(z_dim, 1024), nn.Tanh(),
            Dense(1024, 128 * 7 * 7), nn.Tanh(),
            nn.BatchNorm1d(128 * 7 * 7, eps=1e-3, momentum=0.01),  # Keras' BatchNormalization defaults
            nn.Unflatten(1, (128, 7, 7)),
            UpsampleConv2d(128, 64, 5), nn.Tanh(),  # = Upsample(2x nearest), Conv2d(128, 64, 5, padding=2)
            UpsampleConv2d(64, 1, 5), nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class SeedDiscriminator(nn.Module):
    """conv 64 (same) -> pool -> conv 128 (valid) -> pool -> Dense(1024, tanh) -> 1 logit.

    With valid padding the flattened size is 128 * 5 * 5 = 3200. Each tanh is applied after its
    max-pooling, not before: tanh is increasing, so the two orders give the same values and
    gradients, and pooling first computes tanh on a quarter of the values.
    """

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 64, 5, padding=2), nn.MaxPool2d(2), nn.Tanh(),
            nn.Conv2d(64, 128, 5), nn.MaxPool2d(2), nn.Tanh(),
            nn.Flatten(),
            Dense(128 * 5 * 5, 1024), nn.Tanh(),
            nn.Linear(1024, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


class DcganGenerator(nn.Module):
    """z -> 2*width x 7 x 7 -> transposed convs to 14 x 14 and 28 x 28, BatchNorm + ReLU, tanh out."""

    def __init__(self, z_dim: int = 64, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * width * 7 * 7, bias=False),
            nn.Unflatten(1, (2 * width, 7, 7)), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class DcganDiscriminator(nn.Module):
    """Strided convs 28 -> 14 -> 7 with LeakyReLU, then one logit."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


def textbook_seed_pair(z_dim: int = 10) -> tuple[nn.Module, nn.Module]:
    """The seed pair written with the book's own layers (Upsample + Conv2d, tanh before pooling,
    nn.Linear), parameters in the same order as SeedGenerator / SeedDiscriminator: the reference
    that tests and experiments/benchmark.py check and time the faster layers against."""
    g = nn.Sequential(
        nn.Linear(z_dim, 1024), nn.Tanh(),
        nn.Linear(1024, 128 * 7 * 7), nn.Tanh(),
        nn.BatchNorm1d(128 * 7 * 7, eps=1e-3, momentum=0.01),
        nn.Unflatten(1, (128, 7, 7)),
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(128, 64, 5, padding=2), nn.Tanh(),
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(64, 1, 5, padding=2), nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 5), nn.Tanh(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 5 * 5, 1024), nn.Tanh(),
        nn.Linear(1024, 1), nn.Flatten(0),
    )
    return g, d
