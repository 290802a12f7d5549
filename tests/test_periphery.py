"""Periphery: ADC/DAC quantisation, tiles with per-array ADCs, read noise, first-order IR drop
against a nodal-analysis solve, calibration of the converter ranges, ADC energy, SNN and
straight-through gradients under the periphery, and the profile helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar
from reference import step_by_step
from xbar.periphery import adc_quantize, dac_quantize, full_scale, ir_drop, tile_count, tile_view

F64 = torch.float64


def _linear(dev, n_in, n_out, seed=0, bias=False, dtype=torch.float32, mapping="differential"):
    torch.manual_seed(seed)
    return xbar.CrossbarLinear(n_in, n_out, bias=bias, profile=dev, dtype=dtype, mapping=mapping)


def _conv(dev, seed=0, dtype=torch.float32, **kw):
    torch.manual_seed(seed)
    args = dict(in_channels=3, out_channels=5, kernel_size=3, bias=False)
    args.update(kw)
    return xbar.CrossbarConv2d(**args, profile=dev, dtype=dtype)


def _binary(shape, seed=0, p=0.5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).to(dtype)


# -- ADC --------------------------------------------------------------------------------------


def test_adc_hand_worked_three_bits():
    # 3 bits, full scale 1: codes -3..3, step 1/3, outputs {-1, -2/3, -1/3, 0, 1/3, 2/3, 1}.
    x = torch.tensor([-3.0, -1.0, -0.6, -0.5, -0.1, 0.0, 0.16, 0.17, 0.5, 0.84, 1.0, 3.0])
    want = torch.tensor([-3.0, -3.0, -2.0, -2.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 3.0]) / 3
    assert torch.allclose(adc_quantize(x, 3, 1.0), want, rtol=0, atol=1e-7)
    # 2 bits: codes -1..1, step = full scale; a range per column (broadcast); a zero range reads zero
    cols = torch.tensor([[0.3, 0.3, 0.3], [-5.0, 0.9, 0.1]])
    out = adc_quantize(cols, 2, torch.tensor([0.4, 2.0, 0.0]))
    assert torch.allclose(out, torch.tensor([[0.4, 0.0, 0.0], [-0.4, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="bits"):
        adc_quantize(cols, 1, 1.0)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 8), fs=st.floats(1e-3, 1e3), seed=st.integers(0, 2 ** 16))
def test_adc_codes_zero_and_clipping(bits, fs, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(4000, generator=g, dtype=F64) * 3 - 1.5) * fs  # half of it beyond the range
    x[:7] = torch.tensor([0.0, fs, -fs, 10 * fs, -10 * fs, fs * (1 - 2.0 ** -(bits + 1)), -0.0], dtype=F64)
    out = adc_quantize(x, bits, fs)
    top_code = 2 ** (bits - 1) - 1
    step = fs / top_code
    assert out.unique().numel() <= 2 ** bits
    codes = out / step
    assert torch.allclose(codes, codes.round(), atol=1e-9)  # on the code grid
    assert codes.round().min() >= -top_code and codes.round().max() <= top_code
    assert out[0].item() == 0.0 and out[6].item() == 0.0  # zero reads as exactly zero
    inside = (x >= -fs) & (x <= fs)
    assert ((out - x)[inside].abs() <= step / 2 * (1 + 1e-9)).all()
    top, bottom = x >= fs, x <= -fs
    assert torch.allclose(out[top], torch.full_like(out[top], fs), rtol=1e-12)
    assert torch.allclose(out[bottom], torch.full_like(out[bottom], -fs), rtol=1e-12)


def test_tile_helpers_hand_worked():
    assert [tile_count(10, 3), tile_count(9, 3), tile_count(9, None), tile_count(1, 128)] == [4, 3, 1, 1]
    w = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]])  # rows = inputs, columns = outputs
    t = tile_view(w, 2, 1)
    assert t.shape == (2, 2, 2, 1)
    assert torch.equal(t[1, 1], torch.zeros(2, 1))  # zero padding of the partly used row tile
    assert torch.equal(t[0, :, 1, 0], torch.tensor([-2.0, 0.5]))
    # each array's range: the largest column sum of |w| over its rows
    assert torch.equal(full_scale(w, 2, 1), torch.tensor([[4.0, 2.5], [1.0, 1.0]]))
    assert torch.equal(full_scale(w, None, None), torch.tensor([[5.0]]))


# -- the ADC in a layer -----------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 5])
def test_single_array_column_takes_at_most_2_pow_bits_values(ideal, bits):
    layer = _linear(ideal.replace(adc_bits=bits), 12, 5)
    x = _binary((3000, 12))
    with torch.no_grad():
        out = layer(x)
        clean = layer.to_linear(effective=True)(x)
    for j in range(5):
        assert out[:, j].unique().numel() <= 2 ** bits
        assert clean[:, j].unique().numel() > 2 ** bits  # the ADC is what reduced them


def _reference_ranges(w_eff: torch.Tensor, tr: int, tc: int) -> torch.Tensor:
    """Every array's range by loops: max over its columns of the sum of |w| over its rows."""
    rows, cols = w_eff.shape[1], w_eff.shape[0]
    n_rt, n_ct = math.ceil(rows / tr), math.ceil(cols / tc)
    fs = torch.zeros(n_rt, n_ct, dtype=w_eff.dtype)
    for a in range(n_rt):
        for b in range(n_ct):
            fs[a, b] = w_eff[b * tc:(b + 1) * tc, a * tr:(a + 1) * tr].abs().sum(1).max()
    return fs


@pytest.mark.parametrize("bits", [2, 4])
def test_tiled_adc_quantises_every_array_partial(ideal, bits):
    tr, tc = 4, 2
    layer = _linear(ideal.replace(adc_bits=bits, tile_rows=tr, tile_cols=tc), 11, 5, dtype=F64)
    assert layer.tiles == (3, 3)
    w = layer.effective_weight()
    fs = _reference_ranges(w, tr, tc)
    assert torch.allclose(layer.adc_full_scale().to(F64), fs, rtol=1e-12)
    x = _binary((2000, 11), dtype=F64)
    with torch.no_grad():
        out = layer(x)
        parts = layer._tile_partials(x, w)  # [B, row tiles, out]
    want = torch.zeros_like(out)
    for a in range(3):
        rows = slice(a * tr, (a + 1) * tr)
        partial = x[:, rows] @ w[:, rows].t()
        assert torch.allclose(parts[:, a], partial, rtol=0, atol=1e-12)
        for j in range(5):
            q = adc_quantize(partial[:, j], bits, fs[a, j // tc])
            assert q.unique().numel() <= 2 ** bits  # per array and column: at most 2**b codes
            want[:, j] += q
    assert torch.allclose(out, want, rtol=0, atol=1e-12)  # the digital sum of the converted partials


# -- tiling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tiles", [(None, None), (1, 1), (3, 4), (4, 7), (10, 2), (7, 3)])
def test_tiling_with_ideal_periphery_is_the_untiled_read(ideal, tiles):
    # Without converters or wires the arrays' partial sums are added exactly as one array would
    # sum them (one matmul: the read does not depend on the tiling at all), so the bits agree.
    tr, tc = tiles
    dev = ideal.replace(tile_rows=tr, tile_cols=tc)
    lin, lin0 = _linear(dev, 10, 7, bias=True), _linear(ideal, 10, 7, bias=True)
    conv, conv0 = _conv(dev, padding=1, bias=True), _conv(ideal, padding=1, bias=True)
    assert lin.tiles == (tile_count(10, tr), tile_count(7, tc))
    assert conv.tiles == (tile_count(27, tr), tile_count(5, tc))
    x, xc = torch.rand(6, 10), torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(lin(x), lin0(x)) and torch.equal(conv(xc), conv0(xc))


@pytest.mark.parametrize("tiles", [(3, 2), (4, 7), (8, None), (None, 3)])
def test_24_bit_adc_tiled_read_within_quantisation_bound(ideal, tiles):
    # Calibrated ranges, then data at 0.9 of the calibration data: no partial reaches the range,
    # so each array's conversion errs by at most half its step; a column sums n_rt of them.
    tr, tc = tiles
    dev = ideal.replace(adc_bits=24, tile_rows=tr, tile_cols=tc)
    for layer, x in ((_linear(dev, 10, 7, dtype=F64), torch.rand(40, 10, dtype=F64)),
                     (_conv(dev, dtype=F64, padding=1, stride=2), torch.rand(3, 3, 7, 7, dtype=F64))):
        xbar.calibrate_periphery(layer, x, method="max")
        with torch.no_grad():
            tiled = layer(0.9 * x)
            exact = layer._matmul(0.9 * x, layer.effective_weight())
        cols = layer.weight.shape[0]
        step = layer.adc_range / 2 ** 23  # [n_rt, n_ct]
        bound = (step.sum(0) / 2).repeat_interleave(tc or cols)[:cols]  # per output column
        if tiled.dim() == 4:
            bound = bound.view(cols, 1, 1)
        err = (tiled - exact).abs()
        assert (err <= bound * (1 + 1e-9) + 1e-15).all()
        assert err.max() > 0  # the ADC did convert


@pytest.mark.parametrize("tr", [1, 3, 5, 8, 10, 27, 40, None])
def test_linear_tile_partials_sum_to_the_matmul(ideal, tr):
    layer = _linear(ideal.replace(tile_rows=tr, tile_cols=3), 10, 6, dtype=F64)
    w = layer.effective_weight()
    x = torch.randn(2, 5, 10, dtype=F64)
    parts = layer._tile_partials(x, w)
    assert parts.shape == (2, 5, tile_count(10, tr), 6)
    assert torch.allclose(parts.sum(-2), layer._matmul(x, w), rtol=0, atol=1e-12)
    t = tr or 10
    for a in range(parts.shape[-2]):  # tile a reads only its own rows
        mask = torch.zeros(10, dtype=F64)
        mask[a * t:(a + 1) * t] = 1
        assert torch.allclose(parts[..., a, :], F.linear(x * mask, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize("tr", [1, 4, 7, 18, None])
@pytest.mark.parametrize("conv_kw", [dict(padding=1), dict(stride=2, padding=2), dict(dilation=2),
                                     dict(groups=1, padding=(0, 1), stride=(1, 2))])
def test_conv_tile_partials_sum_to_the_convolution(ideal, tr, conv_kw):
    layer = _conv(ideal.replace(tile_rows=tr), dtype=F64, in_channels=2, out_channels=4, **conv_kw)
    w = layer.effective_weight()
    x = torch.randn(3, 2, 7, 6, dtype=F64)
    parts = layer._tile_partials(x, w)
    y = layer._matmul(x, w)
    assert parts.shape == (3, tile_count(18, tr), *y.shape[1:])
    assert torch.allclose(parts.sum(1), y, rtol=0, atol=1e-12)
    # independent reference: unfolded patches (rows = C_in * kh * kw taps) times the tile's rows
    cols = F.unfold(x, 3, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)  # [B, 18, L]
    w_rc = w.reshape(4, -1)
    t = tr or 18
    for a in range(parts.shape[1]):
        rows = slice(a * t, (a + 1) * t)
        ref = torch.einsum("or,brl->bol", w_rc[:, rows], cols[:, rows]).reshape(parts[:, a].shape)
        assert torch.allclose(parts[:, a], ref, rtol=0, atol=1e-12)


def test_grouped_conv_tile_partials_sum_to_the_convolution(ideal):
    layer = _conv(ideal.replace(tile_rows=5), dtype=F64, in_channels=4, out_channels=6, groups=2, padding=1)
    w = layer.effective_weight()
    x = torch.randn(2, 4, 5, 5, dtype=F64)
    parts = layer._tile_partials(x, w)
    assert parts.shape[1] == layer.tiles[0] == 4  # 2 * 3 * 3 = 18 rows per output, 5 per array
    assert torch.allclose(parts.sum(1), layer._matmul(x, w), rtol=0, atol=1e-12)


def test_unbatched_conv_input_reads_like_a_batch_of_one(ideal):
    # BUG (xbar/layers.py): check_layer_input accepts an unbatched [C, H, W] input, but with an ADC
    # `_tile_partials` stacks the row tiles at dim 1 of the [C_out, H', W'] output and
    # `_per_column` assumes [B, n_rt, C_out, H', W']: the per-column ranges broadcast against the
    # wrong axes (here C_out == H' == 4, so silently wrong values instead of a crash).
    dev = ideal.replace(adc_bits=3, tile_rows=5, tile_cols=2)
    layer = _conv(dev, in_channels=2, out_channels=4)
    x = torch.rand(2, 6, 6)
    with torch.no_grad():
        single, batched = layer(x), layer(x[None])[0]
    assert torch.equal(single, batched), (
        f"unbatched conv read differs from the batch-of-one read by {(single - batched).abs().max():.4f}")


# -- DAC --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 32), seed=st.integers(0, 2 ** 16),
       dtype=st.sampled_from([torch.float32, torch.float64]), calibrated=st.booleans())
def test_dac_passes_binary_inputs_exactly(bits, seed, dtype, calibrated):
    x = _binary((6, 9), seed=seed, dtype=dtype)
    x[0] = 0  # an all-zero sample (its dynamic range is 0)
    assert torch.equal(dac_quantize(x, bits, 1.0 if calibrated else None), x)


def test_dac_binary_inputs_read_exactly_in_a_layer(ideal):
    x = _binary((20, 12))
    for layer, xx in ((_linear(ideal.replace(dac_bits=1), 12, 4), x),
                      (_conv(ideal.replace(dac_bits=2), in_channels=1), x.view(5, 1, 6, 8))):
        with torch.no_grad():
            assert torch.equal(layer(xx), layer._matmul(xx, layer.effective_weight()))


def test_dac_hand_worked_non_negative():
    # 2 bits: 3 steps over [0, 0.9], step 0.3.
    x = torch.tensor([[0.0, 0.2, 0.5, 0.9, 0.6, 0.1]])
    assert torch.allclose(dac_quantize(x, 2), torch.tensor([[0.0, 0.3, 0.6, 0.9, 0.6, 0.0]]))
    # a calibrated range (step 0.2) clips above it
    x = torch.tensor([[0.0, 0.25, 0.52, 0.9, 0.6, 0.09]])
    assert torch.allclose(dac_quantize(x, 2, full_scale=0.6), torch.tensor([[0.0, 0.2, 0.6, 0.6, 0.6, 0.0]]))


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 10), seed=st.integers(0, 2 ** 16))
def test_dac_non_negative_uses_2_pow_bits_minus_1_steps_per_sample(bits, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(5, 300, generator=g, dtype=F64) * torch.tensor([[0.01], [1.0], [3.0], [50.0], [1e-6]], dtype=F64)
    out = dac_quantize(x, bits)
    steps = 2 ** bits - 1
    fs = x.amax(-1, keepdim=True)  # each sample's own full scale
    step = fs / steps
    codes = out / step
    assert torch.allclose(codes, codes.round(), atol=1e-6)
    assert codes.round().min() >= 0 and codes.round().max() <= steps
    assert ((out - x).abs() <= step / 2 * (1 + 1e-9)).all()
    for i in range(5):
        assert out[i].unique().numel() <= steps + 1
        assert torch.equal(dac_quantize(x[i:i + 1], bits), out[i:i + 1])  # per sample, not per batch
    assert torch.allclose(out.amax(-1, keepdim=True), fs)  # the largest drive is exact


def test_dac_conv_full_scale_is_per_sample_over_channels_and_pixels(ideal):
    layer = _conv(ideal.replace(dac_bits=2), dtype=F64, in_channels=2, padding=1)
    x = torch.rand(3, 2, 5, 5, dtype=F64) * torch.tensor([1.0, 10.0, 0.1], dtype=F64).view(3, 1, 1, 1)
    fs = x.amax((1, 2, 3), keepdim=True)
    xq = torch.round(x / (fs / 3)) * (fs / 3)
    with torch.no_grad():
        assert torch.allclose(layer(x), layer._matmul(xq, layer.effective_weight()), rtol=0, atol=1e-12)


def test_dac_sample_does_not_depend_on_the_rest_of_the_batch():
    # BUG (xbar/periphery.py, dac_quantize): the choice between the unsigned (2**b - 1 steps over
    # [0, fs]) and the signed code is made once for the whole tensor (`(x >= 0).all()`), so a
    # non-negative sample is quantised on the coarser signed grid as soon as another sample of
    # the batch has a negative drive: the same read gives different results in different batches.
    a = torch.tensor([[0.3, 1.0, 0.55]])
    b = torch.tensor([[-1.0, 0.2, 0.0]])
    alone = dac_quantize(a, 3)
    in_batch = dac_quantize(torch.cat([a, b]), 3)[:1]
    assert torch.allclose(alone, torch.tensor([[2 / 7, 1.0, 4 / 7]]))
    assert torch.equal(in_batch, alone), f"alone {alone.tolist()} but in a batch {in_batch.tolist()}"


# -- read noise -------------------------------------------------------------------------------


@pytest.mark.parametrize("mapping", ["differential", "clip"])
def test_read_noise_std_matches_sigma_per_column(ideal, mapping):
    s, n = 0.05, 20000
    dev = ideal.replace(read_sigma=s)
    layer = _linear(dev, 16, 6, mapping=mapping, dtype=F64)
    layer.read_generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer.weight[0, :5] = 0  # some idle devices (both idle under clip)
        layer.program()
    x = torch.rand(16, dtype=F64)
    x[3] = 0
    with torch.no_grad():
        out = layer(x.expand(n, 16))  # n independent reads
    used = (layer.g_pos > 0).to(F64) + (layer.g_neg > 0).to(F64)  # [out, in]
    if mapping == "differential":
        assert (used == 2).all()
    else:
        assert used[0, :5].eq(0).all() and used[:, 5:].eq(1).all()
    want_std = s * dev.g_max * (used * x ** 2).sum(1).sqrt() / layer.scale
    mean_want = layer.effective_weight() @ x
    # n = 20000 reads: the sample std has a relative standard error of 1/sqrt(2n) = 0.5%: 3% is
    # 6 standard errors; the mean's standard error is std/sqrt(n).
    assert torch.allclose(out.std(0), want_std, rtol=0.03)
    assert ((out.mean(0) - mean_want).abs() <= 5 * want_std / math.sqrt(n)).all()
    # in amperes: sigma * g_max * V_read * sqrt(sum_i x_i^2 n_used_ij)
    amps = s * dev.g_max * dev.read_voltage * (used * x ** 2).sum(1).sqrt()
    with torch.no_grad():
        assert torch.allclose(layer.currents(x.expand(n, 16)).std(0), amps, rtol=0.03)


def test_read_noise_is_fresh_and_reproducible_with_a_generator(ideal):
    layer = _linear(ideal.replace(read_sigma=0.02), 8, 4)
    x = torch.rand(3, 8)
    with torch.no_grad():
        assert not torch.equal(layer(x), layer(x))  # fresh at every read
        layer.read_generator = torch.Generator().manual_seed(5)
        a1, a2 = layer(x), layer(x)
        layer.read_generator = torch.Generator().manual_seed(5)
        b1, b2 = layer(x), layer(x)
        layer.read_generator = torch.Generator().manual_seed(6)
        c1 = layer(x)
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and not torch.equal(a1, a2)
    assert not torch.equal(a1, c1)


# -- IR drop ----------------------------------------------------------------------------------


def _nodal_column_currents(g: torch.Tensor, x: torch.Tensor, v: float, r: float) -> torch.Tensor:
    """Exact column currents of an ``n x m`` array with wire segments of ``r`` ohms (float64).

    Row wire ``i``: driver at ``v x_i``, segment ``k`` between column ``k - 1`` (the driver for
    ``k = 0``) and column ``k``; open after the last column. Column wire ``j``: segment between
    row ``l`` and ``l + 1``, and one from the last row to the sense amplifier at 0 V; open above
    row 0. Unknowns: the row-wire and column-wire node voltages; KCL at every node.
    """
    n, m = g.shape
    row = lambda i, j: i * m + j  # noqa: E731
    col = lambda i, j: n * m + i * m + j  # noqa: E731
    a = torch.zeros(2 * n * m, 2 * n * m, dtype=F64)
    b = torch.zeros(2 * n * m, dtype=F64)

    def link(p: int, q: int, cond: float) -> None:
        a[p, p] += cond
        a[q, q] += cond
        a[p, q] -= cond
        a[q, p] -= cond

    w = 1.0 / r
    for i in range(n):
        a[row(i, 0), row(i, 0)] += w  # segment 0 to the driver
        b[row(i, 0)] += w * v * float(x[i])
        for j in range(m):
            if j + 1 < m:
                link(row(i, j), row(i, j + 1), w)
            link(row(i, j), col(i, j), float(g[i, j]))
    for j in range(m):
        for i in range(n - 1):
            link(col(i, j), col(i + 1, j), w)
        a[col(n - 1, j), col(n - 1, j)] += w  # last segment to the sense amplifier (0 V)
    u = torch.linalg.solve(a, b)
    return torch.stack([u[col(n - 1, j)] * w for j in range(m)])


def test_ir_drop_without_wire_resistance_is_the_identity():
    g = torch.rand(5, 4) * 1e-4
    assert ir_drop(g, 0.0, 2, 3) is g
    assert (ir_drop(g, 1e6, None, None) >= 0).all()  # far beyond first order: clamped at 0


def test_ir_drop_matches_nodal_analysis_to_second_order():
    torch.manual_seed(0)
    g = (torch.rand(4, 3, dtype=F64) * 90 + 10) * 1e-6  # 10-100 uS
    x = torch.rand(4, dtype=F64) + 0.1
    v = 0.2
    errs, first = [], []
    for r in (20.0, 2.0, 0.2):  # r G n m = 0.024, 0.0024, 0.00024
        exact = _nodal_column_currents(g, x, v, r)
        rel = lambda i: ((i - exact).abs() / exact).max().item()  # noqa: E731
        first.append(rel(v * x @ g))  # no IR drop model at all: first-order error
        errs.append(rel(v * x @ ir_drop(g, r, None, None)))
        assert errs[-1] < 0.05 * first[-1]
    for k in (0, 1):
        assert 50 < errs[k] / errs[k + 1] < 200, errs  # error ~ r**2: /100 when r is /10
        assert 5 < first[k] / first[k + 1] < 20, first  # (the uncorrected one ~ r)
    assert errs[0] < (20.0 * 1e-4 * 12) ** 2  # second order in r G n m


def test_tiled_ir_drop_is_per_array_nodal_analysis():
    # 5 x 3 matrix in 2 x 2 arrays: 3 x 2 arrays, the last row / column of arrays partly used
    # (their unused devices at 0 S, but their wires are there).
    torch.manual_seed(1)
    g = (torch.rand(5, 3, dtype=F64) * 90 + 10) * 1e-6
    x = torch.rand(5, dtype=F64) + 0.1
    r, v = 2.0, 0.2
    eff = ir_drop(g, r, 2, 2)
    gp, ep = F.pad(g, (0, 1, 0, 1)), F.pad(eff, (0, 1, 0, 1))
    xp = F.pad(x, (0, 1))
    for a in range(3):
        for b in range(2):
            blk = (slice(2 * a, 2 * a + 2), slice(2 * b, 2 * b + 2))
            exact = _nodal_column_currents(gp[blk], xp[blk[0]], v, r)
            got = v * xp[blk[0]] @ ep[blk]
            ideal_i = v * xp[blk[0]] @ gp[blk]
            used = exact.abs() > 0
            assert ((got - exact)[used].abs() / exact[used]).max() < (r * 1e-4 * 4) ** 2
            assert ((ideal_i - exact)[used].abs() / exact[used]).max() > 10 * (r * 1e-4 * 4) ** 2


def test_layer_reads_with_ir_dropped_conductances(ideal):
    # A 4-input, 3-output layer on one array: its currents are those of the G+ array minus those
    # of the G- array, each solved by nodal analysis, to second order.
    r = 5.0  # r g_max n m = 5 * 100 uS * 12 = 0.006
    dev = ideal.replace(wire_ohm=r)
    layer = _linear(dev, 4, 3, dtype=F64)
    plain = _linear(ideal, 4, 3, dtype=F64)
    x = torch.rand(4, dtype=F64) + 0.1
    with torch.no_grad():
        got = layer.currents(x)
        without = plain.currents(x)
    gp, gn = layer.g_pos.t(), layer.g_neg.t()  # rows = inputs
    v = dev.read_voltage
    exact = _nodal_column_currents(gp, x, v, r) - _nodal_column_currents(gn, x, v, r)
    total = v * x @ (gp + gn)  # the scale of the two currents that are subtracted
    assert ((got - exact).abs() / total).max() < (r * dev.g_max * 12) ** 2
    assert ((without - exact).abs() / total).max() > 0.1 * r * dev.g_max  # the drop is visible


# -- calibration ------------------------------------------------------------------------------


def _calib_model(dev, seed=0):
    torch.manual_seed(seed)
    return xbar.to_crossbar(nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 5)), dev)


def _calibrate_and_capture(model, data, **kw):
    """Calibrate and capture every crossbar layer's input of the calibration run."""
    seen: dict[nn.Module, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda m, a, o: seen.setdefault(m, []).append(a[0].detach()))
             for m in model.modules() if isinstance(m, xbar.CrossbarLinear)]
    try:
        out = xbar.calibrate_periphery(model, data, **kw)
    finally:
        for h in hooks:
            h.remove()
    return out, {m: torch.cat(v) for m, v in seen.items()}


def test_max_calibration_covers_every_partial(ideal):
    dev = ideal.replace(adc_bits=4, tile_rows=4, tile_cols=3)
    model = _calib_model(dev)
    data = [(torch.rand(32, 10), None), (torch.rand(32, 10), None)]
    ranges, inputs = _calibrate_and_capture(model, data, method="max")
    assert set(ranges) == {"0", "2"} and len(inputs) == 2
    for name, m in (("0", model[0]), ("2", model[2])):
        x = inputs[m]
        n_rt, n_ct = m.tiles
        assert m.adc_range.shape == (n_rt, n_ct) and torch.equal(ranges[name][0], m.adc_range)
        assert ranges[name][1] == m.dac_range
        assert m.dac_range == pytest.approx(x.abs().max().item())
        parts = m._tile_partials(x, m.effective_weight())  # [N, n_rt, out]
        col_max = parts.abs().amax(0)  # [n_rt, out]
        per_col = m._per_column(m.adc_full_scale(), parts)  # [n_rt, out]
        want = torch.stack([col_max[:, b * 3:(b + 1) * 3].amax(1) for b in range(n_ct)], 1)
        assert torch.allclose(m.adc_range.float(), want, rtol=1e-6)  # the largest magnitude
        step = per_col / 7  # 4 bits: codes -7..7
        err = (adc_quantize(parts, 4, per_col) - parts).abs()
        worst = (err / step).max().item()
        # +-full scale are codes of the symmetric ADC, so no calibration partial clips.
        assert worst <= 0.5 + 1e-5, f"a calibration partial clips: error {worst:.3f} steps (max 0.5)"


def test_percentile_ranges_are_at_most_the_max_ranges(ideal):
    dev = ideal.replace(adc_bits=6, tile_rows=3)
    data = torch.rand(200, 10)
    mx, pc = _calib_model(dev), _calib_model(dev)
    r_max = xbar.calibrate_periphery(mx, data, method="max")
    r_pc = xbar.calibrate_periphery(pc, data, method="percentile", percentile=90.0)
    r_100 = xbar.calibrate_periphery(_calib_model(dev), data, method="percentile", percentile=100)
    for name in r_max:
        assert r_pc[name][0].shape == r_max[name][0].shape
        assert (r_pc[name][0] <= r_max[name][0]).all() and (r_pc[name][0] > 0).all()
        assert (r_pc[name][0] < r_max[name][0]).any()  # the 90th percentile clips the tail
        assert torch.allclose(r_100[name][0], r_max[name][0], rtol=1e-6)
        assert r_pc[name][1] <= r_max[name][1]
    for mode in (True, False):  # the model's mode is restored
        mx.train(mode)
        xbar.calibrate_periphery(mx, data)
        assert mx.training is mode and all(m.training is mode for m in mx)


@pytest.mark.parametrize("kwargs, name", [
    (dict(method="mean"), "method"),
    (dict(method="Max"), "method"),
    (dict(percentile=0), "percentile"),
    (dict(percentile=100.5), "percentile"),
    (dict(percentile=float("nan")), "percentile"),
    (dict(percentile="99"), "percentile"),
])
def test_calibration_argument_errors_name_the_argument(ideal, kwargs, name):
    model = _calib_model(ideal.replace(adc_bits=4))
    with pytest.raises(ValueError, match=f"^{name}:"):
        xbar.calibrate_periphery(model, torch.rand(4, 10), **kwargs)
    assert all(m._calibration is None for m in model.modules() if isinstance(m, xbar.CrossbarLinear))


@pytest.mark.parametrize("data", [[], iter([]), [(torch.rand(2, 10), 0)] * 3])
def test_calibration_without_batches_names_data(ideal, data):
    model = _calib_model(ideal.replace(adc_bits=4))
    kw = dict(max_batches=0) if isinstance(data, list) and data else {}
    with pytest.raises(ValueError, match="^data:"):
        xbar.calibrate_periphery(model, data, **kw)
    assert all(m._calibration is None and m.adc_range is None
               for m in model.modules() if isinstance(m, xbar.CrossbarLinear))


def test_calibrated_ranges_survive_state_dict_and_checkpoint(ideal, tmp_path):
    dev = ideal.replace(adc_bits=5, dac_bits=4, tile_rows=4, tile_cols=3)
    model = _calib_model(dev)
    data = torch.rand(16, 10)
    xbar.calibrate_periphery(model, data, method="percentile", percentile=99.0)
    x = torch.rand(7, 10) - 0.2
    with torch.no_grad():
        want = model(x)
    fresh = _calib_model(dev, seed=1)
    fresh.load_state_dict(model.state_dict())
    loaded = xbar.load(xbar.save(model, tmp_path / "m.pt"))
    for other in (fresh, loaded):
        for a, b in zip(model, other):
            if isinstance(a, xbar.CrossbarLinear):
                assert torch.equal(a.adc_range, b.adc_range) and a.dac_range == b.dac_range
        with torch.no_grad():
            assert torch.equal(other(x), want)
    # re-tiling invalidates the calibration (its shape no longer fits)
    layer = model[0]
    layer.profile = dev.replace(tile_rows=5)
    with torch.no_grad():
        layer(x)
    assert layer.adc_range is None and layer.tiles == (2, 3)


def test_uncalibrated_adc_range_survives_state_dict_round_trip(ideal):
    # BUG (xbar/layers.py): the uncalibrated ADC range `_full_scale` is computed in program()
    # only; load_state_dict refreshes the conductances and marks the layer programmed without
    # recomputing it, so the receiving layer keeps the range of its own former weights (the
    # same through xbar.load, which builds a fresh model and loads the state dict).
    dev = ideal.replace(adc_bits=4, tile_rows=3)
    a, b = _linear(dev, 7, 5, seed=0), _linear(dev, 7, 5, seed=1)
    b.load_state_dict(a.state_dict())
    assert torch.allclose(b.adc_full_scale(), full_scale(b.effective_weight().t(), 3, None)), (
        f"stale ADC range after load_state_dict: {b.adc_full_scale().flatten().tolist()} "
        f"vs {full_scale(b.effective_weight().t(), 3, None).flatten().tolist()}")
    x = torch.rand(10, 7)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# -- energy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tr, tc", [(None, None), (3, None), (3, 4), (10, 2), (4, 1)])
def test_adc_conversions_are_reads_times_outputs_times_row_tiles(ideal, tr, tc):
    dev = ideal.replace(adc_bits=4, tile_rows=tr, tile_cols=tc, adc_pj=1.5)
    layer = _linear(dev, 10, 6)
    x = _binary((5, 10))
    with xbar.EnergyMeter(layer, dev) as meter, torch.no_grad():
        layer(x)
        layer(x[:2])
    r = meter.report()
    reads = 7
    n_rt = tile_count(10, tr)
    assert r.samples == reads
    assert r.layers[0].adc_conversions * r.samples == pytest.approx(reads * 6 * n_rt)
    assert r.layers[0].adc_j * r.samples == pytest.approx(reads * 6 * n_rt * 1.5e-12)


def test_conv_adc_conversions_count_every_output_pixel_per_row_tile(ideal):
    dev = ideal.replace(adc_bits=4, tile_rows=8, adc_pj=1.0)
    layer = _conv(dev, padding=1, stride=2)  # 27 rows: 4 row tiles; 5 x 3 x 3 outputs
    x = _binary((2, 3, 6, 6))
    with xbar.EnergyMeter(layer, dev) as meter, torch.no_grad():
        layer(x)
    r = meter.report()
    assert r.layers[0].adc_conversions * r.samples == pytest.approx(2 * 5 * 3 * 3 * 4)


# -- SNN --------------------------------------------------------------------------------------


def _snn(dev, seed=0):
    torch.manual_seed(seed)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.rand(6, 1, 4, 4)
    snn = xbar.to_snn(xbar.to_crossbar(ann, dev), calibration=x, timesteps=8, norm="max",
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(1)))
    xbar.calibrate_periphery(snn, x, method="max")
    return snn, x


def test_snn_runs_with_adc_and_read_noise(ideal):
    snn, x = _snn(ideal.replace(adc_bits=5, tile_rows=5, read_sigma=0.02, dac_bits=3))
    layers = [m for m in snn.modules() if isinstance(m, xbar.CrossbarLinear)]
    assert all(m.adc_range is not None and m.dac_range == 1.0 for m in layers)  # spikes drive them
    with torch.no_grad():
        out = snn(x)
        again = snn(x)
    assert out.shape == (6, 3) and torch.isfinite(out).all()
    assert not torch.equal(out, again)  # fresh spikes and fresh read noise


def test_snn_with_adc_equals_the_step_by_step_run(ideal):
    snn, x = _snn(ideal.replace(adc_bits=5, tile_rows=5, tile_cols=4))
    with torch.no_grad():
        snn.encoder.generator.manual_seed(3)
        fast = snn(x)
        snn.encoder.generator.manual_seed(3)
        ref = step_by_step(snn, snn.encoder(x, 8))
        spikes = snn.encoder(x, 8)
        with_adc = snn.run(spikes)
        for m in snn.modules():  # the same network without the converters
            if isinstance(m, xbar.CrossbarLinear):
                m.profile = m.profile.ideal_periphery()
        without = snn.run(spikes)
    assert torch.equal(fast, ref)
    assert not torch.equal(with_adc, without)  # the ADC changed something


# -- straight-through gradients -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_hardware_read_backward_is_the_ideal_read_backward(ideal, kind):
    dev = ideal.replace(adc_bits=3, dac_bits=3, read_sigma=0.05, tile_rows=4, tile_cols=2)
    if kind == "linear":
        layer = _linear(dev, 9, 5, bias=True)
        x = torch.rand(6, 9)
    else:
        layer = _conv(dev, bias=True, padding=1)
        x = torch.rand(2, 3, 5, 5)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    w_eff = layer.effective_weight().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    y = layer(x1)
    up = torch.randn(y.shape)
    (y * up).sum().backward()
    ideal_y = F.linear(x2, w_eff, bias) if kind == "linear" else layer._conv_forward(x2, w_eff, bias)
    (ideal_y * up).sum().backward()
    assert not torch.allclose(y, ideal_y, atol=1e-3)  # the forward is the hardware read
    assert torch.allclose(layer.weight.grad, w_eff.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(layer.bias.grad, bias.grad, rtol=1e-5, atol=1e-6)


# -- device profile -----------------------------------------------------------------------------


def test_ideal_periphery_and_ideal_devices(ideal):
    dev = xbar.load_device("cmo-reram").replace(dac_bits=4, wire_ohm=1.5, d2d_sigma=0.01, stuck_off=0.01,
                                                drift_nu=0.02, levels=32)
    assert not dev.has_ideal_periphery
    p = dev.ideal_periphery()
    assert (p.adc_bits, p.dac_bits, p.tile_rows, p.tile_cols, p.wire_ohm) == (None, None, None, None, 0.0)
    assert (p.read_sigma, p.programming_sigma, p.d2d_sigma, p.stuck_off, p.drift_nu) == (
        dev.read_sigma, dev.programming_sigma, 0.01, 0.01, 0.02)
    assert p.states == dev.states and p.adc_pj == dev.adc_pj and p.name == "cmo-reram+ideal-periphery"
    assert p.has_ideal_periphery and p.flicker_q > 0  # read noise belongs to the devices
    d = dev.ideal_devices()
    assert (d.programming_sigma, d.read_sigma, d.d2d_sigma, d.stuck_off, d.stuck_on, d.drift_nu) == (0,) * 6
    assert d.programming_sigma_poly is None and d.flicker_q == 0 and dev.programming_sigma_poly is not None
    assert (d.adc_bits, d.dac_bits, d.tile_rows, d.tile_cols, d.wire_ohm) == (8, 4, 512, 512, 1.5)
    assert d.states == dev.states and d.name == "cmo-reram+ideal-devices"
    both = dev.ideal_devices().ideal_periphery()
    assert both.has_ideal_periphery
    assert ideal.replace(tile_rows=4, tile_cols=4).has_ideal_periphery  # tiling alone changes nothing


def test_negative_wire_resistance_is_refused(ideal, tmp_path):
    doc = ideal.to_dict()
    assert doc["periphery"]["wire_ohm"] == 0.0
    doc["periphery"]["wire_ohm"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(xbar.DeviceProfileError, match="periphery.wire_ohm") as err:
        xbar.load_device(path)
    assert err.value.field == "periphery.wire_ohm" and "bad.yaml" in str(err.value)
    with pytest.raises(xbar.DeviceProfileError, match="periphery.wire_ohm"):
        ideal.replace(wire_ohm=-0.5)
    doc["periphery"]["wire_ohm"] = 2.5  # and a good one reads back
    path.write_text(yaml.safe_dump(doc))
    assert xbar.load_device(path).wire_ohm == 2.5
