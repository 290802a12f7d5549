"""Graph networks: the tiled multi-step executor and its fast paths equal the step-by-step run
(same spikes, same outputs, same energy counts), and the digital work of graphs is counted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar
import xbar.execute as execute
from reference import step_by_step
from xbar.pooling import fast_avg_pool2d


def _dyadic(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights and biases multiples of 1/64: sums of spikes times weights are exact in float32."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randint(-40, 41, p.shape).float() / 64)
    return model


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class _Net(nn.Module):
    """Stem, max-pool, a residual block, a concatenation with an average-pooled branch, head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = _Block(4)
        self.side = nn.Conv2d(4, 2, 1)
        self.head = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        x = self.block(x)
        y = F.relu(self.side(x))
        z = torch.cat([F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)], 1)
        return self.head(torch.flatten(z, 1))


def _snn(device: str | None = None, t: int = 12) -> xbar.SpikingNetwork:
    ann = _dyadic(_Net())
    if device:
        ann = xbar.to_crossbar(ann, device)
    calib = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return xbar.to_snn(ann, calibration=calib, timesteps=t, norm="max",
                       encoder=xbar.PoissonEncoder(0.8, torch.Generator().manual_seed(2)))


def _spikes(t: int = 12, b: int = 5, seed: int = 3) -> torch.Tensor:
    return (torch.rand(t, b, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def _totals(snn, call) -> tuple[dict, list]:
    with torch.no_grad(), xbar.EnergyMeter(snn, "seed-4bit") as meter:
        out = call()
    rows = [(l.name, l.input_events, l.acs, l.macs, l.crossbar_j, l.neuron_updates, l.spikes, l.bias_adds,
             l.merge_adds, l.scale_muls, l.maxpool_ops) for l in meter.report().layers]
    return out, meter.raw_totals(), rows


@pytest.mark.parametrize("device", [None, "seed-4bit"])
def test_graph_run_equals_step_by_step(device):
    snn = _snn(device)
    x = _spikes()
    with torch.no_grad():
        fast, ref = snn.run(x), step_by_step(snn, x)
        seq, ref_seq = snn.run(x, return_sequence=True), step_by_step(snn, x, sequence=True)
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-6)
    assert torch.allclose(seq, ref_seq, rtol=1e-5, atol=1e-6)
    assert fast.abs().sum() > 0


def test_graph_has_the_ops_it_should():
    snn = _snn("seed-4bit")
    ops = [n.op for n in snn.graph]
    assert ops.count("add") == 1 and ops.count("cat") == 1
    kinds = {type(m).__name__ for m in snn.stages}
    assert {"SpikingMaxPool", "IFNeuron", "CrossbarConv2d", "CrossbarLinear", "AvgPool2d"} <= kinds
    wiring = snn.sync_thresholds()
    # the block's conv2 feeds the merge, which feeds an IF layer: read as currents
    assert "block.conv2" in wiring.currents and "head" not in wiring.currents
    ref = wiring.reference["block.add"]
    assert snn.graph.node("block.add").inputs[ref] == "block.conv2"  # the crossbar current is the reference
    assert wiring.factors["block.add"][1 - ref] != 1.0  # the shortcut's spikes are scaled into amperes


def test_tiles_over_the_batch_and_time_change_nothing(monkeypatch):
    snn = _snn("seed-4bit")
    x = _spikes(b=7)
    whole = _totals(snn, lambda: snn.run(x, binary=True))
    monkeypatch.setattr(execute, "TILE_ELEMENTS", 3 * 64 * 4)  # tiles of a few samples and steps
    with torch.no_grad():
        plan = execute._plan(snn, x, True, True, [], None, False)
    assert plan.bc < 7 and plan.tc < 12
    tiled = _totals(snn, lambda: snn.run(x, binary=True))
    assert torch.allclose(whole[0], tiled[0], rtol=1e-6, atol=1e-7)
    assert whole[1] == pytest.approx(tiled[1], rel=1e-12)
    for a, b in zip(whole[2], tiled[2]):
        assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-12)


def test_meter_counts_are_those_of_the_plain_run():
    snn = _snn("seed-4bit")
    x = _spikes()
    fast = _totals(snn, lambda: snn.run(x, binary=True))
    hooks = [m.register_forward_hook(lambda *a: None) for m in snn.stages]  # every fast path off
    try:
        plain = _totals(snn, lambda: snn.run(x))
    finally:
        for h in hooks:
            h.remove()
    assert torch.allclose(fast[0], plain[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(fast[2], plain[2]):
        assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-9)


def test_digital_work_is_counted_exactly():
    snn = _snn("seed-4bit", t=6)
    x = _spikes(t=6, b=3)
    seen: dict[str, torch.Tensor] = {}
    hooks = [snn.get_submodule(p).register_forward_hook(lambda m, a, o, p=p: seen.__setitem__(p, (a[0], o)))
             for p in ("stem", "block.conv1", "stem_1" if False else "block.conv2")]
    with torch.no_grad():
        snn.run(x)
    for h in hooks:
        h.remove()
    _, _, rows = _totals(snn, lambda: snn.run(x, binary=True))
    by = {r[0]: r for r in rows}
    reads = 6 * 3
    # biases: one add per output and read (stem and block.conv1 have biases, block.conv2 none)
    assert by["stem"][7] == pytest.approx(reads * 4 * 8 * 8 / 3)
    assert by["block.conv1"][7] == pytest.approx(reads * 4 * 4 * 4 / 3) and by["block.conv2"][7] == 0
    # the merge adds every spike of the shortcut into the crossbar current (per sample)
    shortcut = seen["block.conv1"][0]  # the block's input spikes are conv1's input
    assert by["block.add"][8] == pytest.approx(float(shortcut.sum()) / 3)
    assert by["block.add"][9] == 0  # spikes need no multiply
    # the max-pool: one counter increment per input spike, 3 comparisons per output and step
    pool = next(r for r in rows if r[0].endswith("max_pool2d"))
    stem_spikes = next(r for r in rows if r[0].endswith("relu") and r[0].startswith("relu"))[6]
    assert pool[10] == pytest.approx(stem_spikes + reads * 4 * 4 * 4 * 3 / 3)


def test_fast_avg_pool_is_bitwise_avg_pool():
    x = torch.randn(4, 3, 12, 12)
    for k in (2, 3, (2, 3), (3, 1)):
        pool = nn.AvgPool2d(k)
        assert torch.equal(fast_avg_pool2d(pool, x), pool(x))
    assert fast_avg_pool2d(nn.AvgPool2d(2, stride=1), x) is None  # overlapping windows: the plain op
    assert fast_avg_pool2d(nn.AvgPool2d(5), x) is None  # sides not divisible
    assert fast_avg_pool2d(nn.AvgPool2d(2, padding=1), x) is None


def test_fast_avg_pool_of_spikes_rows_first():
    """``integers=True`` (spikes, counts) sums rows first: still bitwise ``pool(x)``."""
    gen = torch.Generator().manual_seed(0)
    for x in ((torch.rand(4, 3, 12, 12, generator=gen) < 0.3).float(),
              torch.randint(0, 9, (2, 5, 12, 12), generator=gen).float()):
        for k in (2, 3, (2, 3), (3, 1), (1, 4)):
            pool = nn.AvgPool2d(k)
            assert torch.equal(fast_avg_pool2d(pool, x, integers=True), pool(x))


def test_output_is_in_ann_units_for_constant_input():
    # ideal device, constant-current input: the SNN's output converges to the ANN's as T grows
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(48, 4))
    x = torch.rand(6, 1, 8, 8)
    want = ann(x).detach()
    errs = []
    for t in (16, 256, 2048):
        snn = xbar.to_snn(xbar.to_crossbar(ann, "ideal"), calibration=x, timesteps=t, norm="max",
                          encoder=xbar.ConstantEncoder())
        with torch.no_grad():
            errs.append(float((snn(x) - want).abs().max()))
    assert errs[2] < errs[0] and errs[2] < 0.02 * float(want.abs().max())


@pytest.mark.parametrize("device", [None, "seed-4bit"])
def test_a_converted_graph_trains_by_bptt(device):
    from xbar.train import set_surrogate

    snn = set_surrogate(_snn(device, t=6)).train()
    x = _spikes(t=6, b=4)
    with torch.no_grad():
        plain = snn.run(x)
    out = snn.run(x)
    assert torch.allclose(out, plain, rtol=1e-5, atol=1e-6)  # the same forward under autograd
    F.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    grads = {n: p.grad for n, p in snn.named_parameters()}
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["block.conv2.weight"].abs().sum() > 0 and grads["stem.weight"].abs().sum() > 0


def test_window_pool_matrix_product_is_bitwise_avg_pool():
    """The matrix-product pool of contiguous spikes / counts (power-of-two windows scaled in the
    matrix, others divided afterwards) equals ``F.avg_pool2d`` bit for bit, float32 and float64."""
    gen = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64):
        for x in ((torch.rand(6, 4, 12, 12, generator=gen) < 0.4).to(dtype),
                  torch.randint(0, 9, (3, 2, 24, 12), generator=gen).to(dtype)):
            for k in (2, 3, 4, (2, 3), (3, 1), (1, 4), (4, 2)):
                pool = nn.AvgPool2d(k)
                got = fast_avg_pool2d(pool, x, integers=True)
                assert got.shape == pool(x).shape and torch.equal(got, pool(x)), (dtype, k)
    ones = torch.ones(1, 1, 4, 4)
    assert torch.equal(fast_avg_pool2d(nn.AvgPool2d(2), ones[..., :2], integers=True), torch.ones(1, 1, 2, 1))
