"""The optimizers' update rules, each in its two forms: torch.optim's, which the plain loop
steps, and the same rule written out with tensor operations, which functional.py's fused
iteration runs (train.compile, train.population). Both read and write torch.optim's own state
tensors, so checkpoints and resume do not care which path trained. A new rule is one class here,
its name in RULES and in config.py's _CHOICES, and a line in tests/test_functional.py's CASES,
which checks that the two forms agree.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

Tensors = dict[str, torch.Tensor]


class Adam:
    """torch.optim.Adam (L2 weight decay added to the gradient, not AdamW's)."""

    torch_class = torch.optim.Adam
    hyper = ("betas", "eps", "weight_decay")  # the constants the update reads from the param group

    @staticmethod
    def build(spec: DictConfig, params) -> torch.optim.Optimizer:
        # fused: one pass over each parameter. The default loop of small ops costs more than the
        # update itself for the 1-D GAN, and reads MNIST's big weights 3 times.
        return torch.optim.Adam(params, lr=spec.lr, betas=(spec.beta1, spec.beta2),
                                weight_decay=spec.weight_decay, fused=True)

    @staticmethod
    def init_state(p: torch.Tensor, state: dict, group: dict) -> None:
        if not state:  # (fused Adam counts its steps on the device)
            state.update(step=torch.zeros((), device=p.device), exp_avg=torch.zeros_like(p),
                         exp_avg_sq=torch.zeros_like(p))

    @staticmethod
    def rate(group: dict, t: int) -> list[float]:
        """The step size and the second bias correction of update number t (from 1)."""
        beta1, beta2 = group["betas"]
        return [group["lr"] / (1 - beta1 ** t), 1 - beta2 ** t]

    @staticmethod
    def update(p: torch.Tensor, g: torch.Tensor, state: Tensors, group: dict, rate: torch.Tensor) -> None:
        beta1, beta2 = group["betas"]
        g = with_weight_decay(p, g, group)
        state["step"].add_(1)
        state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)  # (vmap has no batching rule for lerp_)
        state["exp_avg_sq"].mul_(beta2).add_(g.square(), alpha=1 - beta2)
        denom = (state["exp_avg_sq"] / rate[1]).sqrt_().add_(group["eps"])
        p.sub_(rate[0] * state["exp_avg"] / denom)


class SGD:
    """torch.optim.SGD, with (Nesterov) momentum and no dampening."""

    torch_class = torch.optim.SGD
    hyper = ("momentum", "nesterov", "weight_decay")

    @staticmethod
    def build(spec: DictConfig, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                               weight_decay=spec.weight_decay, fused=True)

    @staticmethod
    def init_state(p: torch.Tensor, state: dict, group: dict) -> None:
        if group["momentum"] and "momentum_buffer" not in state:
            # torch.optim starts the buffer as a copy of the first gradient: the same as 0 * m + grad
            state["momentum_buffer"] = torch.zeros_like(p)

    @staticmethod
    def rate(group: dict, t: int) -> list[float]:
        return [group["lr"], 1.0]

    @staticmethod
    def update(p: torch.Tensor, g: torch.Tensor, state: Tensors, group: dict, rate: torch.Tensor) -> None:
        g = with_weight_decay(p, g, group)
        if group["momentum"]:
            buf = state["momentum_buffer"].mul_(group["momentum"]).add_(g)
            g = g + group["momentum"] * buf if group["nesterov"] else buf
        p.sub_(rate[0] * g)


RULES = {"adam": Adam, "sgd": SGD}


def with_weight_decay(p: torch.Tensor, g: torch.Tensor, group: dict) -> torch.Tensor:
    """L2 weight decay as torch.optim adds it: to the gradient."""
    return g + group["weight_decay"] * p if group["weight_decay"] else g


def build_optimizer(spec: DictConfig, params) -> torch.optim.Optimizer:
    return RULES[spec.name].build(spec, params)


def rule_of(optimizer: torch.optim.Optimizer):
    return next(rule for rule in RULES.values() if type(optimizer) is rule.torch_class)


def hyperparameters(optimizer: torch.optim.Optimizer) -> dict:
    """The constants of the update rule (the learning rate, which schedules change, comes in
    through rates())."""
    group = optimizer.param_groups[0]
    return {k: group[k] for k in rule_of(optimizer).hyper}


def init_state(optimizer: torch.optim.Optimizer) -> None:
    """Create torch.optim's own per-parameter state up front, so the written-out update can
    write into it."""
    rule = rule_of(optimizer)
    for group in optimizer.param_groups:
        for p in group["params"]:
            rule.init_state(p, optimizer.state[p], group)


def rates(optimizer: torch.optim.Optimizer, first_update: int, updates: int, device: torch.device) -> torch.Tensor:
    """(updates, 2) on `device`: for each update of this iteration, the step size and Adam's
    second bias correction, as torch.optim computes them from the update count (1 for SGD).
    Computed here, once, because inside a compiled kernel the powers would be recomputed per
    element; on the parameters' device, because a GPU kernel cannot read a CPU tensor."""
    group, rule = optimizer.param_groups[0], rule_of(optimizer)
    rows = [rule.rate(group, t) for t in range(first_update, first_update + updates)]
    return torch.tensor(rows).to(device, non_blocking=True)
