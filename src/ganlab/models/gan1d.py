"""The seed's 1-D GAN (chapter 7.2): uniform noise -> samples of a 1-D distribution.

Tensors are (batch, n): a batch of vectors, each holding n scalar samples.
"""

import torch
from torch import nn


class Generator1d(nn.Module):
    """The same tiny MLP applied to every noise value: the seed's Conv1D stack with kernel 1."""

    def __init__(self, hidden: int = 50):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(1, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.Sigmoid(),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.unsqueeze(-1)).squeeze(-1)


class Discriminator1d(nn.Module):
    """Judges a whole vector of samples, so it can see the spread and not only single values.

    Returns logits; the seed's final sigmoid lives in the loss (BCE with logits), which is the
    same function computed without overflow.
    """

    def __init__(self, sample_size: int = 100, hidden: int = 50, features: str = "decorate",
                 negative_slope: float = 0.0):
        super().__init__()
        self.features = features
        n_in = 2 * sample_size if features == "decorate" else sample_size
        # The seed's ReLUs can all die (the default recipe's did in runs longer than its 5,000
        # iterations): D is then constant and G learns nothing more. A leaky slope cannot die.
        act = (lambda: nn.LeakyReLU(negative_slope)) if negative_slope else nn.ReLU
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), act(),
            nn.Linear(hidden, hidden), act(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features == "decorate":  # the seed's add_decorate: [x, (x - mean(x))^2]
            x = torch.cat([x, (x - x.mean(dim=-1, keepdim=True)) ** 2], dim=-1)
        else:  # sorted: the empirical quantile function of the vector
            x = torch.sort(x, dim=-1).values
        return self.net(x).squeeze(-1)
