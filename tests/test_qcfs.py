"""QCFS (Bu et al., ICLR 2022): the activation's values and gradients, the ReLU swap, and the
conversion ``to_snn(norm="qcfs")``: with levels = T, v_init = 1/2 and reset by subtraction, an IF
layer under a constant drive fires exactly the quantised activation times T."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar
from xbar.qcfs import QCFS, qcfs_clips, quantise, release_qcfs, to_qcfs


def test_hand_worked_values() -> None:
    """clip 2, L = 4: steps of 0.5, rounded half up, clamped to [0, 2]."""
    x = torch.tensor([-1.0, 0.0, 0.24, 0.26, 0.5, 1.0, 1.74, 1.76, 3.0])
    assert quantise(x, 2.0, 4).tolist() == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.5, 2.0, 2.0]


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-4, 12, allow_nan=False), clip=st.floats(0.25, 8), levels=st.integers(1, 16))
def test_matches_the_formula(x: float, clip: float, levels: int) -> None:
    """h(x) = clip * clamp(floor(x L / clip + 1/2) / L, 0, 1) (clamp after the floor)."""
    got = float(quantise(torch.tensor([x], dtype=torch.float64), clip, levels))
    u = x * levels / clip + 0.5
    if abs(u - round(u)) < 1e-9:
        return  # a tie: either side is the formula up to rounding
    want = clip * min(max(math.floor(u) / levels, 0.0), 1.0)
    assert got == pytest.approx(want, abs=1e-12)


def test_gradients_straight_through() -> None:
    q = QCFS(levels=4, clip=2.0)
    x = torch.tensor([-1.0, 0.3, 1.2, 3.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]  # floor passes, the clamp stops outside [0, clip]
    # d/dclip of clip * floor(clamp(x/clip) L + 1/2)/L with a straight-through floor:
    # q(x)/clip - x/clip inside, 1 above, 0 below
    want = (0.0) + (0.5 / 2 - 0.3 / 2) + (1.0 / 2 - 1.2 / 2) + 1.0
    assert float(q.clip.grad) == pytest.approx(want)


def test_module_arguments() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="levels"):
            QCFS(levels=bad)  # type: ignore[arg-type]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="clip"):
            QCFS(clip=bad)
    assert isinstance(QCFS().clip, nn.Parameter)
    assert not isinstance(QCFS(learn_clip=False).clip, nn.Parameter)


def test_to_qcfs_swaps_relu_modules() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 5), nn.ReLU()),
                        nn.Linear(5, 3))
    q = to_qcfs(net, levels=4, clip=3.0)
    assert isinstance(net[2], nn.ReLU) and isinstance(q[2], QCFS) and isinstance(q[3][1], QCFS)
    assert qcfs_clips(q) == {"2": 3.0, "3.1": 3.0}
    assert q[1].weight is not net[1].weight and torch.equal(q[1].weight, net[1].weight)
    assert to_qcfs(net, 2, inplace=True) is net and isinstance(net[2], QCFS)
    plain, clips, levels = release_qcfs(q)
    assert type(plain[2]) is nn.ReLU and type(q[2]) is QCFS and clips == {"2": 3.0, "3.1": 3.0}
    assert levels == {"2": 4, "3.1": 4}
    with pytest.raises(ValueError, match="nn.ReLU"):
        to_qcfs(nn.Linear(3, 2))
    assert xbar.to_qcfs is to_qcfs and xbar.QCFS is QCFS


def _dyadic_net(levels: int) -> nn.Sequential:
    """4-6-3, weights in multiples of 1/8 and clip 2: every sum below is exact in float32."""
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.randint(-8, 9, (6, 4), generator=g) / 8)
        net[2].weight.copy_(torch.randint(-8, 9, (3, 6), generator=g) / 8)
    net = to_qcfs(net, levels=levels, clip=2.0)
    return net.eval()


def _hidden_counts(snn: xbar.SpikingNetwork, x: torch.Tensor) -> torch.Tensor:
    node = next(n for n in snn.graph.module_nodes() if isinstance(snn.get_submodule(n.target), xbar.IFNeuron))
    parts: list[torch.Tensor] = []
    snn.capture(x, node.name, lambda s: parts.append(s.clone()))
    return torch.cat(parts, 0).sum(0)


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_exact_counts_constant_current(levels: int) -> None:
    """Analog constant input each step, T = L: counts = QCFS(W1 x) / clip * T exactly, and the
    output equals the quantised ANN's."""
    net = _dyadic_net(levels)
    x = torch.randint(0, 5, (64, 4), generator=torch.Generator().manual_seed(1)) / 4
    snn = xbar.to_snn(net, timesteps=levels, norm="qcfs", encoder=xbar.ConstantEncoder())
    assert snn.conversion["norm"] == "qcfs" and snn.conversion["v_init"] == 0.5
    assert snn.conversion["qcfs_levels"] == [levels]
    assert all(float(n.threshold) == 2.0 and n.v_init == 0.5 and n.reset_mode == "subtract" for n in snn.neurons())
    with torch.no_grad():
        want = net[1](net[0](x)) / 2.0 * levels
        assert torch.equal(_hidden_counts(snn, x), want)
        torch.testing.assert_close(snn(x), net(x), rtol=0, atol=1e-6)


def test_exact_counts_constant_spike_pattern() -> None:
    """A constant binary input pattern (the same spikes every step) is a constant drive too."""
    net = _dyadic_net(4)
    x = torch.randint(0, 2, (32, 4), generator=torch.Generator().manual_seed(2)).float()
    snn = xbar.to_snn(net, timesteps=4, norm="qcfs", encoder=xbar.PoissonEncoder(1.0))  # rate 1: p = pixel
    with torch.no_grad():
        assert torch.equal(_hidden_counts(snn, x), net[1](net[0](x)) / 2.0 * 4)


def test_the_condition_matters() -> None:
    """Without v_init = 1/2, or with T != L, the counts are not the quantised activation."""
    net = _dyadic_net(4)
    x = torch.randint(0, 5, (64, 4), generator=torch.Generator().manual_seed(1)) / 4
    with torch.no_grad():
        want = net[1](net[0](x)) / 2.0 * 4
        rest = xbar.to_snn(net, timesteps=4, norm="qcfs", v_init=0.0, encoder=xbar.ConstantEncoder())
        assert not torch.equal(_hidden_counts(rest, x), want)
        longer = xbar.to_snn(net, timesteps=8, norm="qcfs", encoder=xbar.ConstantEncoder())
        assert not torch.equal(_hidden_counts(longer, x) / 2, want)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), levels=st.integers(1, 8), clip=st.floats(0.5, 4.0),
       crossbar=st.booleans())
def test_counts_property(seed: int, levels: int, clip: float, crossbar: bool) -> None:
    """Random 4-6-3 nets (float or ideal crossbars, whose thresholds are currents): every count is
    the quantised activation times T, but where x L / clip + 1/2 is within rounding of a tie."""
    torch.manual_seed(seed)
    net = to_qcfs(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)), levels=levels, clip=clip).eval()
    model = xbar.to_crossbar(net, "ideal") if crossbar else net
    x = torch.rand(16, 4)
    snn = xbar.to_snn(model, timesteps=levels, norm="qcfs", encoder=xbar.ConstantEncoder())
    with torch.no_grad():
        pre = model[0](x).double()
        u = pre * levels / float(net[1].clip) + 0.5
        want = torch.clamp(torch.floor(u), 0, levels)
        got = _hidden_counts(snn, x).double()
    near_tie = (u - torch.round(u)).abs() < 1e-4
    assert torch.equal(got[~near_tie], want[~near_tie])


def test_refusals() -> None:
    plain = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with pytest.raises(ValueError, match="QCFS"):
        xbar.to_snn(plain, norm="qcfs")

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(4, 6), QCFS(4), nn.Linear(6, 5), nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc3(torch.relu(self.fc2(self.act(self.fc1(x)))))

    with pytest.raises(ValueError, match="relu.*no|none"):
        xbar.to_snn(Mixed(), norm="qcfs")
    with pytest.raises(ValueError, match="channelwise"):
        xbar.to_snn(_dyadic_net(4), norm="qcfs", calibration=torch.rand(8, 4), channelwise=True)


def test_other_norms_treat_qcfs_as_relu() -> None:
    net = _dyadic_net(4)
    x = torch.rand(32, 4)
    gm = xbar.normalised_ann(net)
    assert any(type(m) is nn.ReLU for m in gm.modules()) and not any(isinstance(m, QCFS) for m in gm.modules())
    snn = xbar.to_snn(net, calibration=x, norm="max", timesteps=4)
    assert snn.conversion["v_init"] == 0.0 and float(snn.neurons()[0].threshold) != 2.0


def test_shared_qcfs_module_called_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3, self.act = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3), QCFS(4, 1.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))

    snn = xbar.to_snn(Twice(), norm="qcfs", timesteps=4)
    assert len(snn.neurons()) == 2
    assert float(snn.neurons()[0].threshold) == 1.5 and float(snn.neurons()[1].threshold) == 1.0  # 1.5 / 1.5


def test_crossbar_checkpoint_and_meter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A QCFS network on seed-4bit crossbars: thresholds are currents, the energy meter runs and
    a checkpoint gives the same outputs and conversion settings back."""
    torch.manual_seed(0)
    net = to_qcfs(nn.Sequential(nn.Flatten(), nn.Linear(16, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False)),
                  levels=4, clip=1.0).eval()
    hw = xbar.to_crossbar(net, "seed-4bit")
    snn = xbar.to_snn(hw, norm="qcfs", timesteps=4, encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(0)))
    th = snn.neurons()[0]
    assert th.weight_threshold is not None and float(th.weight_threshold) == pytest.approx(1.0)
    assert float(th.threshold) < 1e-2  # amperes
    x = torch.rand(5, 1, 4, 4)
    with xbar.EnergyMeter(snn, "seed-4bit") as meter, torch.no_grad():
        snn(x)
    assert meter.report().joules > 0
    xbar.save(snn, tmp_path / "q.pt")
    back = xbar.load(tmp_path / "q.pt")
    assert back.conversion["norm"] == "qcfs" and back.conversion["qcfs_levels"] == [4]
    assert all(n.v_init == 0.5 for n in back.neurons())
    snn.encoder.generator.manual_seed(4)
    back.encoder.generator.manual_seed(4)
    with torch.no_grad():
        assert torch.equal(snn(x), back(x))


class _Block(nn.Module):
    """A residual block whose ReLUs are a module and an ``F.relu`` after the addition."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act = nn.Conv2d(2, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU()
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu(self.conv2(self.act(self.bn1(self.conv1(x)))) + x)


class _ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.block, self.fc = nn.Conv2d(1, 2, 3, padding=1), _Block(), nn.Linear(2 * 36, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.block(torch.relu(self.stem(x))), 1))


def test_functional_relus_become_qcfs_in_a_graph() -> None:
    """F.relu / torch.relu call sites are swapped too (the model comes back as a GraphModule with
    the model's parameter paths), the result trains, and to_snn(norm="qcfs") converts it."""
    torch.manual_seed(0)
    model = _ResNet().eval()
    q = to_qcfs(model, levels=4, clip=2.0)
    assert isinstance(q, torch.fx.GraphModule)
    assert set(qcfs_clips(q)) == {"relu", "block.act", "block.relu"}
    assert set(q.state_dict()) >= set(model.state_dict()), "parameters keep their paths"
    assert not any(type(m) is nn.ReLU for m in q.modules())
    x = torch.rand(5, 1, 6, 6)
    # with many levels and a wide clip, QCFS is the ReLU up to half a step: the same outputs
    fine = to_qcfs(model, levels=100_000, clip=50.0).eval()
    assert torch.allclose(fine(x), model(x), atol=1e-3)
    q.train()
    q(x).sum().backward()
    assert q.get_submodule("block.relu").clip.grad is not None
    snn = xbar.to_snn(q.eval(), norm="qcfs", timesteps=4)
    assert len(snn.neurons()) == 3 and snn.conversion["v_init"] == 0.5 and snn.conversion["qcfs_levels"] == [4]
    # thresholds are clip ratios lambda_l / lambda_(l-1) (weights are normalised by the input's
    # scale): the first layer's 2 / 1, the next two 2 / 2
    assert sorted(float(n.threshold) for n in snn.neurons()) == pytest.approx([1.0, 1.0, 2.0])
    # a state dict of one loads into a fresh to_qcfs of the same model class
    again = to_qcfs(_ResNet(), levels=4)
    again.load_state_dict(q.state_dict())
    assert torch.equal(again.eval()(x), q(x))
