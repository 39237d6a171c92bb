"""Layers that compute the same function as a textbook layer, in fewer operations on a CPU.

The seed's MNIST pair is written with them; tests/test_layers.py checks each against the
textbook form (outputs and gradients), and a checkpoint holds the same parameters either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Dense(nn.Linear):
    """nn.Linear computed as (W @ x^T)^T. At the batch sizes here (16-256 rows against
    1,000-6,000 features) MKL runs that product about 2x faster than x @ W^T, and autograd's
    backward products then come in the faster layouts too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            return super().forward(x)
        if self.bias is None:
            return (self.weight @ x.T).T.contiguous()
        return torch.addmm(self.bias.unsqueeze(1), self.weight, x.T).T.contiguous()


def fold_taps(kernel_size: int) -> torch.Tensor:
    """(2, k_small, k) 0/1 matrix: which small-image tap each tap of a k-wide kernel lands on,
    for an output pixel of even (0) or odd (1) position in the 2x nearest-upsampled image."""
    r = kernel_size // 2
    k_small = 2 * ((r + 1) // 2) + 1
    fold = torch.zeros(2, k_small, kernel_size)
    for phase in range(2):
        for tap in range(-r, r + 1):
            fold[phase, (phase + tap) // 2 + k_small // 2, tap + r] = 1
    return fold


class UpsampleConv2d(nn.Conv2d):
    """Nearest 2x upsampling followed by this k x k 'same' convolution (k odd, stride 1),
    computed on the small image.

    In the upsampled image every pixel is repeated 2 x 2, so the k x k taps of an output pixel
    fall on only k_small x k_small distinct small-image pixels (3 x 3 for k = 5), and which taps
    share a pixel depends only on the output pixel's row and column parity. Summing the shared
    taps gives four small kernels, one per parity; one convolution of the small image with all
    four (4 x out_channels outputs) and a pixel shuffle give the upsampled convolution with
    k_small^2 / k^2 of the multiply-adds (9/25 for k = 5). The parameters are the k x k
    convolution's own, so checkpoints and initialisation are unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        if kernel_size % 2 == 0:
            raise ValueError(f"UpsampleConv2d needs an odd kernel size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.register_buffer("fold", fold_taps(kernel_size), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # weight (o, i, y, x) -> (o, row parity a, column parity b, i, small y, small x)
        small = torch.einsum("apy,oiyx,bqx->oabipq", self.fold, self.weight, self.fold)
        weight = small.reshape(-1, *small.shape[3:])
        bias = None
        if self.bias is not None:  # each channel's bias once for each of its four parities
            # (+ 0: a new tensor, not a view: Inductor in torch 2.4 and 2.6 could not compile a
            # convolution whose bias is a reshaped view, and train.compile=true failed on this layer)
            bias = self.bias.repeat_interleave(4) + 0
        return F.pixel_shuffle(F.conv2d(x, weight, bias, padding=self.fold.shape[1] // 2), 2)
