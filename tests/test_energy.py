"""EnergyMeter: hand-worked joules, ACs = spikes x fan-out, counts add up, hooks removed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xbar

W = torch.tensor([[1.0, -0.4], [0.25, 0.0], [-1.0, 0.6]])


def _layer(dev):
    lin = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(W)
    return xbar.CrossbarLinear.from_linear(lin, dev)


def test_hand_worked_2x3_joules(seed4):
    layer = _layer(seed4)
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(torch.tensor([[1.0, 1.0]]))
    r = meter.report()
    # Row conductance sums (G+ + G-): row 0 = 110 + 44 + 110 = 264 uS, row 1 = 56 + 20 + 74 = 150 uS.
    # E = t_read * V^2 * sum_i x_i^2 * sum_j (G+ + G-) = 10 ns * 0.04 V^2 * 414 uS.
    assert r.crossbar_j == pytest.approx(10e-9 * 0.04 * 414e-6, rel=1e-5)
    assert r.acs == 6 and r.input_events == 2 and r.macs == 0
    assert r.layers[0].adc_conversions == 0, "no ADC on seed-4bit: the neurons read analog currents"
    assert r.digital_snn_j == pytest.approx(6 * 0.9e-12)
    assert r.digital_ann_j == pytest.approx(6 * 4.6e-12)


def test_column_reads_and_with_periphery_hand_worked(seed4):
    """Column reads are counted without an ADC (3 columns x 2 reads); ``with_periphery`` prices
    them and the IF layer's updates and spikes, and leaves the crossbar and counts alone."""
    layer = _layer(seed4)
    net = nn.Sequential(layer, xbar.IFNeuron(threshold=0.5))
    with xbar.EnergyMeter(net, seed4) as meter:
        with torch.no_grad():
            net(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    r = meter.report()
    assert r.column_reads == pytest.approx(3.0) and r.adc_conversions == 0  # 2 reads x 3 columns / 2 samples
    priced = r.with_periphery(adc_pj=2.0, neuron_update_pj=1.0, spike_pj=0.5)
    spikes, updates = r.spikes, r.neuron_updates
    assert updates == pytest.approx(3.0)
    assert priced.adc_conversions == pytest.approx(3.0) and priced.adc_j == pytest.approx(3.0 * 2e-12)
    assert priced.neuron_j == pytest.approx(updates * 1e-12 + spikes * 0.5e-12)
    assert priced.crossbar_j == r.crossbar_j and priced.acs == r.acs
    assert priced.joules == pytest.approx(r.crossbar_j + 6e-12 + updates * 1e-12 + spikes * 0.5e-12)
    assert r.adc_j == 0 and r.neuron_j == 0, "the original report is unchanged"
    with pytest.raises(ValueError, match="adc_pj"):
        r.with_periphery(adc_pj=-1.0)


def test_analog_input_counts_macs_and_squares_drive(seed4):
    layer = _layer(seed4)
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(torch.tensor([[0.5, 0.0]]))
    r = meter.report()
    assert r.acs == 0 and r.macs == 3
    assert r.crossbar_j == pytest.approx(10e-9 * 0.04 * 0.25 * 264e-6, rel=1e-5)


def test_counts_add_over_batches_and_reset(seed4):
    layer = _layer(seed4)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(x)
            layer(x)
        r = meter.report()
        assert r.samples == 4 and r.acs == pytest.approx((3 + 6) / 2)
        meter.reset()
        assert meter.report().acs == 0
        with torch.no_grad():
            layer(x[:1])
        assert meter.report().acs == 3
    assert not layer._forward_hooks and not layer._forward_pre_hooks


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 3), cout=st.integers(1, 3), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 2), p=st.floats(0.05, 0.9))
def test_conv_acs_equal_spikes_times_exact_fanout(cin, cout, k, stride, pad, p, ideal):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)
    x = (torch.rand(3, cin, 7, 8) < p).float()
    with xbar.EnergyMeter(conv, ideal) as meter:
        with torch.no_grad():
            conv(x)
    brute = F.conv2d(x, torch.ones(cout, cin, k, k), stride=stride, padding=pad).sum().item()
    assert meter.report().acs == pytest.approx(brute / 3, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(n_in=st.integers(1, 20), n_out=st.integers(1, 9), p=st.floats(0.0, 1.0))
def test_linear_acs_equal_spikes_times_fanout(n_in, n_out, p, ideal):
    lin = nn.Linear(n_in, n_out, bias=False)
    x = (torch.rand(4, n_in) < p).float()
    with xbar.EnergyMeter(lin, ideal) as meter:
        with torch.no_grad():
            lin(x)
    assert meter.report().acs == pytest.approx(x.sum().item() * n_out / 4)


def test_conv_crossbar_energy_matches_unrolled_reads(seed4):
    torch.manual_seed(1)
    conv = xbar.CrossbarConv2d.from_conv2d(nn.Conv2d(2, 3, 3, padding=1, bias=False), seed4)
    x = (torch.rand(1, 2, 5, 5) < 0.4).float()
    with xbar.EnergyMeter(conv, seed4) as meter:
        with torch.no_grad():
            conv(x)
    patches = F.unfold(x, 3, padding=1)[0]  # [Cin*9, positions]: one crossbar read per column
    gsum = (conv.g_pos + conv.g_neg).reshape(3, -1).sum(0)  # per row, summed over columns
    brute = 10e-9 * 0.04 * (patches.T ** 2 @ gsum).sum().item()
    assert meter.report().crossbar_j == pytest.approx(brute, rel=1e-5)


def test_snn_meter_per_sample_spikes_and_neurons(seed4):
    torch.manual_seed(0)
    ann = xbar.to_crossbar(nn.Sequential(nn.Flatten(), nn.Linear(16, 10, bias=False), nn.ReLU(),
                                         nn.Linear(10, 3, bias=False)), seed4)
    snn = xbar.to_snn(ann, calibration=torch.rand(8, 1, 4, 4), timesteps=8, norm="max",
                      encoder=xbar.PoissonEncoder(1.0, generator=torch.Generator().manual_seed(0)))
    x = torch.rand(5, 1, 4, 4)
    snn.encoder.generator.manual_seed(1)
    spikes = snn.encoder(x, 8)
    with xbar.EnergyMeter(snn, seed4) as meter:
        with torch.no_grad():
            snn.run(spikes)
    r = meter.report()
    assert r.samples == 5
    first = r.layers[0]
    assert first.input_events == pytest.approx(spikes.sum().item() / 5)
    assert first.acs == pytest.approx(spikes.sum().item() * 10 / 5)
    neuron = next(layer for layer in r.layers if layer.kind == "if")
    assert neuron.neuron_updates == 8 * 10
    assert r.layers[-1].acs == pytest.approx(neuron.spikes * 3)
    assert r.ann_macs == 16 * 10 + 10 * 3
    assert r.joules > 0 and r.joules == pytest.approx(sum(layer.joules for layer in r.layers))
    assert "total" in r.table() and r.to_dict()["totals"]["acs"] == r.acs
    assert all(layer.kind in line for layer, line in zip(r.layers, r.table().splitlines()[2:]))


# -- NeuroBench-compatible counts: effective ACs / MACs and activation sparsity -----------------

W3 = torch.tensor([[0.5, 0.0, -1.0], [0.0, 0.0, 0.25]])  # 3 inputs, 2 outputs; input 1 drives no weight


def test_effective_acs_hand_worked_3_inputs_2_outputs(seed4):
    """Effective ACs count (spike, non-zero weight) pairs: input 0 has one non-zero weight, input 1
    none, input 2 two. Spikes [1, 1, 0] and [1, 0, 1]: 1 + 0 and 1 + 2 effective ACs, against
    xbar's ACs (every row a spike drives, zero weights included) of 2 x 2 and 2 x 2."""
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(W3)
    layer = xbar.CrossbarLinear.from_linear(lin, seed4)
    assert (layer.effective_weight() == 0).sum() == 3, "zero weights leave G+ = G- (differential mapping)"
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]))
    r = meter.report()
    assert r.acs == 4 and r.effective_acs == 2 and r.effective_macs == 0
    assert r.layers[0].effective_acs == 2 and r.to_dict()["totals"]["effective_acs"] == 2
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(torch.tensor([[0.5, 0.0, -2.0]]))  # analog: non-zero drive x non-zero weight
    r = meter.report()
    assert r.macs == 4 and r.effective_macs == 3 and r.effective_acs == 0


def test_effective_acs_follow_the_programmed_weight_not_the_master(seed4):
    """A weight too small for the device's 16 states snaps to G+ = G-: the array holds a zero and
    the effective ACs do not count it (NeuroBench on the master weights would)."""
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.01]]))
    layer = xbar.CrossbarLinear.from_linear(lin, seed4)
    assert layer.effective_weight()[0, 1] == 0 and layer.weight[0, 1] != 0
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(torch.ones(1, 2))
    assert meter.report().acs == 2 and meter.report().effective_acs == 1


def test_effective_acs_follow_reprogramming(seed4):
    """The cached non-zero masks follow a new master weight."""
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.fill_(-0.5)
    layer = xbar.CrossbarLinear.from_linear(lin, seed4)
    x = torch.ones(1, 3)
    with xbar.EnergyMeter(layer, seed4) as meter:
        with torch.no_grad():
            layer(x)
            assert meter.report().effective_acs == 6
            layer.weight.copy_(W3)
            layer(x)
    assert meter.report().effective_acs == (6 + 3) / 2  # per sample, two samples


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 3), cout=st.integers(1, 3), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 2), p=st.floats(0.05, 0.9), zeros=st.floats(0.0, 0.8))
def test_conv_effective_acs_equal_brute_force(cin, cout, k, stride, pad, p, zeros, ideal):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)
    with torch.no_grad():
        conv.weight.mul_((torch.rand_like(conv.weight) >= zeros).float())
    x = (torch.rand(3, cin, 7, 8) < p).float()
    with xbar.EnergyMeter(conv, ideal) as meter:
        with torch.no_grad():
            conv(x)
    brute = F.conv2d(x, (conv.weight != 0).float(), stride=stride, padding=pad).sum().item()
    assert meter.report().effective_acs == pytest.approx(brute / 3, rel=1e-6)


def test_activation_sparsity_of_if_layers(seed4):
    """Activation sparsity (NeuroBench's definition): zero outputs of the IF layers over all their
    outputs, every timestep and sample; per layer and for the report."""
    torch.manual_seed(0)
    ann = xbar.to_crossbar(nn.Sequential(nn.Flatten(), nn.Linear(16, 10, bias=False), nn.ReLU(),
                                         nn.Linear(10, 6, bias=False), nn.ReLU(), nn.Linear(6, 3)), seed4)
    snn = xbar.to_snn(ann, calibration=torch.rand(8, 1, 4, 4), timesteps=8, norm="max")
    spikes = (torch.rand(8, 5, 1, 4, 4) < 0.5).float()
    with xbar.EnergyMeter(snn, seed4) as meter:
        with torch.no_grad():
            snn.run(spikes)
    r = meter.report()
    ifs = [layer for layer in r.layers if layer.kind == "if"]
    fired = sum(layer.spikes for layer in ifs)
    assert r.activation_sparsity == pytest.approx(1 - fired / (8 * (10 + 6)))
    assert ifs[0].activation_sparsity == pytest.approx(1 - ifs[0].spikes / 80)
    assert r.to_dict()["totals"]["activation_sparsity"] == r.activation_sparsity
    assert 0 < r.activation_sparsity < 1
    assert r.effective_acs <= r.acs
