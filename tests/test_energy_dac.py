"""The row DAC's energy: one conversion per analog row drive per read with ``dac_bits`` set, none
for binary spike drives or without a DAC (hand-worked counts)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xbar


def _layer(**kw):
    torch.manual_seed(0)
    dev = xbar.load_device("ideal").replace(**kw)
    return xbar.CrossbarLinear.from_linear(nn.Linear(4, 3), dev)


def test_analog_drives_cost_one_dac_conversion_each():
    layer = _layer(dac_bits=6, dac_pj=2.0)
    x = torch.tensor([[0.5, 0.0, 0.25, 1.0], [0.0, 0.0, 0.3, 0.0]])  # 3 + 1 non-zero analog drives
    with xbar.EnergyMeter(layer) as meter:
        layer(x)
    r = meter.report()
    assert r.dac_conversions * r.samples == pytest.approx(4.0)
    assert r.dac_j * r.samples == pytest.approx(4 * 2e-12)
    assert r.joules == pytest.approx(r.crossbar_j + r.adc_j + r.dac_j + r.digital_j)
    assert meter.raw_totals()["joules"] == pytest.approx(r.joules * r.samples)
    assert r.to_dict()["totals"]["dac_j"] == pytest.approx(r.dac_j)


@pytest.mark.parametrize("kw, x", [
    (dict(dac_bits=6, dac_pj=2.0), torch.tensor([[1.0, 0.0, 1.0, 1.0]])),   # binary spikes: no DAC
    (dict(dac_pj=2.0), torch.tensor([[0.5, 0.0, 0.25, 1.0]])),              # no dac_bits: ideal drive
])
def test_no_dac_energy_for_spikes_or_without_a_dac(kw, x):
    layer = _layer(**kw)
    with xbar.EnergyMeter(layer) as meter:
        layer(x)
    assert meter.report().dac_j == 0.0


def test_conv_counts_one_conversion_per_patch_drive():
    torch.manual_seed(0)
    dev = xbar.load_device("ideal").replace(dac_bits=6, dac_pj=1.0)
    conv = xbar.CrossbarConv2d.from_conv2d(nn.Conv2d(1, 2, 2), dev)
    x = torch.full((1, 1, 3, 3), 0.5)  # 4 output positions x 4 taps, all non-zero analog
    with xbar.EnergyMeter(conv) as meter:
        conv(x)
    r = meter.report()
    assert r.dac_conversions * r.samples == pytest.approx(16.0)
