"""Programming errors: spread matches the YAML sigma, stuck fractions within binomial bounds, seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import xbar
from xbar.nonideal import program_devices


def _layer(dev, n=200, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(n, n, bias=False)
    return xbar.CrossbarLinear.from_linear(lin, dev)


def test_programming_spread_matches_sigma(ideal):
    dev = ideal.replace(programming_sigma=0.02)
    target = torch.full((400, 400), 0.5 * dev.g_max)
    g = program_devices(target, dev.g_min, dev.g_max, programming_sigma=0.02,
                        generator=torch.Generator().manual_seed(0))
    rel = (g - target) / dev.g_max
    assert rel.std().item() == pytest.approx(0.02, rel=0.02)  # 160k draws: std error ~0.2%
    assert abs(rel.mean().item()) < 1e-3


def test_conductances_clipped_to_device_range(seed4):
    dev = seed4.replace(programming_sigma=0.5)
    layer = _layer(dev)
    for g in (layer.g_pos, layer.g_neg):
        assert g.min().item() >= dev.g_min * (1 - 1e-6) and g.max().item() <= dev.g_max * (1 + 1e-6)


@pytest.mark.parametrize("off, on", [(0.01, 0.0), (0.0, 0.05), (0.03, 0.02)])
def test_stuck_fractions_within_binomial_bounds(seed4, off, on):
    n = 300 * 300
    target = torch.full((300, 300), 50e-6)
    g = program_devices(target, seed4.g_min, seed4.g_max, stuck_off=off, stuck_on=on,
                        generator=torch.Generator().manual_seed(1))
    for frac, value in ((off, seed4.g_min), (on, seed4.g_max)):
        count = (g == value).sum().item()
        bound = 5 * math.sqrt(n * frac * (1 - frac)) + 1
        assert abs(count - n * frac) <= bound


def test_same_generator_seed_same_conductances(seed4):
    dev = seed4.replace(programming_sigma=0.05, d2d_sigma=0.1, stuck_off=0.01)
    a, b = _layer(dev), _layer(dev)
    a.program(torch.Generator().manual_seed(7))
    b.program(torch.Generator().manual_seed(7))
    assert torch.equal(a.g_pos, b.g_pos) and torch.equal(a.g_neg, b.g_neg)
    b.program(torch.Generator().manual_seed(8))
    assert not torch.equal(a.g_pos, b.g_pos)


def test_idle_clip_devices_stay_unprogrammed(seed4):
    dev = seed4.replace(programming_sigma=0.1, stuck_on=0.2)
    layer = xbar.CrossbarLinear.from_linear(nn.Linear(50, 50, bias=False), dev, mapping="clip")
    w = layer.weight
    assert (layer.g_neg[w > 0] == 0).all() and (layer.g_pos[w < 0] == 0).all()


def test_ideal_profiles_program_exactly(seed4):
    layer = _layer(seed4, n=20)
    again = layer.g_pos.clone()
    layer.program(torch.Generator().manual_seed(3))
    assert torch.equal(layer.g_pos, again)
