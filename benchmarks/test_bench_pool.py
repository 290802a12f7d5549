"""Average pooling of spike maps and the fused IF block, side by side.

* ``pool``: LeNet's first ``AvgPool2d(2)`` over one tile's spikes (864 maps of 6 x 28 x 28,
  20% ones): ``F.avg_pool2d``, the strided slices of :func:`xbar.pooling.fast_avg_pool2d` and
  the matrix product of :func:`xbar.pooling.window_pool_into` (all three bitwise equal);
* ``block``: the IF scan of one tile's currents (32 steps x 27 images) then the pool, against
  :func:`xbar.scan_pool.scan_avg_pool` doing both step by step (bitwise equal).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xbar.pooling import _slice_sum, fast_avg_pool2d
from xbar.scan import _scan
from xbar.scan_pool import scan_avg_pool


def _spikes() -> torch.Tensor:
    return (torch.rand(864, 6, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.2).float()


@pytest.mark.parametrize("how", ["F.avg_pool2d", "strided slices", "matrix product"])
def test_pool_of_spikes(benchmark, how: str) -> None:
    x, pool = _spikes(), nn.AvgPool2d(2)
    fns = {"F.avg_pool2d": lambda: F.avg_pool2d(x, 2),
           "strided slices": lambda: _slice_sum([_slice_sum([x[..., dx::2] for dx in range(2)])[:, :, dy::2]
                                                 for dy in range(2)]).div_(4),
           "matrix product": lambda: fast_avg_pool2d(pool, x, integers=True)}
    benchmark.group = "AvgPool2d(2) of 864 x 6 x 28 x 28 spikes"
    out = benchmark.pedantic(fns[how], rounds=20, iterations=1, warmup_rounds=2)
    assert torch.equal(out, F.avg_pool2d(x, 2))


@pytest.mark.parametrize("how", ["scan, then pool", "fused scan_avg_pool"])
def test_if_block(benchmark, how: str) -> None:
    x = torch.rand(32, 27, 6, 28, 28, generator=torch.Generator().manual_seed(1)) * 0.6
    th, pool = torch.tensor(1.0), nn.AvgPool2d(2)

    def apart() -> torch.Tensor:
        s = _scan(x, th, torch.zeros(27, 6, 28, 28), True, False)[0]
        return fast_avg_pool2d(pool, s.view(-1, 6, 28, 28), integers=True).view(32, 27, 6, 14, 14)

    def fused() -> torch.Tensor:
        return scan_avg_pool(x, th, torch.zeros(27, 6, 28, 28), True, (2, 2))[0]

    benchmark.group = "IF scan + AvgPool2d(2), 32 steps x 27 x 6 x 28 x 28"
    out = benchmark.pedantic(apart if how.startswith("scan,") else fused, rounds=10, iterations=1, warmup_rounds=1)
    assert out.shape == (32, 27, 6, 14, 14)
