"""Crossbar layers: hand-worked currents, re-programming, moves, state_dict, conversion."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar

US = 1e-6
W = torch.tensor([[1.0, -0.4], [0.25, 0.0], [-1.0, 0.6]])


def _layer(dev, w=W, bias=False):
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        lin.weight.copy_(w)
    return xbar.CrossbarLinear.from_linear(lin, dev)


def test_hand_worked_currents(seed4):
    layer = _layer(seed4)
    x = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # I_j = V_read * sum_i x_i (G+ - G-), V_read = 0.2 V; columns: 54, 24, -36 uS for x = [1, 1].
    expected = 0.2 * torch.tensor([[54.0, 24.0, -36.0], [90.0, 24.0, -90.0]]) * US
    with torch.no_grad():
        assert torch.allclose(layer.currents(x), expected, rtol=1e-5, atol=1e-12)
        assert torch.allclose(layer(x), expected / (0.2 * 90 * US), rtol=1e-5)


def test_effective_weight_and_conductances_shape(seed4):
    layer = _layer(seed4)
    assert layer.g_pos.shape == W.shape and layer.g_neg.shape == W.shape
    assert torch.allclose(layer.effective_weight(), torch.tensor([[1.0, -0.4], [24 / 90, 0], [-1, 0.6]]), atol=1e-5)


def test_reprograms_after_optimizer_step(seed4):
    layer = _layer(seed4)
    before = layer.g_pos.clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.ones(1, 2)).sum().backward()
    opt.step()
    assert not layer.is_programmed
    layer(torch.ones(1, 2))
    assert layer.is_programmed and not torch.equal(before, layer.g_pos)


def test_reprograms_after_device_change(seed4, ideal):
    layer = _layer(seed4)
    layer.profile = ideal
    assert torch.allclose(layer.effective_weight(), W, atol=1e-6)
    layer.profile = "seed-4bit"
    assert torch.allclose(layer.effective_weight()[1, 0], torch.tensor(24 / 90))


def test_straight_through_gradient_is_ideal(seed4):
    layer = _layer(seed4)
    x = torch.rand(4, 2)
    layer(x).sum().backward()
    assert torch.allclose(layer.weight.grad, x.sum(0).expand(3, 2))


def test_bias_is_digital(seed4):
    lin = nn.Linear(2, 3)
    layer = xbar.CrossbarLinear.from_linear(lin, "ideal")
    x = torch.rand(5, 2)
    with torch.no_grad():
        assert torch.allclose(layer(x), lin(x), atol=1e-5)
        assert torch.allclose(layer.currents(x), lin(x) * layer.current_scale(), atol=1e-9)


def test_state_dict_round_trip_keeps_conductances_and_device(seed4):
    layer = _layer(seed4, bias=True)
    with torch.no_grad():
        layer.g_pos.add_(1e-6)  # a hand-made "noisy" programming must survive the round trip
        layer._refresh_effective()
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    other = xbar.CrossbarLinear(2, 3, bias=True)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.profile == seed4
    assert torch.equal(other.g_pos, layer.g_pos) and torch.equal(other.g_neg, layer.g_neg)
    x = torch.rand(3, 2)
    with torch.no_grad():
        assert torch.equal(other(x), layer(x))


def test_moves_with_to_and_keeps_programming(seed4):
    layer = _layer(seed4)
    with torch.no_grad():
        layer.g_pos.add_(1e-6)
        layer._refresh_effective()
    marked = layer.g_pos.clone()
    layer = layer.to(torch.float64)
    assert layer.g_pos.dtype == torch.float64 and layer.is_programmed
    assert torch.allclose(layer.g_pos, marked.double())


def test_to_linear_round_trip(seed4):
    layer = _layer(seed4, bias=True)
    plain = layer.to_linear()
    assert type(plain) is nn.Linear and torch.equal(plain.weight, layer.weight)
    eff = layer.to_linear(effective=True)
    assert torch.allclose(eff.weight, layer.effective_weight())


def test_conv_round_trip_and_ideal_equals_conv2d(ideal):
    conv = nn.Conv2d(2, 4, 3, padding=1, stride=2, bias=True)
    xc = xbar.CrossbarConv2d.from_conv2d(conv, ideal)
    x = torch.rand(2, 2, 9, 9)
    with torch.no_grad():
        assert torch.allclose(xc(x), conv(x), atol=1e-5)
    back = xc.to_conv2d()
    assert type(back) is nn.Conv2d and torch.equal(back.weight, conv.weight)


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 3), cout=st.integers(1, 4), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 1))
def test_ideal_conv_equals_f_conv2d(cin, cout, k, stride, pad, ideal):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)
    xc = xbar.CrossbarConv2d.from_conv2d(conv, ideal)
    x = torch.rand(2, cin, 7, 7)
    with torch.no_grad():
        assert torch.allclose(xc(x), F.conv2d(x, conv.weight, stride=stride, padding=pad), rtol=1e-4, atol=1e-5)


def test_to_crossbar_swaps_exact_types_only(seed4):
    class MyLinear(nn.Linear):
        pass

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(),
                          nn.Sequential(nn.Linear(2 * 26 * 26, 5), MyLinear(5, 3)))
    out = xbar.to_crossbar(model, seed4)
    assert isinstance(out[0], xbar.CrossbarConv2d)
    assert isinstance(out[3][0], xbar.CrossbarLinear)
    assert type(out[3][1]) is MyLinear
    assert type(model[0]) is nn.Conv2d, "not inplace: the original is untouched"
    same = xbar.to_crossbar(model, "seed-4bit", inplace=True)
    assert same is model and isinstance(model[0], xbar.CrossbarConv2d)


def test_bad_profile_argument_is_named():
    with pytest.raises(TypeError, match="device"):
        xbar.CrossbarLinear(2, 2, profile=3.0)
