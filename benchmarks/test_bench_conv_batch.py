"""A CNN's first convolution (one input channel) on a batch of binary spike maps, plain
``F.conv2d`` against :func:`xbar.conv_batch.conv` with the batch folded into channel groups,
side by side in one group: LeNet's ``Conv2d(1, 6, 5, padding=2)`` and bn-cnn's
``Conv2d(1, 32, 3, padding=1)`` over 960 28x28 maps with 13% ones (MNIST's mean intensity).

Both run with the allocator as the process found it and with glibc keeping freed memory
(:mod:`xbar.allocator`): the fold pays only without it, and :func:`~xbar.conv_batch.conv` folds
only then. Once set it stays set for the process, so the "kept" rows run last, and "as started"
is kept too when an earlier benchmark of the session ran a network:
``extra_info["memory_kept"]`` says which each row had.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xbar import allocator, conv_batch

LAYERS = {"lenet conv1 (1->6, 5x5)": (6, 5, 2), "bn-cnn conv1 (1->32, 3x3)": (32, 3, 1)}


@pytest.mark.parametrize("how", ["plain F.conv2d", "batch folded into groups"])
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("memory", ["as started", "kept"])  # the last decorator varies slowest
def test_first_conv(benchmark, monkeypatch: pytest.MonkeyPatch, layer: str, how: str, memory: str) -> None:
    if memory == "kept" and not allocator.keep_freed_memory():
        pytest.skip("this C library's allocator cannot be told to keep freed memory")
    cout, k, pad = LAYERS[layer]
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(960, 1, 28, 28, generator=gen) < 0.13).float()
    w = torch.randn(cout, 1, k, k, generator=gen)
    monkeypatch.setattr(conv_batch, "memory_kept", lambda: False)  # the fold runs when asked for
    assert conv_batch.fold_groups(x, w, 1) > 1
    fn = (lambda: F.conv2d(x, w, None, 1, pad)) if how.startswith("plain") else (lambda: conv_batch.conv(x, w, None, 1, pad))
    benchmark.group = f"single-channel conv: {layer}, 960 binary maps, freed memory {memory}"
    benchmark.extra_info.update(memory_kept=allocator.memory_kept())
    with torch.no_grad():
        out = benchmark.pedantic(fn, rounds=10, iterations=1, warmup_rounds=2)
    assert out.shape == (960, cout, 28, 28)
