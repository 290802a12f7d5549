"""NeuroBench-compatible counts: xbar's effective ACs / MACs and activation sparsity equal
NeuroBench 2.3's own ``SynapticOperations`` and ``ActivationSparsity`` on the same model and
spikes, and the digital twin that NeuroBench needs (it re-runs binarised copies of every Linear /
Conv, which would re-program a crossbar copy).

The comparison needs ``neurobench`` (``pip install -e ".[interchange-test]"``); without it those
tests skip, saying so. The twin's own tests need nothing extra.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import xbar

T = 8


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8, bias=False), nn.ReLU(),
                         nn.Linear(8, 3))


def cnn() -> nn.Module:
    """conv - pool - conv - flatten - linear on 1 x 8 x 8: the second conv reads analog values
    (the average pool's), which both count as MACs."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 6, 3, bias=False),
                         nn.ReLU(), nn.Flatten(), nn.Linear(24, 3))


SHAPES = {"mlp": (1, 4, 4), "cnn": (1, 8, 8)}
MODELS = {"mlp": mlp, "cnn": cnn}


def converted(name: str, seed4) -> xbar.SpikingNetwork:
    torch.manual_seed(3)
    hw = xbar.to_crossbar(MODELS[name]().eval(), seed4)
    return xbar.to_snn(hw, calibration=torch.rand(64, *SHAPES[name]), timesteps=T, norm="percentile",
                       percentile=90.0)


def input_spikes(name: str, batch: int = 6) -> torch.Tensor:
    return (torch.rand(T, batch, *SHAPES[name], generator=torch.Generator().manual_seed(5)) < 0.5).float()


def metered(net: nn.Module, spikes: torch.Tensor, seed4) -> xbar.EnergyReport:
    with xbar.EnergyMeter(net, seed4) as meter, torch.no_grad():
        net.run(spikes)
    return meter.report()


# -- the digital twin -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_twin_holds_the_effective_weights_and_runs_the_same_network(name, seed4):
    snn = converted(name, seed4)
    twin = xbar.digital_twin(snn)
    for path, m in twin.graph_modules().items():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert type(m) in (nn.Linear, nn.Conv2d), f"{path} is still a {type(m).__name__}"
            assert torch.equal(m.weight, snn.get_submodule(path).effective_weight())
    assert isinstance(snn.get_submodule("0" if name == "cnn" else "1"), xbar.layers.CROSSBAR_TYPES)
    spikes = input_spikes(name)
    a, b = metered(snn, spikes, seed4), metered(twin, spikes, seed4)
    assert [layer.spikes for layer in a.layers] == [layer.spikes for layer in b.layers]
    assert a.effective_acs == b.effective_acs and a.effective_macs == b.effective_macs and a.acs == b.acs
    with torch.no_grad():
        torch.testing.assert_close(twin.run(spikes), snn.run(spikes), rtol=1e-5, atol=1e-6)
    master = xbar.digital_twin(snn, weights="float")
    first = next(p for p, m in master.graph_modules().items() if isinstance(m, (nn.Linear, nn.Conv2d)))
    assert torch.equal(master.get_submodule(first).weight, snn.get_submodule(first).weight)
    with pytest.raises(ValueError, match="weights"):
        xbar.digital_twin(snn, weights="master")


def test_twin_of_a_hand_built_chain_turns_current_thresholds_into_weight_units(seed4):
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(6, 4, bias=False, profile=seed4)
    amps = float(layer.current_scale())
    net = xbar.SpikingNetwork([xbar.CurrentReadout(layer), xbar.IFNeuron(0.4 * amps, step_mode="m"),
                               nn.Linear(4, 2)], timesteps=T)
    twin = xbar.digital_twin(net)
    assert type(twin.get_submodule("0")) is nn.Linear
    assert twin.get_submodule("1").threshold.item() == pytest.approx(0.4, rel=1e-6)
    spikes = (torch.rand(T, 5, 6) < 0.6).float()
    with torch.no_grad():
        torch.testing.assert_close(twin.run(spikes), net.run(spikes), rtol=1e-5, atol=1e-6)


# -- against NeuroBench itself ------------------------------------------------------------------

class _Batched(nn.Module):
    """NeuroBench feeds ``[B, T, ...]``; a spiking network runs ``[T, B, ...]``."""

    def __init__(self, snn: xbar.SpikingNetwork) -> None:
        super().__init__()
        self.snn = snn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.snn.run(x.transpose(0, 1).contiguous())


def neurobench_counts(net: xbar.SpikingNetwork, spikes: torch.Tensor) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("neurobench", reason="neurobench is not installed: pip install -e '.[interchange-test]'")
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
        from neurobench.models import TorchModel
    model = TorchModel(_Batched(net))
    model.add_activation_module(xbar.IFNeuron)
    data = torch.utils.data.TensorDataset(spikes.transpose(0, 1), torch.zeros(spikes.shape[1], dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=spikes.shape[1])
    bench = Benchmark(model, loader, [], [], [[], [SynapticOperations, ActivationSparsity]])
    with torch.no_grad():
        return bench.run(quiet=True)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_effective_counts_equal_neurobench_on_the_twin(name, seed4):
    """On the digital twin and the same spikes: xbar's effective_acs / effective_macs are
    NeuroBench's Effective_ACs / Effective_MACs, its activation_sparsity NeuroBench's; and the
    crossbar network's own report gives the same numbers."""
    snn = converted(name, seed4)
    twin = xbar.digital_twin(snn)
    spikes = input_spikes(name)
    ours, theirs = metered(snn, spikes, seed4), neurobench_counts(twin, spikes)
    ops = theirs["SynapticOperations"]
    n = spikes.shape[1]  # per sample in both; the whole counts are integers
    assert round(ours.effective_acs * n, 6) == round(ops["Effective_ACs"] * n, 6)
    assert round(ours.effective_macs * n, 6) == round(ops["Effective_MACs"] * n, 6)
    print(f"{name}: xbar effective ACs {ours.effective_acs:.6g} / MACs {ours.effective_macs:.6g} (ACs, zero weights "
          f"included: {ours.acs:.6g}), NeuroBench {ops}, sparsity {ours.activation_sparsity:.6g} vs "
          f"{theirs['ActivationSparsity']:.6g}")
    assert ours.activation_sparsity == pytest.approx(theirs["ActivationSparsity"], abs=1e-12)
    assert 0 < ours.effective_acs < ours.acs, "zero effective weights are not counted; xbar's ACs count them"
    if name == "cnn":
        assert ours.effective_macs > 0, "the average pool's output is analog: MACs in both conventions"
