"""One GAN iteration as a single function of tensors, for torch.compile and torch.func.vmap.

loop.py drives G and D through autograd and torch.optim, one Python call per layer and per
parameter: at the 1-D GAN's sizes that call overhead is the whole cost. Here the same
iteration is written with torch.func (the gradient of a loss as a function of the parameters)
and the optimizers' update rules written out (optimizers.py), so that torch.compile turns the
whole iteration into one compiled graph, and vmap runs K independent copies of it at once
(train.population).

The tensors it updates in place are the modules' own parameters and the torch.optim state
tensors (and the EMA copy's), so evaluation, checkpoints and resume see exactly what they see
after the plain loop; a checkpoint written by either path continues in the other.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value

from ganlab.loop import GAN
from ganlab.optimizers import hyperparameters, init_state, rates, rule_of

Tensors = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- the tensors
def tensors_of(gan: GAN) -> dict:
    """Every tensor an iteration updates, by network: parameters, buffers, optimizer state, EMA."""
    def net(module: nn.Module, opt: torch.optim.Optimizer) -> dict:
        params = dict(module.named_parameters())
        return {"params": params, "buffers": dict(module.named_buffers()),
                "opt": {name: opt.state[p] for name, p in params.items()}}

    tensors = {"D": net(gan.D, gan.opt_d), "G": net(gan.G, gan.opt_g)}
    if gan.ema is not None:
        tensors["ema"] = {"params": dict(gan.ema.model.named_parameters()),
                          "buffers": dict(gan.ema.model.named_buffers())}
    return tensors


def tree_map(fn: Callable, *trees):
    """fn over the leaves of nested dicts of the same shape."""
    if isinstance(trees[0], dict):
        return {key: tree_map(fn, *(tree[key] for tree in trees)) for key in trees[0]}
    return fn(*trees)


@torch.no_grad()
def stack_in_place(copies: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Stack the copies' tensors into one (K, ...) tensor and make each copy a view of its row,
    so that one in-place update of the stack updates every copy's own module and optimizer."""
    stacked = torch.stack(copies)
    for row, tensor in zip(stacked, copies):
        tensor.set_(stacked.untyped_storage(), row.storage_offset(), row.shape, row.stride())
    return stacked


def compile_options(device: torch.device) -> dict | None:
    """Inductor's options for the iteration. On a GPU, without its layout optimization: that
    turns the convolutions to channels_last, and then (torch 2.11, an H200) the compiled MNIST
    iteration either stopped on a stride assertion in a convolution's gradient (bfloat16, also
    with channels_last models) or did not match the plain loop within float32's tolerance. With
    it off, and the models contiguous (member.build_gan), it computes what the plain loop does."""
    return {"layout_optimization": False} if device.type == "cuda" else None


# ----------------------------------------------------------------------------- the iteration
class FusedIteration:
    """One iteration of `gans` (one GAN, or the K copies of a population) as one function call.

    Call with (reals, noises_d, noises_g), each stacked over the D or G steps of the iteration
    (and over the copies first, for a population); returns the plain loop's statistics (with a
    leading copy dimension for a population).
    """

    compilations = 0  # compiled FusedIterations made in this process; see __init__

    def __init__(self, gans: list[GAN], compile: bool, cuda_graph: bool = False):
        self.gans = gans
        self.template = gan = gans[0]  # its modules give the functions; the tensors come from all
        for opt in (opt for g in gans for opt in (g.opt_d, g.opt_g)):
            init_state(opt)
            opt._opt_called = True  # the update below is this optimizer's step (LR schedulers check)
        self.rule = {"d": rule_of(gan.opt_d), "g": rule_of(gan.opt_g)}
        self.hyper = {"d": hyperparameters(gan.opt_d), "g": hyperparameters(gan.opt_g)}
        # Updates so far, the same for every parameter and every copy (torch.optim counts per parameter)
        self.updates = {net: int(opt.state[opt.param_groups[0]["params"][0]].get("step", 0))
                        for net, opt in (("d", gan.opt_d), ("g", gan.opt_g))}
        self.device = next(gan.G.parameters()).device
        self.ema_decay = torch.zeros((), device=self.device)
        step = self._iteration
        if len(gans) == 1:
            self.tensors = tree_map(torch.Tensor.detach, tensors_of(gan))  # aliases, not copies
        else:  # the copy is the first dimension of every tensor; rates and decay are shared
            self.tensors = tree_map(lambda *copies: stack_in_place(copies), *map(tensors_of, gans))
            step = torch.func.vmap(step, in_dims=(0, 0, 0, 0, None, None, None))
        if compile:
            # Dynamo keeps a function's compiled versions for the life of the process, and every
            # FusedIteration compiles the same function: a sweep's jobs, one after another in one
            # process, piled them up until, past Dynamo's limit of 8, it ran the next job eagerly,
            # which then failed once guards were skipped. Clearing them here costs a job ~1 s (the
            # 1-D GAN, from the on-disk cache) and leaves this one's versions alone in the caches.
            torch.compiler.reset()
            FusedIteration.compilations += 1
            self.generation = FusedIteration.compilations
            step = torch.compile(step, dynamic=False, options=compile_options(self.device))
        self.step = lambda *inputs: step(self.tensors, *inputs, self.ema_decay)  # (the tensors stay in place)
        if compile and cuda_graph and self.device.type == "cuda":
            self.step = GraphReplay(self.step)
        self.compile, self.compiled = compile, False  # compiled: after the first call

    def __call__(self, reals: torch.Tensor, noises_d: torch.Tensor, noises_g: torch.Tensor) -> Tensors:
        gan = self.template
        for module in (gan.G, gan.D):
            if not module.training:
                module.train()
        steps = {"d": noises_d.shape[-3], "g": noises_g.shape[-3]}  # noises: ([copy,] step, batch, z)
        rates_d, rates_g = (rates(opt, self.updates[net] + 1, steps[net], self.device)
                            for net, opt in (("d", gan.opt_d), ("g", gan.opt_g)))
        for net in steps:
            self.updates[net] += steps[net]
        if gan.ema is not None:
            decays = [g.ema.next_decay() for g in self.gans]  # each copy counts its updates, as checkpoints do
            self.ema_decay.fill_(decays[0])
        # Every call passes the same tensors with the same shapes, and the modules are in
        # training mode (above): once compiled, Dynamo's guards can only pass, and checking them
        # costs ~0.3 ms a call for a population (measured; nothing for one copy). Not so for an
        # iteration compiled before the newest one cleared the caches (__init__): it checks them.
        with skipping_guards(self.compiled and self.generation == FusedIteration.compilations):
            stats = self.step(reals, noises_d, noises_g, rates_d, rates_g)
        self.compiled = self.compile
        return stats

    def _iteration(self, tensors: dict, reals, noises_d, noises_g, rates_d, rates_g, ema_decay) -> Tensors:
        gan = self.template
        D, G = tensors["D"], tensors["G"]

        def d_of(params: Tensors, x: torch.Tensor) -> torch.Tensor:
            with gan.autocast():
                return functional_call(gan.D, (params, D["buffers"]), (x,)).float()

        def g_of(params: Tensors, z: torch.Tensor, buffers: Tensors = G["buffers"]) -> torch.Tensor:
            with gan.autocast():
                return functional_call(gan.G, (params, buffers), (z,))

        def d_loss(params: Tensors, real: torch.Tensor, fake: torch.Tensor):
            n = len(real)

            def logits_of(x: torch.Tensor):  # one batch of real and fake, as loop.d_step
                logits = d_of(params, torch.cat([x, fake]))
                return logits[:n].sum(), logits

            if gan.r1_gamma > 0:  # R1: D's slope at the real data, itself differentiable in D's parameters
                slope, logits = grad(logits_of, has_aux=True)(real)
            else:
                logits = logits_of(real)[1]
            loss = gan.loss.d(logits[:n], logits[n:])
            if gan.r1_gamma > 0:
                loss = loss + 0.5 * gan.r1_gamma * slope.square().flatten(1).sum(1).mean()
            return loss, logits.detach()

        def g_loss(params: Tensors, buffers: Tensors, z: torch.Tensor) -> torch.Tensor:
            # BatchNorm updates its running statistics in place: grad allows that only for inputs
            return gan.loss.g(d_of(D["params"], g_of(params, z, buffers)))

        for real, z, rate in zip(reals, noises_d, rates_d):
            fake = g_of(G["params"], z).detach()
            grads, (loss_d, logits) = grad_and_value(d_loss, has_aux=True)(D["params"], real, fake)
            for name, p in D["params"].items():
                self.rule["d"].update(p, grads[name], D["opt"][name], self.hyper["d"], rate)
        for z, rate in zip(noises_g, rates_g):
            grads, loss_g = grad_and_value(g_loss)(G["params"], G["buffers"], z)
            for name, p in G["params"].items():
                self.rule["g"].update(p, grads[name], G["opt"][name], self.hyper["g"], rate)
        if "ema" in tensors:
            for name, p in tensors["ema"]["params"].items():
                p.add_((G["params"][name] - p) * (1 - ema_decay))
            for name, b in tensors["ema"]["buffers"].items():
                b.copy_(G["buffers"][name])
        n = len(reals[0])
        return {"loss/d": loss_d.detach(),
                "d_out/real": torch.sigmoid(logits[:n]).mean(),
                "d_out/fake": torch.sigmoid(logits[n:]).mean(),
                "loss/g": loss_g.detach()}


class GraphReplay:
    """fn(*inputs) recorded once as a CUDA graph and then replayed: one launch an iteration in
    place of one per kernel. On a GPU one 1-D GAN's compiled iteration is a few dozen kernels
    with almost no arithmetic, each waiting on its launch: 2.75 ms an iteration on an H200, 0.55 ms
    replayed (experiments/README.md, "On a GPU").

    fn may update in place only its inputs and tensors that keep their memory from call to call
    (the parameters and optimizer state of FusedIteration); the inputs are copied into the
    graph's own. The first WARMUP calls run fn as it is, on a side stream, as a capture needs
    (compilation, and the lazy set-up of cuBLAS and autograd, happen there); they are real
    iterations, and so is the call that records the graph (recording computes nothing; the
    replay right after it does).
    """

    WARMUP = 3

    def __init__(self, fn: Callable[..., Tensors]):
        self.fn = fn
        self.calls = 0
        self.side = torch.cuda.Stream()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[torch.Tensor] = []
        self.outputs: Tensors = {}

    def __call__(self, *inputs: torch.Tensor) -> Tensors:
        if self.calls < self.WARMUP:
            self.calls += 1
            main = torch.cuda.current_stream()
            self.side.wait_stream(main)  # (also: memory the main stream still reads is not reused here)
            with torch.cuda.stream(self.side):
                outputs = self.fn(*inputs)
            main.wait_stream(self.side)
            return outputs
        if self.graph is None:
            self.inputs = [x.clone() for x in inputs]
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = self.fn(*self.inputs)
        else:
            for mine, x in zip(self.inputs, inputs):
                if x.shape != mine.shape:  # copy_ would broadcast it silently
                    raise ValueError(f"the recorded CUDA graph takes inputs of shape {tuple(mine.shape)}, "
                                     f"not {tuple(x.shape)}")
                mine.copy_(x)
        self.graph.replay()
        # The next replay overwrites the outputs: the caller gets its own copies
        return {name: value.clone() for name, value in self.outputs.items()}


def skipping_guards(skip: bool):
    """Dynamo's stance that skips its guard checks, where this torch has it (set_stance came
    with torch 2.6); otherwise the guards run, which is only slower."""
    try:
        return torch.compiler.set_stance("default", skip_guard_eval_unsafe=skip)
    except (AttributeError, TypeError):
        return nullcontext()


def draw(real: Callable[[], torch.Tensor], noise: Callable[[], torch.Tensor],
         d_steps: int, g_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One iteration's inputs for K copies (K = 1 for a run), shaped (K, steps, batch, ...):
    real() and noise() give the next batch of every copy's own stream (streams.Together), drawn
    in the order of the plain loop."""
    reals, noises_d = zip(*[(real(), noise()) for _ in range(d_steps)])
    noises_g = [noise() for _ in range(g_steps)]
    return tuple(torch.stack(batches, 1) for batches in (reals, noises_d, noises_g))
