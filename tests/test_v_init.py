"""IF neurons starting from a fraction of their threshold (``v_init``): hand-worked counts,
fast paths equal to the step-by-step run, conversion and checkpoint round trip."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar
from xbar.neurons import IFNeuron
from reference import step_by_step


def test_hand_worked_trace() -> None:
    """th = 1, v_init = 0.5, input 0.3 each step: v 0.8, 1.1 -> fire (0.1), 0.4, 0.7, 1.0 -> fire."""
    n = IFNeuron(1.0, surrogate=None, step_mode="m", v_init=0.5)
    s = n(torch.full((5, 1), 0.3))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    torch.testing.assert_close(n.v, torch.tensor([0.0]), atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(x=st.floats(0.0, 1.0), steps=st.integers(1, 64), th=st.floats(0.25, 4.0))
def test_count_is_rounded_rate(x: float, steps: int, th: float) -> None:
    """Constant input x * th for T steps: floor(T x + 1/2) spikes (rounded, not floored)."""
    n = IFNeuron(th, surrogate=None, step_mode="m", v_init=0.5)
    drive = torch.tensor(x * th, dtype=torch.float64).to(torch.float32)
    count = int(n(drive.expand(steps, 1).clone()).sum())
    exact = steps * float(drive) / float(torch.tensor(th, dtype=torch.float32)) + 0.5
    assert count in {math.floor(exact), math.floor(exact - 1e-4), math.floor(exact + 1e-4)}


def test_reset_returns_to_v_init_and_single_equals_multi() -> None:
    torch.manual_seed(0)
    x = torch.rand(7, 3, 4)
    th = torch.tensor([0.5, 1.0, 2.0, 0.7])
    multi = IFNeuron(th, surrogate=None, step_mode="m", v_init=0.25)
    single = IFNeuron(th, surrogate=None, step_mode="s", v_init=0.25)
    a = multi(x)
    b = torch.stack([single(x[t]) for t in range(7)])
    assert torch.equal(a, b)
    multi.reset()
    assert torch.equal(multi(x), a)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2, "half", float("nan")])
def test_bad_v_init_named(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="v_init"):
        IFNeuron(1.0, v_init=bad)
    with pytest.raises(ValueError, match="v_init"):
        xbar.to_snn(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), norm="none", v_init=bad)


def _residual_cnn() -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(4 * 4 * 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.bn(self.conv(x)))
            h = self.pool(torch.relu(self.conv2(h) + h))
            return self.fc(h.flatten(1))

    torch.manual_seed(1)
    net = Net()
    net.bn.running_mean.uniform_(-0.2, 0.2)
    net.bn.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("crossbar", [False, True])
def test_graph_fast_path_equals_step_by_step(crossbar: bool) -> None:
    ann = _residual_cnn()
    model = xbar.to_crossbar(ann, "seed-4bit") if crossbar else ann
    x = torch.rand(5, 1, 8, 8)
    snn = xbar.to_snn(model, calibration=x, timesteps=9, v_init=0.5,
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(0)))
    assert snn.conversion["v_init"] == 0.5
    assert all(n.v_init == 0.5 for n in snn.neurons())
    spikes = snn.encoder(x, 9)
    with torch.no_grad():
        fast = snn.run(spikes)
        ref = step_by_step(snn, spikes)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-6)


def test_v_init_changes_the_run_and_default_does_not() -> None:
    """v_init = 0 is the old network bit for bit; 0.5 fires earlier."""
    ann = _residual_cnn()
    x = torch.rand(5, 1, 8, 8)
    outs = {}
    for v in (0.0, 0.5):
        snn = xbar.to_snn(ann, calibration=x, timesteps=6, v_init=v,
                          encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(0)))
        with torch.no_grad():
            outs[v] = snn(x)
    plain = xbar.to_snn(ann, calibration=x, timesteps=6, encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert torch.equal(plain(x), outs[0.0])
    assert not torch.equal(outs[0.0], outs[0.5])


def test_checkpoint_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ann = _residual_cnn()
    x = torch.rand(4, 1, 8, 8)
    snn = xbar.to_snn(xbar.to_crossbar(ann, "seed-4bit"), calibration=x, timesteps=5, v_init=0.5,
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(0)))
    xbar.save(snn, tmp_path / "snn.pt")
    back = xbar.load(tmp_path / "snn.pt")
    assert all(n.v_init == 0.5 for n in back.neurons())
    snn.encoder.generator.manual_seed(2)
    back.encoder.generator.manual_seed(2)
    with torch.no_grad():
        assert torch.equal(snn(x), back(x))
