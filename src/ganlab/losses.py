"""GAN objectives on D's logits. `d` is D's loss on real and fake logits; `g` is G's loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BCE:
    """The seed's binary cross-entropy: D's targets real 1, fake 0; G's target 1 (non-saturating).

    D's loss is the mean over the real and fake halves, as Keras computes it on the seed's
    concatenated batch.
    """

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    def g(self, fake: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


class LeastSquares:
    """LSGAN (Mao et al. 2017): squared distance of the logits to the targets 1 and 0."""

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1).square().mean() + fake.square().mean())

    def g(self, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake - 1).square().mean()


class Hinge:
    """Hinge loss (Lim & Ye 2017; used by SAGAN and BigGAN)."""

    def d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


LOSSES = {"bce": BCE, "lsgan": LeastSquares, "hinge": Hinge}


def build_loss(name: str):
    return LOSSES[name]()
