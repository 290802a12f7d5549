"""Checkpoints of graphs and of users' own classes: bit-identical round trips, plain data only,
and checkpoints of the flat format (version 1) still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar

DATA = Path(__file__).parent / "data"


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.bn1(self.conv1(x)))) + x)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.layer1 = nn.Sequential(_Block(3))
        self.head = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        return self.head(self.layer1(x).flatten(1))


def _noisy(model: nn.Module) -> None:
    """A programming no call to program() would draw again."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, xbar.layers.CROSSBAR_TYPES):
                m.g_pos.mul_(1 + 0.05 * torch.randn_like(m.g_pos))
                m._refresh_effective()


def _graph_snn() -> xbar.SpikingNetwork:
    torch.manual_seed(0)
    net = _Net()
    with torch.no_grad():
        bn = net.layer1[0].bn1
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    snn = xbar.to_snn(xbar.to_crossbar(net, "seed-4bit"), calibration=torch.rand(8, 1, 8, 8), timesteps=5,
                      norm="percentile", encoder=xbar.PoissonEncoder(0.9, torch.Generator().manual_seed(4)))
    _noisy(snn)
    return snn


def test_graph_snn_round_trip_is_bit_identical(tmp_path):
    snn = _graph_snn()
    path = xbar.save(snn, tmp_path / "g.pt", metadata={"chip": 7})
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["format_version"] == 2 and raw["spec"]["type"] == "SpikingNetwork"
    assert [n["op"] for n in raw["spec"]["graph"]].count("add") == 1
    loaded = xbar.load(path)
    assert loaded.checkpoint_metadata == {"chip": 7}
    assert [n.to_data() for n in loaded.graph] == [n.to_data() for n in snn.graph]
    assert loaded.get_submodule("layer1.0.conv2").__class__ is xbar.CrossbarConv2d
    for (ka, a), (kb, b) in zip(snn.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), ka
    x = torch.rand(3, 1, 8, 8)
    snn.encoder.generator.manual_seed(1)
    loaded.encoder.generator.manual_seed(1)
    with torch.no_grad():
        assert torch.equal(snn(x), loaded(x))
    with xbar.EnergyMeter(snn) as m1, torch.no_grad():
        snn.run((torch.rand(5, 3, 1, 8, 8) < 0.5).float())
    assert m1.report().layers  # metering a loaded graph works too
    with xbar.EnergyMeter(loaded) as m2, torch.no_grad():
        loaded.run((torch.rand(5, 3, 1, 8, 8) < 0.5).float())
    assert [l.name for l in m2.report().layers] == [l.name for l in m1.report().layers]


def test_a_damaged_graph_is_refused(tmp_path):
    path = xbar.save(_graph_snn(), tmp_path / "g.pt")
    raw = torch.load(path, weights_only=True)
    raw["spec"]["graph"][3]["op"] = "exec"
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(xbar.CheckpointError, match="bad.pt.*unknown op 'exec'"):
        xbar.load(tmp_path / "bad.pt")


def test_a_users_crossbar_model_loads_into_a_fresh_instance(tmp_path):
    torch.manual_seed(0)
    hw = xbar.to_crossbar(_Net(), "seed-4bit")
    _noisy(hw)
    path = xbar.save(hw, tmp_path / "u.pt")
    with pytest.raises(xbar.CheckpointError, match=r"class .*_Net.*model=_Net\(\.\.\.\)"):
        xbar.load(path)
    torch.manual_seed(1)  # another initialisation: everything must come from the file
    loaded = xbar.load(path, model=_Net())
    assert isinstance(loaded.layer1[0].conv1, xbar.CrossbarConv2d) and isinstance(loaded.head, xbar.CrossbarLinear)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(hw.eval()(x), loaded(x))
    with pytest.raises(xbar.CheckpointError, match="head"):
        wrong = _Net()
        wrong.head = nn.Linear(48, 5)
        xbar.load(path, model=wrong)


def test_flat_checkpoints_of_format_1_still_load():
    loaded = xbar.load(DATA / "v1_mlp_snn.pt")
    meta = loaded.checkpoint_metadata
    x = (torch.rand(6, 4, 1, 4, 4, generator=torch.Generator().manual_seed(meta["spikes_seed"])) < 0.5).float()
    with torch.no_grad():
        out = loaded.run(x)
    assert torch.equal(out, torch.tensor(meta["logits_v1"]))  # a flat network keeps its old output units
    assert loaded.neurons()[0].weight_threshold.item() == meta["lambda1"]
