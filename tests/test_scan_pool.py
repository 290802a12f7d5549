"""The fused ``layer -> IF -> AvgPool2d`` block (xbar.scan_pool, xbar.fusion, the executor's
_run_block) equals the three steps run apart: bit for bit, with the same energy counts and the
same NaN / overflow errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar
import xbar.execute as execute
import xbar.scan
import xbar.scan_pool as scan_pool
from xbar.fusion import blocks
from xbar.scan import _scan
from xbar.scan_pool import scan_avg_pool


def _apart(x, th, v, subtract, kernel, gain):
    x = x.clone() if gain is None else x * gain
    count = torch.zeros((), dtype=torch.float64)
    spikes, v, _ = _scan(x, th, v.clone(), subtract, False, count=count)
    t, b = x.shape[:2]
    pooled = F.avg_pool2d(spikes.reshape(t * b, *x.shape[2:]), kernel)
    return pooled.reshape(t, b, *pooled.shape[1:]), v, count


@pytest.mark.parametrize("subtract", [True, False])
@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (2, 1), (1, 4)])
@pytest.mark.parametrize("chunk", [None, 150])  # one block / blocks of one sample
def test_scan_avg_pool_is_the_three_steps(monkeypatch, subtract, kernel, chunk):
    if chunk is not None:
        monkeypatch.setattr(scan_pool, "_SCAN_CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(9, 4, 3, 12, 12, generator=gen) * 0.7
    th = torch.tensor([0.9, 1.0, 1.3]).view(3, 1, 1)
    v = torch.rand(4, 3, 12, 12, generator=gen) * 0.5
    gain = torch.tensor(1.7)
    for g in (None, gain):
        ref = _apart(x, th, v, subtract, kernel, g)
        count = torch.zeros((), dtype=torch.float64)
        got = scan_avg_pool(x.clone(), th, v.clone(), subtract, kernel, g, count)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        assert float(count) == float(ref[2]) > 0


@pytest.mark.parametrize("size", [4, 4096])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pooled_sum_is_exact_beyond_float32s_integers(size, dtype):
    # 20000 multiples of 1 / 4096 add up to ~10000: 4e7 steps of 1 / 4096, past float32's 2**24
    gen = torch.Generator().manual_seed(5)
    pooled = (torch.randint(0, size + 1, (20000,), generator=gen).to(torch.float64) / size)
    exact = pooled.sum()  # float64: exact
    got = scan_pool.pooled_sum(pooled.to(dtype).view(100, 2, 10, 10), size)
    assert got.dtype == torch.float64 and float(got) == float(exact)


def test_scan_avg_pool_refuses_what_it_cannot_pool():
    with pytest.raises(ValueError, match="kernel"):
        scan_avg_pool(torch.zeros(2, 1, 1, 5, 4), torch.tensor(1.0), torch.zeros(1, 1, 5, 4), True, (2, 2))
    with pytest.raises(ValueError, match="x: expected"):
        scan_avg_pool(torch.zeros(2, 1, 4, 4), torch.tensor(1.0), torch.zeros(1, 4, 4), True, (2, 2))


class _Cnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(torch.relu(self.c1(x)), 2)
        x = F.avg_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


def _snn(device: str | None = "seed-4bit") -> xbar.SpikingNetwork:
    torch.manual_seed(0)
    ann = _Cnn()
    if device:
        ann = xbar.to_crossbar(ann, device)
    calib = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return xbar.to_snn(ann, calibration=calib, timesteps=10, norm="max")


def test_blocks_are_found_from_the_graph_structure():
    snn = _snn()
    run = list(snn.graph.nodes[1:-1])
    found = blocks(snn, run, set())
    assert set(found) == {"c1", "c2"}
    assert found["c1"].pool is not None and found["c1"].neuron.inputs == ("c1",)
    keep = {found["c1"].neuron.name}  # the spikes must stay visible: no pool fused
    assert blocks(snn, run, keep)["c1"].pool is None
    assert "c1" not in blocks(snn, run, {"c1"})  # the layer's own output must stay visible


def _run(snn, x, fused: bool, monkeypatch):
    if not fused:
        monkeypatch.setattr(execute, "blocks", lambda *a: {})
    with torch.no_grad(), xbar.EnergyMeter(snn, "seed-4bit") as meter:
        out = snn.run(x, binary=True)
    monkeypatch.undo()
    rows = [(l.name, l.input_events, l.acs, l.macs, l.crossbar_j, l.neuron_updates, l.spikes)
            for l in meter.report().layers]
    return out, rows


@pytest.mark.parametrize("device", [None, "seed-4bit"])
def test_fused_run_is_bitwise_the_plain_run(monkeypatch, device):
    snn = _snn(device)
    x = (torch.rand(10, 5, 1, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    fused, plain = _run(snn, x, True, monkeypatch), _run(snn, x, False, monkeypatch)
    assert torch.equal(fused[0], plain[0]) and fused[0].abs().sum() > 0
    assert fused[1] == plain[1]
    assert any(r[6] > 0 for r in fused[1])  # spikes were counted


@pytest.mark.parametrize("bad", ["nan", "overflow"])
def test_fused_block_raises_as_the_plain_run_does(monkeypatch, bad):
    snn = _snn()
    x = torch.rand(4, 2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    if bad == "nan":
        x[1, 0, 0, 3, 3] = float("nan")
    else:
        x[1] = 3e38  # finite drives whose sums overflow
    errors = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(execute, "blocks", lambda *a: {})
        with torch.no_grad(), pytest.raises(ValueError) as info:
            snn.run(x)
        monkeypatch.undo()
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert ("NaN" in errors[0]) if bad == "nan" else ("overflowed" in errors[0])


@pytest.mark.parametrize("subtract", [True, False])
@pytest.mark.parametrize("small", [True, False])  # x whole in one op / step by step, chunk by chunk
def test_scan_gain_is_the_multiplication_before_it(monkeypatch, subtract, small):
    monkeypatch.setattr(xbar.scan, "_SCAN_CHUNK", 100)  # several chunks
    monkeypatch.setattr(xbar.scan, "_SMALL", 1 << 20 if small else 0)
    gen = torch.Generator().manual_seed(5)
    x, v = torch.rand(7, 3, 90, generator=gen), torch.rand(3, 90, generator=gen)
    gain, th = torch.tensor(0.37), torch.tensor(0.3)
    ref = _scan(x * gain, th, v.clone(), subtract, False)
    count = torch.zeros((), dtype=torch.float64)
    got = _scan(x.clone(), th, v.clone(), subtract, False, count=count, gain=gain)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]) and got[0].sum() > 0
    assert float(count) == float(ref[0].sum())


def test_deferred_checks_are_this_threads_only():
    import threading

    from xbar.validation import value_checks_deferred, value_checks_enabled

    seen = []
    with value_checks_deferred() as must_check:
        assert must_check and not value_checks_enabled()
        worker = threading.Thread(target=lambda: seen.append(value_checks_enabled()))
        worker.start()
        worker.join()
    assert seen == [True] and value_checks_enabled()


def test_no_matrix_product_pool_under_reduced_matmul_precision():
    """With ``set_float32_matmul_precision("medium")`` the product could round its inputs: the
    pool takes the slices instead, still bitwise ``F.avg_pool2d``."""
    from xbar.pooling import exact_product, fast_avg_pool2d

    x = torch.randint(0, 300, (2, 3, 8, 8)).float()
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert not exact_product(x) and exact_product(x.double())
        assert torch.equal(fast_avg_pool2d(nn.AvgPool2d(2), x, integers=True), F.avg_pool2d(x, 2))
    finally:
        torch.set_float32_matmul_precision(previous)
    assert exact_product(x)
