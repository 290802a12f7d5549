"""SpikingNetwork and to_snn: fused multi-step equals the step-by-step reference; thresholds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xbar
from reference import step_by_step


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12, bias=False), nn.ReLU(), nn.Linear(12, 8),
                         nn.ReLU(), nn.Linear(8, 3, bias=False))


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3))


@pytest.mark.parametrize("builder, shape", [(_mlp, (6, 1, 4, 4)), (_cnn, (6, 1, 6, 6))])
@pytest.mark.parametrize("device", [None, "seed-4bit"])
def test_fused_equalsstep_by_step(builder, shape, device):
    ann = builder()
    if device:
        ann = xbar.to_crossbar(ann, device)
    calib = torch.rand(*shape)
    snn = xbar.to_snn(ann, calibration=calib, timesteps=9, norm="max")
    g = torch.Generator().manual_seed(3)
    x_seq = (torch.rand(9, *shape, generator=g) < 0.5).float()
    with torch.no_grad():
        fused = snn.run(x_seq)
        ref = step_by_step(snn, x_seq)
    assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-6)


def test_state_is_reset_between_batches():
    snn = xbar.to_snn(_mlp(), calibration=torch.rand(8, 1, 4, 4), timesteps=5, norm="max")
    x_seq = (torch.rand(5, 2, 1, 4, 4) < 0.5).float()
    with torch.no_grad():
        a = snn.run(x_seq)
        b = snn.run(x_seq)
    assert torch.equal(a, b)


def test_crossbar_thresholds_are_currents(seed4):
    ann = xbar.to_crossbar(_mlp(), seed4)
    snn = xbar.to_snn(ann, calibration=torch.rand(16, 1, 4, 4), timesteps=4, norm="percentile")
    float_snn = xbar.to_snn(_mlp(), calibration=torch.rand(16, 1, 4, 4), timesteps=4, norm="percentile")
    wiring = snn.sync_thresholds()
    assert wiring.currents == {"1", "3"}  # the crossbars that feed IF layers are read as currents
    assert snn.graph.node("1").arg("integrated") and not snn.graph.node("5").arg("integrated")
    for stage, neuron in [(snn.stages[1], snn.stages[2]), (snn.stages[3], snn.stages[4])]:
        amps = neuron.weight_threshold * stage.scale * seed4.read_voltage
        assert torch.allclose(neuron.threshold, amps)
        assert neuron.threshold.item() < 1e-3  # amperes
    assert all(n.weight_threshold is None for n in float_snn.neurons())


def test_norm_none_uses_unit_thresholds():
    snn = xbar.to_snn(_mlp(), timesteps=4, norm="none")
    assert [n.threshold.item() for n in snn.neurons()] == [1.0, 1.0]


def test_percentile_thresholds_are_activation_ratios():
    ann = _mlp()
    calib = torch.rand(32, 1, 4, 4)
    snn = xbar.to_snn(ann, calibration=calib, timesteps=4, norm="max")
    with torch.no_grad():
        a1 = ann[:3](calib)
        a2 = ann[:5](calib)
    l1, l2 = a1.max().item(), a2.max().item()
    th = [n.threshold.item() for n in snn.neurons()]
    assert th == pytest.approx([l1, l2 / l1], rel=1e-5)
    # the bias of the second layer is divided by lambda_1
    assert torch.allclose(snn.stages[3].bias, ann[3].bias / l1)


def test_spike_norm_sets_threshold_to_peak_input():
    ann = _mlp()
    calib = torch.rand(8, 1, 4, 4)
    enc = xbar.PoissonEncoder(1.0, generator=torch.Generator().manual_seed(0))
    snn = xbar.to_snn(ann, calibration=calib, timesteps=6, norm="spike-norm", encoder=enc)
    enc.generator.manual_seed(0)
    spikes = enc(calib, 6)
    with torch.no_grad():
        first = ann[1](spikes.flatten(2)).max().item()
    assert snn.neurons()[0].threshold.item() == pytest.approx(first, rel=1e-5)
    assert all(n.threshold.item() > 0 for n in snn.neurons())


@pytest.mark.parametrize("kwargs, field", [
    ({"norm": "l2"}, "norm"), ({"timesteps": 0}, "timesteps"), ({"percentile": 0}, "percentile"),
    ({"norm": "max", "calibration": None}, "calibration"), ({"norm": "max", "calibration": []}, "calibration")])
def test_bad_arguments_are_named(kwargs, field):
    args = {"calibration": torch.rand(4, 1, 4, 4), "timesteps": 4, "norm": "max"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        xbar.to_snn(_mlp(), **args)


def test_unsupported_module_is_named():
    with pytest.raises(TypeError, match="Sigmoid"):
        xbar.to_snn(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2)), norm="none")


def test_converted_network_tracks_ann_on_long_runs():
    torch.manual_seed(0)
    ann = _mlp()
    x = torch.rand(64, 1, 4, 4)
    snn = xbar.to_snn(ann, calibration=x, timesteps=400, norm="max",
                      encoder=xbar.ConstantEncoder())
    with torch.no_grad():
        agree = (snn(x).argmax(1) == ann(x).argmax(1)).float().mean().item()
    assert agree > 0.9


def test_poisson_encoder_rates_and_validation():
    g = torch.Generator().manual_seed(0)
    enc = xbar.PoissonEncoder(0.5, generator=g)
    spikes = enc(torch.full((2000,), 0.6), 50)
    assert spikes.mean().item() == pytest.approx(0.3, abs=0.01)
    with pytest.raises(ValueError, match="max_rate"):
        xbar.PoissonEncoder(1.5)
    with pytest.raises(ValueError, match="images"):
        enc(torch.tensor([1.2]), 3)
    with pytest.raises(ValueError, match="timesteps"):
        enc(torch.tensor([0.2]), 0)


def test_same_generator_seed_same_logits():
    snn = xbar.to_snn(_mlp(), calibration=torch.rand(8, 1, 4, 4), timesteps=8, norm="max")
    x = torch.rand(4, 1, 4, 4)
    outs = []
    for _ in range(2):
        snn.encoder = xbar.PoissonEncoder(1.0, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            outs.append(snn(x))
    assert torch.equal(*outs)
