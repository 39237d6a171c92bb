"""The loop does what the algorithm says: D learns only in D steps, G only in G steps."""

import torch

from conftest import compose_cfg
from ganlab import loop
from ganlab.member import build_gan


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def unchanged(before, module):
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def make(*overrides):
    torch.manual_seed(0)
    gan = build_gan(compose_cfg(["train.batch_size=4", *overrides]), iterations=10)
    real = torch.randn(4, 100) * 1.25 + 4
    z = torch.rand(4, 100)
    return gan, real, z


def test_d_step_changes_d_only():
    gan, real, z = make("train.r1_gamma=10")
    g_before, d_before = snapshot(gan.G), snapshot(gan.D)
    loop.d_step(gan, real, z)
    assert unchanged(g_before, gan.G)
    assert not unchanged(d_before, gan.D)


def test_g_step_changes_g_only_and_d_gets_no_gradient():
    gan, real, z = make()
    loop.d_step(gan, real, z)  # gives the optimizers some momentum, as in a real run
    g_before, d_before = snapshot(gan.G), snapshot(gan.D)
    gan.opt_d.zero_grad(set_to_none=True)
    loop.g_step(gan, z)
    assert unchanged(d_before, gan.D)
    assert all(p.grad is None for p in gan.D.parameters())
    assert all(p.requires_grad for p in gan.D.parameters())  # unfrozen again afterwards
    assert not unchanged(g_before, gan.G)


def test_ema_follows_g_with_warm_up():
    gan, real, z = make("train.g_ema=0.5")
    for n in range(10):
        decay = min(0.5, (1 + n) / (10 + n))
        before = snapshot(gan.ema.model)
        loop.g_step(gan, z)
        for old, ema, new in zip(before, gan.ema.model.parameters(), gan.G.parameters()):
            torch.testing.assert_close(ema, decay * old + (1 - decay) * new.detach())


def test_iteration_runs_d_steps_then_g_steps():
    gan, real, z = make()
    calls = []
    loop.iteration(gan, real=lambda: calls.append("real") or real, noise=lambda: calls.append("z") or z,
                   d_steps=2, g_steps=3)
    assert calls == ["real", "z", "real", "z", "z", "z", "z"]
