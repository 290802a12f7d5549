"""CrossbarConv1d: ideal reads equal F.conv1d, the periphery reads like a Conv2d on a one-row
image, programming and checkpoint round trips, input validation, checkpoint vocabulary."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar
from xbar.validation import check_network_input

F64 = torch.float64


def _pair(seed=0, dtype=F64, **kw):
    """A Conv1d and the Conv2d with a ``1 x k`` kernel holding the same weights."""
    torch.manual_seed(seed)
    args = dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, bias=True)
    args.update(kw)
    c1 = nn.Conv1d(**args, dtype=dtype)
    pad, stride, dil = (args.get(k, d) for k, d in (("padding", 0), ("stride", 1), ("dilation", 1)))
    c2 = nn.Conv2d(args["in_channels"], args["out_channels"], (1, args["kernel_size"]), stride=(1, stride),
                   padding=(0, pad), dilation=(1, dil), groups=args.get("groups", 1), bias=args["bias"], dtype=dtype)
    with torch.no_grad():
        c2.weight.copy_(c1.weight.unsqueeze(2))
        c2.bias.copy_(c1.bias)
    return c1, c2


@settings(max_examples=60, deadline=None)
@given(groups=st.integers(1, 3), cin_per=st.integers(1, 3), cout_per=st.integers(1, 3), k=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2), extra=st.integers(0, 6),
       bias=st.booleans(), batched=st.booleans())
def test_ideal_conv1d_equals_f_conv1d(groups, cin_per, cout_per, k, stride, pad, dil, extra, bias, batched, ideal):
    cin, cout = groups * cin_per, groups * cout_per
    length = max(1, dil * (k - 1) + 1 - 2 * pad) + extra
    conv = nn.Conv1d(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups, bias=bias, dtype=F64)
    layer = xbar.CrossbarConv1d.from_conv1d(conv, ideal)
    x = torch.rand(2, cin, length, dtype=F64)
    x = x if batched else x[0]
    want = F.conv1d(x, conv.weight, conv.bias, stride=stride, padding=pad, dilation=dil, groups=groups)
    with torch.no_grad():
        got = layer(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("padding, mode", [("same", "zeros"), (2, "circular"), (1, "reflect"), (2, "replicate")])
def test_ideal_conv1d_padding_modes_equal_nn_conv1d(padding, mode, ideal):
    conv = nn.Conv1d(3, 5, 3, padding=padding, padding_mode=mode, dtype=F64)
    layer = xbar.CrossbarConv1d.from_conv1d(conv, ideal)
    x = torch.rand(2, 3, 9, dtype=F64)
    with torch.no_grad():
        assert torch.allclose(layer(x), conv(x), rtol=1e-10, atol=1e-12)


def test_hand_worked_currents(seed4):
    # seed-4bit: 16 states 10, 16, ..., 100 uS, V_read 0.2 V; scale 90 uS per weight unit, so kernel
    # [1, -0.6] maps to G+ = [100, 10], G- = [10, 64] uS (states, no snapping): G+ - G- = [90, -54] uS.
    # Input [1, 1, 0]: columns 90 - 54 = 36 uS and 90 uS; outputs 0.4 and 1 in weight units.
    conv = nn.Conv1d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, -0.6]]]))
    layer = xbar.CrossbarConv1d.from_conv1d(conv, seed4)
    x = torch.tensor([[[1.0, 1.0, 0.0]]])
    with torch.no_grad():
        assert torch.allclose(layer.currents(x), 0.2 * torch.tensor([[[36.0, 90.0]]]) * 1e-6, rtol=1e-5, atol=1e-12)
        assert torch.allclose(layer(x), torch.tensor([[[0.4, 1.0]]]), rtol=1e-5)


@pytest.mark.parametrize("changes", [
    dict(adc_bits=4, tile_rows=5, tile_cols=4),
    dict(adc_bits=3, dac_bits=4, tile_rows=3),
    dict(adc_bits=5, tile_rows=4, tile_cols=2, read_sigma=0.02, programming_sigma=0.05, d2d_sigma=0.1),
])
@pytest.mark.parametrize("kw", [dict(), dict(groups=2, stride=2, dilation=2, padding=2)])
def test_tiled_adc_read_equals_conv2d_on_a_one_row_image(seed4, changes, kw):
    dev = seed4.replace(**changes)
    c1, c2 = _pair(**kw)
    a = xbar.CrossbarConv1d.from_conv1d(c1, dev).program(torch.Generator().manual_seed(3))
    b = xbar.CrossbarConv2d.from_conv2d(c2, dev).program(torch.Generator().manual_seed(3))
    assert a.tiles == b.tiles and a.tiles[0] > 1
    assert torch.equal(a.g_pos, b.g_pos.squeeze(2)) and torch.equal(a.adc_full_scale(), b.adc_full_scale())
    a.read_generator, b.read_generator = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x = (torch.rand(3, 4, 11, generator=torch.Generator().manual_seed(1)) * 1.5).to(F64)
    with torch.no_grad():
        got, want = a(x), b(x.unsqueeze(2)).squeeze(2)
        assert torch.allclose(got, want, rtol=0, atol=1e-9)
        assert not torch.allclose(got, c1(x), atol=1e-3), "the periphery must change the read"
        a.read_generator, b.read_generator = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        assert torch.allclose(a(x[0]), b(x[:1].unsqueeze(2)).squeeze(2)[0], rtol=0, atol=1e-9), "unbatched [C, L]"


def test_tile_partials_sum_to_the_convolution(ideal):
    layer = xbar.CrossbarConv1d.from_conv1d(_pair(groups=2)[0], ideal.replace(tile_rows=4))
    w = layer.effective_weight()
    x = torch.randn(2, 4, 8, dtype=F64)
    parts = layer._tile_partials(x, w)
    assert parts.shape == (2, 2, 6, 8) and layer.tiles == (2, 1)  # 2 * 3 = 6 taps per output, 4 per array
    assert torch.allclose(parts.sum(1), layer._matmul(x, w), rtol=0, atol=1e-12)
    assert torch.allclose(parts[:, 1], F.conv1d(x, w * (torch.arange(6).view(2, 3) >= 4), padding=1, groups=2))


def test_programming_round_trip(seed4):
    conv = _pair(dtype=torch.float32)[0]
    layer = xbar.CrossbarConv1d.from_conv1d(conv, seed4)
    assert layer.is_programmed and layer.g_pos.shape == conv.weight.shape
    step = (seed4.g_max - seed4.g_min) / (seed4.levels - 1) / float(layer.scale)
    assert (layer.effective_weight() - conv.weight).abs().max() <= step / 2 + 1e-6, "within half a state step"
    plain = layer.to_conv1d()
    assert type(plain) is nn.Conv1d and torch.equal(plain.weight, conv.weight) and torch.equal(plain.bias, conv.bias)
    assert (plain.padding, plain.kernel_size) == (conv.padding, conv.kernel_size)
    assert torch.equal(layer.to_conv1d(effective=True).weight, layer.effective_weight())
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(torch.rand(2, 4, 5)).sum().backward()
    opt.step()
    assert not layer.is_programmed
    layer.effective_weight()
    assert layer.is_programmed
    with pytest.raises(TypeError, match="conv: expected nn.Conv1d, got Conv2d"):
        xbar.CrossbarConv1d.from_conv1d(nn.Conv2d(1, 1, 1))


def test_straight_through_gradient_is_the_ideal_convolution(seed4):
    conv = _pair(dtype=torch.float32)[0]
    layer = xbar.CrossbarConv1d.from_conv1d(conv, seed4.replace(adc_bits=4, tile_rows=5))
    x = torch.rand(2, 4, 7, requires_grad=True)
    layer(x).sum().backward()
    w = layer.effective_weight().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    F.conv1d(x2, w, padding=1).sum().backward()
    assert torch.allclose(layer.weight.grad, w.grad, atol=1e-5) and torch.allclose(x.grad, x2.grad, atol=1e-5)


def test_state_dict_and_checkpoint_round_trip(seed4, tmp_path):
    dev = seed4.replace(programming_sigma=0.05, adc_bits=4, tile_rows=5)
    layer = xbar.CrossbarConv1d.from_conv1d(_pair(dtype=torch.float32)[0], dev)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    other = xbar.CrossbarConv1d(4, 6, 3, padding=1)
    other.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.rand(2, 4, 9)
    with torch.no_grad():
        assert other.profile == dev and torch.equal(other.g_pos, layer.g_pos) and torch.equal(other(x), layer(x))
        model = nn.Sequential(layer, nn.ReLU(), nn.Flatten(), nn.Linear(54, 3))
        back = xbar.load(xbar.save(model, tmp_path / "c.pt"))
        assert type(back[0]) is xbar.CrossbarConv1d and torch.equal(back(x), model(x))


@pytest.mark.parametrize("layers, shape", [
    ([nn.Conv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True),
      nn.AvgPool1d(2, count_include_pad=False, padding=1), nn.AdaptiveAvgPool1d(3), nn.Flatten(), nn.Linear(12, 5)],
     (3, 2, 15)),
    ([nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=None, eps=1e-3), nn.MaxPool2d(2, stride=1, dilation=2),
      nn.AdaptiveAvgPool2d((None, 2))], (3, 1, 12, 12)),
])
def test_checkpoint_keeps_conv1d_pooling_and_batchnorm(layers, shape, tmp_path):
    model = nn.Sequential(*layers)
    with torch.no_grad():
        model[1].running_mean.uniform_()
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    back = xbar.load(xbar.save(model, tmp_path / "m.pt"))
    assert [type(m) for m in back] == [type(m) for m in model]
    assert [m.extra_repr() for m in back] == [m.extra_repr() for m in model]
    x = torch.rand(shape)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_bad_input_is_named_like_conv2d(ideal):
    layer = xbar.CrossbarConv1d(3, 4, 5, profile=ideal)
    for x in (torch.rand(2, 2, 10), torch.rand(2, 3, 4, 10), torch.rand(10)):
        with pytest.raises(ValueError, match=r"x: expected \[B, 3, L\] or \[3, L\] \(in_channels=3\) for "
                                             r"CrossbarConv1d\(3 -> 4, kernel \(5,\)\), got shape"):
            layer(x)
    with pytest.raises(ValueError, match=r"x: spatial size \(3,\) is smaller than the kernel .* at least 5 along L"):
        layer(torch.rand(2, 3, 3))
    with pytest.raises(TypeError, match="x: expected a floating-point tensor"):
        layer(torch.ones(2, 3, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x of CrossbarConv1d\(3 -> 4, kernel \(5,\)\): contains 3 NaN"):
        layer(torch.tensor([[[0.0] * 9 + [float("nan")]] * 3]))
    assert layer(torch.rand(3, 10)).shape == (4, 6)
    stages = [nn.Identity(), layer]
    check_network_input(stages, torch.rand(2, 3, 10), "images")
    with pytest.raises(ValueError, match=r"images: expected \[B, 3, L\] for the first layer CrossbarConv1d"):
        check_network_input(stages, torch.rand(2, 3, 3, 10), "images")
    with pytest.raises(ValueError, match=r"spike_seq: expected \[T, B, 3, L\] for the first layer Conv1d"):
        check_network_input([nn.Conv1d(3, 4, 5)], torch.rand(4, 2, 30), "spike_seq", leading=2)
