"""The adversarial loop, shared by every GAN in ganlab.

One iteration = `d_steps` updates of D on real (target 1) and detached fakes (target 0), then
`g_steps` updates of G through a frozen D. The loop knows nothing about datasets, metrics or
logging: it draws from `real` and `noise`, and hands its statistics to `every_iteration`.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator, Optional

import torch
from torch import nn


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """D's parameters take no gradient (and so no update) while G learns through D."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class EMA:
    """An exponential moving average of G's weights: a cheap, well-known way to damp GAN oscillation.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so that a short run
    is not judged on weights still dominated by the initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).requires_grad_(False)

    def next_decay(self) -> float:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        return decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.next_decay()
        ema = list(self.model.parameters())
        torch._foreach_lerp_(ema, list(model.parameters()), 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


@dataclass
class GAN:
    """Everything the loop updates; a checkpoint saves exactly this plus the random states."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: object
    schedulers: list = field(default_factory=list)
    ema: Optional[EMA] = None
    r1_gamma: float = 0.0  # weight of the R1 penalty (Mescheder et al. 2018); 0 = off
    autocast: Callable[[], ContextManager] = nullcontext  # bfloat16 autocast (train.amp)
    # Under torchrun: DistributedDataParallel wrappers of G and D, used where a network learns,
    # so that its gradients are averaged over the processes. G and D stay the plain modules.
    ddp_G: Optional[nn.Module] = None
    ddp_D: Optional[nn.Module] = None

    @property
    def sampler(self) -> nn.Module:
        """The generator to evaluate and sample from: the averaged one when there is one."""
        return self.ema.model if self.ema is not None else self.G

    @property
    def learning_G(self) -> nn.Module:
        return self.ddp_G if self.ddp_G is not None else self.G

    @property
    def learning_D(self) -> nn.Module:
        return self.ddp_D if self.ddp_D is not None else self.D


def d_step(gan: GAN, real: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad(), gan.autocast():
        fake = gan.G(z)
    if gan.r1_gamma > 0:
        real = real.detach().requires_grad_(True)
    with gan.autocast():
        logits = gan.learning_D(torch.cat([real, fake])).float()  # one batch, as the seed feeds D
    d_real, d_fake = logits[: len(real)], logits[len(real):]
    loss = gan.loss.d(d_real, d_fake)
    if gan.r1_gamma > 0:  # penalise D's slope on real data: damps the oscillation around the optimum
        (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        loss = loss + 0.5 * gan.r1_gamma * grad.square().flatten(1).sum(1).mean()
    step(gan.opt_d, loss)
    return {"loss/d": loss.detach(),
            "d_out/real": torch.sigmoid(d_real.detach()).mean(),
            "d_out/fake": torch.sigmoid(d_fake.detach()).mean()}


def g_step(gan: GAN, z: torch.Tensor) -> dict[str, torch.Tensor]:
    with frozen(gan.D):  # the plain D: its parameters take no gradient, so nothing to synchronise
        with gan.autocast():
            fake_logits = gan.D(gan.learning_G(z)).float()
        loss = gan.loss.g(fake_logits)
        step(gan.opt_g, loss)
    if gan.ema is not None:
        gan.ema.update(gan.G)
    return {"loss/g": loss.detach()}


def iteration(gan: GAN, real: Callable[[], torch.Tensor], noise: Callable[[], torch.Tensor],
              d_steps: int = 1, g_steps: int = 1) -> dict[str, torch.Tensor]:
    """`d_steps` updates of D, then `g_steps` updates of G; returns the last steps' statistics."""
    gan.G.train()
    gan.D.train()
    for _ in range(d_steps):
        stats = d_step(gan, real(), noise())
    for _ in range(g_steps):
        stats |= g_step(gan, noise())
    return stats


def train(
    step: Callable[[], dict[str, torch.Tensor]],
    schedulers: list,
    start: int,
    iterations: int,
    every_iteration: Callable[[int, dict], None] = lambda it, stats: None,
) -> None:
    """Run iterations [start, iterations) of `step` (the plain `iteration` above, or its fused
    and compiled form in functional.py). Statistics stay tensors: no host sync in the loop."""
    for it in range(start, iterations):
        stats = step()
        for scheduler in schedulers:
            scheduler.step()
        every_iteration(it + 1, stats)
