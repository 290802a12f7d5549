"""A CNN's first convolution (one input channel) on a batch of binary spike maps, plain
``F.conv2d`` against :func:`xbar.conv_batch.conv` (the batch folded into channel groups), side
by side in one group: LeNet's ``Conv2d(1, 6, 5, padding=2)`` and bn-cnn's
``Conv2d(1, 32, 3, padding=1)`` over 960 28x28 maps with 13% ones (MNIST's mean intensity)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xbar.conv_batch import conv

LAYERS = {"lenet conv1 (1->6, 5x5)": (6, 5, 2), "bn-cnn conv1 (1->32, 3x3)": (32, 3, 1)}


@pytest.mark.parametrize("how", ["plain F.conv2d", "xbar.conv_batch.conv"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_first_conv(benchmark, layer: str, how: str) -> None:
    cout, k, pad = LAYERS[layer]
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(960, 1, 28, 28, generator=gen) < 0.13).float()
    w = torch.randn(cout, 1, k, k, generator=gen)
    fn = (lambda: F.conv2d(x, w, None, 1, pad)) if how.startswith("plain") else (lambda: conv(x, w, None, 1, pad))
    benchmark.group = f"single-channel conv: {layer}, 960 binary maps"
    with torch.no_grad():
        out = benchmark.pedantic(fn, rounds=10, iterations=1, warmup_rounds=2)
    assert out.shape == (960, cout, 28, 28)
