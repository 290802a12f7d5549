"""Single-channel convolutions on the CPU, with the batch folded into channel groups.

With glibc's default allocator settings, oneDNN (the CPU backend of ``F.conv2d``) is slow on
convolutions whose input has one channel, a CNN's first layer on grey images: on 2 cores,
``Conv2d(1, 6, 5)`` over a batch of 960 MNIST images takes about 2.5 times as long as the same
arithmetic written as a grouped convolution, ``g`` images side by side as the ``g`` channels of
one sample with the kernel repeated once per group. An SNN runs that first convolution on every
time step of every image, so it is the largest single cost of a converted LeNet
(``benchmarks/test_bench_conv_batch.py`` measures it).

Most of that slowness is the fresh output pages being faulted in: once
:func:`xbar.allocator.keep_freed_memory` has set the allocator to keep freed memory (a spiking
network's first run does), the plain convolution is the faster one (3.0 ms against 5.2 ms for
864 maps on 2 cores), and :func:`conv` folds no more.

:func:`conv` computes ``F.conv{1,2,3}d(x, w, bias, ...)`` as a grouped convolution when it pays
(freed memory not kept, a CPU tensor, no autograd, ``groups == 1``, one input channel, a batch
divisible by the group count); each output element is the same sum of products in the same
order, so the result equals the plain convolution (tests compare both). Otherwise it calls the
plain convolution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .allocator import memory_kept

__all__ = ["conv", "fold_groups"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
GROUPS = (4, 2)  # images per grouped sample, the first that divides the batch


def fold_groups(x: torch.Tensor, w: torch.Tensor, groups: int) -> int:
    """How many images :func:`conv` puts side by side (1: the plain convolution)."""
    if memory_kept():
        return 1
    if x.device.type != "cpu" or torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return 1
    if groups != 1 or w.shape[1] != 1 or x.dim() != w.dim() or x.shape[1] != 1:
        return 1
    return next((g for g in GROUPS if x.shape[0] % g == 0 and x.shape[0] >= g), 1)


def conv(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, stride: Any = 1,
         padding: Any = 0, dilation: Any = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv{n}d(x, w, bias, stride, padding, dilation, groups)`` for a batched ``x
    [N, C_in, *spatial]`` (zero padding, given as ints, tuples or ``"same"``/``"valid"``),
    single-channel inputs computed as a grouped convolution (module docstring)."""
    fn = _CONV[w.dim() - 2]
    g = fold_groups(x, w, groups)
    if g == 1:
        return fn(x, w, bias, stride, padding, dilation, groups)
    y = fn(x.reshape(x.shape[0] // g, g, *x.shape[2:]), w.repeat(g, *([1] * (w.dim() - 1))),
           None if bias is None else bias.repeat(g), stride, padding, dilation, g)
    return y.reshape(x.shape[0], w.shape[0], *y.shape[2:])
