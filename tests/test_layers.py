"""Crossbar layers: hand-worked currents, re-programming, moves, state_dict, conversion."""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar
from xbar.layers import CROSSBAR_TYPES

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


class MyLinear(nn.Linear):
    """A subclass with the stock forward: converted."""


class Doubled(nn.Linear):
    """A subclass with its own forward: stays float."""

    def forward(self, x):
        return 2 * super().forward(x)


def _float_layers(record):
    """The one to_crossbar warning among ``record``, as text."""
    msgs = [str(w.message) for w in record if "to_crossbar" in str(w.message)]
    assert len(msgs) == 1, f"expected one to_crossbar warning, got {msgs}"
    return msgs[0]


def test_to_crossbar_swaps_torch_layers_and_stock_forward_subclasses(seed4):
    from spikingjelly.activation_based import layer as sj_layer

    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.ReLU(), nn.Flatten(),
                          nn.Sequential(nn.Linear(2 * 6, 5), MyLinear(5, 4), sj_layer.Linear(4, 3, bias=False)))
    model[4][1].weight.requires_grad_(False)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything with a weight is converted: no warning
        out = xbar.to_crossbar(model, seed4)
    assert isinstance(out[0], xbar.CrossbarConv1d) and type(out[1]) is nn.BatchNorm1d
    assert [type(m) for m in out[4]] == [xbar.CrossbarLinear] * 3
    assert out[4][2].bias is None and not out[4][1].weight.requires_grad and not out[0].training
    for old, new in ((model[0], out[0]), *zip(model[4], out[4])):
        assert torch.equal(new.weight, old.weight) and new.is_programmed
    x = torch.rand(2, 1, 8)
    with torch.no_grad():
        assert torch.allclose(out(x), out[4](out[3](out[2](out[1](F.conv1d(x, out[0].effective_weight(),
                                                                         out[0].bias))))), atol=1e-6)
    assert type(model[0]) is nn.Conv1d and type(model[4][1]) is MyLinear, "not inplace: the original is untouched"
    again = out[4][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xbar.to_crossbar(out, "ideal", inplace=True)[4][0] is again, "crossbar layers are left alone"
    assert again.profile == seed4
    same = xbar.to_crossbar(model, "seed-4bit", inplace=True)
    assert same is model and isinstance(model[0], xbar.CrossbarConv1d) and isinstance(model[4][1], xbar.CrossbarLinear)
    assert isinstance(xbar.to_crossbar(nn.Conv1d(1, 1, 1), seed4), xbar.CrossbarConv1d)


def test_to_crossbar_warns_once_naming_every_float_weight_layer(seed4):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.LayerNorm(2), nn.PReLU(), nn.Conv3d(1, 1, 1),
                          nn.ConvTranspose2d(2, 2, 2), nn.Embedding(4, 2), nn.MultiheadAttention(4, 2),
                          nn.Sequential(Doubled(3, 3), nn.Linear(3, 3)))
    with pytest.warns(UserWarning) as record:
        out = xbar.to_crossbar(model, seed4)
    text = _float_layers(record)
    for entry in ("4 (Conv3d: unsupported type)", "5 (ConvTranspose2d: unsupported type)",
                  "6 (Embedding: unsupported type)", "7 (MultiheadAttention: unsupported type)",
                  "8.0 (Doubled: custom forward)"):
        assert entry in text
    assert "5 layer(s)" in text and "Norm" not in text and "PReLU" not in text
    assert type(out[8][0]) is Doubled and isinstance(out[8][1], xbar.CrossbarLinear)
    assert isinstance(out[0], xbar.CrossbarConv2d)
    assert type(out[7].out_proj) is not xbar.CrossbarLinear, "MultiheadAttention reads out_proj.weight itself"


def _net():
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Conv1d(2, 2, 1)), flat=nn.Flatten(),
        classifier=nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))))


@pytest.mark.parametrize("include, exclude, floats", [
    (None, "classifier.*", {"classifier.0 (Linear: excluded)", "classifier.2 (Linear: excluded)"}),
    (None, ["classifier"], {"classifier.0 (Linear: excluded)", "classifier.2 (Linear: excluded)"}),
    (None, [nn.Conv1d, "classifier.2"], {"features.0 (Conv1d: excluded)", "features.2 (Conv1d: excluded)",
                                         "classifier.2 (Linear: excluded)"}),
    ("features.*", None, {"classifier.0 (Linear: not included)", "classifier.2 (Linear: not included)"}),
    ([nn.Linear, "features.2"], None, {"features.0 (Conv1d: not included)"}),
    (["features"], nn.Conv1d, {"features.0 (Conv1d: excluded)", "features.2 (Conv1d: excluded)",
                               "classifier.0 (Linear: not included)", "classifier.2 (Linear: not included)"}),
    (["features.0", "classifier.*"], ["classifier.0", "features.0"],
     {"features.0 (Conv1d: excluded)", "features.2 (Conv1d: not included)", "classifier.0 (Linear: excluded)"}),
    ("features.0", "classifier.*", {"features.2 (Conv1d: not included)", "classifier.0 (Linear: excluded)",
                                    "classifier.2 (Linear: excluded)"}),
    ((), None, {"features.0 (Conv1d: not included)", "features.2 (Conv1d: not included)",
                "classifier.0 (Linear: not included)", "classifier.2 (Linear: not included)"}),
])
def test_to_crossbar_include_exclude(seed4, include, exclude, floats):
    model = _net()
    with pytest.warns(UserWarning) as record:
        out = xbar.to_crossbar(model, seed4, include=include, exclude=exclude)
    text = _float_layers(record)
    listed = set(text.split("stay in float: ", 1)[1].split(". Convert")[0].split("; "))
    assert listed == floats
    for path, m in out.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            crossbar = isinstance(m, CROSSBAR_TYPES)
            assert crossbar != any(f.startswith(f"{path} (") for f in floats), path


def test_to_crossbar_include_all_and_bad_selectors(seed4):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = xbar.to_crossbar(_net(), seed4, include=["features.*", "classifier.?"], exclude=["features.1"])
    assert all(type(m) not in (nn.Linear, nn.Conv1d) for m in out.modules())
    for bad in (3, [nn.Linear, 2.0], [int]):
        with pytest.raises(TypeError, match="(include|exclude): expected module-path patterns"):
            xbar.to_crossbar(_net(), seed4, include=bad)
        with pytest.raises(TypeError, match="exclude: expected module-path patterns"):
            xbar.to_crossbar(_net(), seed4, exclude=bad)


def test_bad_profile_argument_is_named():
    with pytest.raises(TypeError, match="device"):
        xbar.CrossbarLinear(2, 2, profile=3.0)


def test_a_selection_pattern_that_matches_nothing_warns():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    with pytest.warns(UserWarning, match="exclude pattern 'classifer' matches no module"):
        xbar.to_crossbar(model, "ideal", exclude="classifer")
