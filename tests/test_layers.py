"""The faster layers of the seed MNIST pair compute the textbook layers' function and gradients."""

import pytest
import torch
import torch.nn.functional as F

from ganlab.models.conv_mnist import SeedDiscriminator, SeedGenerator, textbook_seed_pair
from ganlab.models.layers import Dense, UpsampleConv2d


def grads(out: torch.Tensor, inputs, seed: int = 0) -> list[torch.Tensor]:
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, inputs, weights)


@pytest.mark.parametrize("channels_in, channels_out, kernel, size", [(128, 64, 5, 7), (64, 1, 5, 14), (3, 5, 3, 6),
                                                                     (2, 3, 7, 5), (2, 2, 1, 4)])
def test_upsample_conv_is_upsampling_then_convolution(channels_in, channels_out, kernel, size):
    torch.manual_seed(0)
    layer = UpsampleConv2d(channels_in, channels_out, kernel).double()
    x = torch.randn(3, channels_in, size, size, dtype=torch.double, requires_grad=True)
    ours = layer(x)
    textbook = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), layer.weight, layer.bias,
                        padding=kernel // 2)
    assert ours.shape == textbook.shape == (3, channels_out, 2 * size, 2 * size)
    torch.testing.assert_close(ours, textbook)
    for a, b in zip(grads(ours, (x, layer.weight, layer.bias)), grads(textbook, (x, layer.weight, layer.bias))):
        torch.testing.assert_close(a, b)


def test_upsample_conv_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd kernel"):
        UpsampleConv2d(2, 2, 4)


def test_dense_is_linear():
    torch.manual_seed(0)
    layer = Dense(30, 20).double()
    x = torch.randn(7, 30, dtype=torch.double, requires_grad=True)
    ours, textbook = layer(x), F.linear(x, layer.weight, layer.bias)
    assert ours.is_contiguous()
    torch.testing.assert_close(ours, textbook)
    for a, b in zip(grads(ours, (x, *layer.parameters())), grads(textbook, (x, *layer.parameters()))):
        torch.testing.assert_close(a, b)


def test_seed_pair_is_the_textbook_pair():
    """Same parameters in the same order, same outputs, same gradients (BatchNorm in training mode)."""
    torch.manual_seed(0)
    G, D = (net.double() for net in (SeedGenerator(10), SeedDiscriminator()))
    textbook = [net.double() for net in textbook_seed_pair(10)]
    for ours, book in zip((G, D), textbook):
        with torch.no_grad():
            for p, q in zip(ours.parameters(), book.parameters(), strict=True):
                q.copy_(p)
    z = torch.rand(8, 10, dtype=torch.double) * 2 - 1
    images = [G(z), textbook[0](z)]
    torch.testing.assert_close(*images)
    logits = [D(images[0]), textbook[1](images[1])]
    torch.testing.assert_close(*logits)
    params = [[*G.parameters(), *D.parameters()], [*textbook[0].parameters(), *textbook[1].parameters()]]
    for a, b in zip(grads(logits[0], params[0]), grads(logits[1], params[1]), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(G.net[4].running_mean, textbook[0][4].running_mean)
