"""Bias correction after conversion (xbar.convert.calibrate): hand-worked error, layers that gain
a bias, merges and concatenations, counted energy, checkpoints, the encoder's random state."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar
from xbar.convert.calibrate import _widths, channel_means, feeders
from xbar.models import build_model


def test_channel_means_hand_worked():
    x = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[5.0, 7.0], [2.0, 2.0]]])  # [B=2, C=2, 2]
    assert channel_means(x).tolist() == [4.0, 1.0]
    with pytest.raises(ValueError, match="x: expected"):
        channel_means(torch.ones(3))


def _tiny(bias: bool = False) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(1, 1, bias=bias), nn.ReLU(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(1.0)
        if bias:
            net[0].bias.fill_(0.0)
    return net.eval()


def test_hand_worked_error_becomes_the_bias_of_a_layer_that_had_none():
    """Inputs 1.0 and 0.3, norm='max': lambda = 1, threshold 1. In T=4 constant steps the first
    fires every step (rate 1 = the ANN's 1.0), the second integrates 0.3, 0.6, 0.9, 1.2 and fires
    once (rate 0.25 against 0.3). Mean error e = (1 + 0.3) / 2 - (1 + 0.25) / 2 = 0.025: the first
    layer, bias-free, gets the bias 0.025 (threshold 1 in weight units)."""
    calib = torch.tensor([[1.0], [0.3]])
    snn = xbar.to_snn(_tiny(), calibration=calib, timesteps=4, norm="max", encoder=xbar.ConstantEncoder(),
                      bias_correction=True)
    first = snn.get_submodule("0")
    assert first.bias is not None
    assert first.bias.item() == pytest.approx(0.025, abs=1e-7)
    assert snn.conversion["bias_correction"] == 2  # the images used (of correction_samples=512)
    plain = xbar.to_snn(_tiny(), calibration=calib, timesteps=4, norm="max", encoder=xbar.ConstantEncoder())
    assert plain.get_submodule("0").bias is None and "bias_correction" not in plain.conversion


def test_correction_samples_limit_the_images_used():
    """Only the first image (1.0, no error) is used: the bias stays zero."""
    calib = torch.tensor([[1.0], [0.3]])
    snn = xbar.to_snn(_tiny(bias=True), calibration=calib, timesteps=4, norm="max", encoder=xbar.ConstantEncoder(),
                      bias_correction=True, correction_samples=1)
    assert snn.get_submodule("0").bias.item() == 0.0


def _trained_like(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@torch.no_grad()
def _layer_errors(snn, ann_gm, images):
    """Per IF layer: mean over channels of |ANN clipped mean - SNN mean rate|."""
    from xbar.convert.calibrate import _ann_means, _rate_means
    from xbar.neurons import IFNeuron

    wiring = snn.sync_thresholds()
    nodes = [n for n in snn.graph.module_nodes() if isinstance(snn.get_submodule(n.target), IFNeuron)]
    lam = {n.name: (n.target, float(wiring.gains[n.name][0])) for n in nodes}
    target = _ann_means(ann_gm, [images], lam, torch.device("cpu"))
    return {n.name: float((target[n.name] - _rate_means(snn, [images], n.name)).abs().mean()) for n in nodes}


def test_residual_network_errors_shrink_and_output_moves_towards_the_ann():
    """res-cnn (width 4, BN statistics of a trained net), ideal crossbars, T=16 Poisson input:
    every IF layer's mean rate error on the calibration images drops, and the logits come closer
    to the ANN's on other images. (With constant input at small T a rate is a step function of
    the bias, and a layer's correction can overshoot: Poisson input smooths it.)"""
    torch.manual_seed(0)
    ann = xbar.to_crossbar(_trained_like(build_model("res-cnn", width=4)), "ideal")
    calib, test = torch.rand(64, 1, 28, 28), torch.rand(32, 1, 28, 28)
    kw = dict(calibration=calib, timesteps=16, v_init=0.5)
    plain = xbar.to_snn(ann, encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(1)), **kw)
    fixed = xbar.to_snn(ann, bias_correction=True, correction_samples=64,
                        encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(1)), **kw)
    ref = xbar.convert.normalised_ann(ann)
    before, after = _layer_errors(plain, ref, calib), _layer_errors(fixed, ref, calib)
    assert set(before) == set(after) and len(before) == 7
    for name in before:
        assert after[name] < 0.9 * before[name], name
    with torch.no_grad():
        want = ann(test)
        assert (fixed(test) - want).abs().mean() < 0.8 * (plain(test) - want).abs().mean()
    # the merge's reference (conv2, a crossbar read as currents) took the correction of the IF
    # layer after it; the shortcut's projection did not change
    assert not torch.equal(fixed.get_submodule("layer1.conv2").bias, plain.get_submodule("layer1.conv2").bias)
    assert torch.equal(fixed.get_submodule("layer1.shortcut.0").bias, plain.get_submodule("layer1.shortcut.0").bias)


class _Cat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 3, 3, padding=1)
        self.head = nn.Linear(5 * 4 * 4, 2)

    def forward(self, x):
        return self.head(torch.flatten(F.relu(torch.cat([self.a(x), self.b(x)], 1)), 1))


def test_concatenation_splits_the_correction_by_channels():
    torch.manual_seed(0)
    model = _Cat().eval()
    calib = torch.rand(32, 1, 4, 4)
    plain = xbar.to_snn(model, calibration=calib, timesteps=4, encoder=xbar.ConstantEncoder())
    fixed = xbar.to_snn(model, calibration=calib, timesteps=4, encoder=xbar.ConstantEncoder(),
                        bias_correction=True)
    for name, width in (("a", 2), ("b", 3)):
        delta = fixed.get_submodule(name).bias - plain.get_submodule(name).bias
        assert delta.shape == (width,) and delta.abs().sum() > 0, name
    relu = next(n for n in plain.graph.module_nodes() if isinstance(plain.get_submodule(n.target), xbar.IFNeuron))
    widths = _widths(plain, calib)
    parts = feeders(plain, relu, plain.sync_thresholds().reference, widths)
    assert [(m, (c.start, c.stop)) for m, c in parts] == [(plain.get_submodule("a"), (0, 2)),
                                                           (plain.get_submodule("b"), (2, 5))]


class _Shared(nn.Module):
    """The first layer's output feeds the ReLU and, directly, the output: no bias of its own."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)
        self.c = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        h = self.a(x)
        return self.b(F.relu(h)) + self.c(h)


def test_a_layer_whose_output_goes_elsewhere_too_is_left_with_a_warning():
    torch.manual_seed(0)
    model, calib = _Shared().eval(), torch.rand(16, 4)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        snn = xbar.to_snn(model, calibration=calib, timesteps=4, encoder=xbar.ConstantEncoder(), bias_correction=True)
    assert any("left uncorrected" in str(w.message) and "relu" in str(w.message) for w in got)
    assert torch.equal(snn.get_submodule("a").bias, model.a.bias)


def test_energy_meter_counts_the_bias_a_layer_gained():
    calib = torch.tensor([[1.0], [0.3]])
    snn = xbar.to_snn(xbar.to_crossbar(_tiny(), "seed-4bit"), calibration=calib, timesteps=4, norm="max",
                      encoder=xbar.ConstantEncoder(), bias_correction=True)
    with xbar.EnergyMeter(snn, "seed-4bit") as meter, torch.no_grad():
        snn(torch.tensor([[0.5], [0.7], [0.2]]))
    row = meter.report().layers[0]
    assert row.name == "0" and row.bias_adds == 4  # one output, 4 reads per sample


def test_checkpoint_round_trip_keeps_the_corrected_biases(tmp_path):
    torch.manual_seed(0)
    ann = xbar.to_crossbar(_trained_like(build_model("res-cnn", width=4)), "seed-4bit")
    snn = xbar.to_snn(ann, calibration=torch.rand(16, 1, 28, 28), timesteps=4, bias_correction=True,
                      correction_samples=16, encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(3)))
    loaded = xbar.load(xbar.save(snn, tmp_path / "bc.pt"))
    assert loaded.conversion["bias_correction"] == 16
    for (ka, a), (kb, b) in zip(snn.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and (not isinstance(a, torch.Tensor) or torch.equal(a, b)), ka
    x = torch.rand(2, 1, 28, 28)
    snn.encoder.generator.manual_seed(1)
    loaded.encoder.generator.manual_seed(1)
    with torch.no_grad():
        assert torch.equal(snn(x), loaded(x))


def test_the_encoders_random_state_is_restored():
    gen = torch.Generator().manual_seed(5)
    calib = torch.rand(8, 1, 4, 4)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    xbar.to_snn(model, calibration=calib, timesteps=4, encoder=xbar.PoissonEncoder(1.0, gen), bias_correction=True)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(5).get_state())
    torch.manual_seed(9)
    state = torch.get_rng_state()
    xbar.to_snn(copy.deepcopy(model), calibration=calib, timesteps=4, bias_correction=True)  # default generator
    assert torch.equal(torch.get_rng_state(), state)


def test_arguments_are_checked_by_name():
    calib = torch.tensor([[1.0], [0.3]])
    with pytest.raises(TypeError, match="bias_correction"):
        xbar.to_snn(_tiny(), calibration=calib, bias_correction="yes")
    with pytest.raises(ValueError, match="correction_samples"):
        xbar.to_snn(_tiny(), calibration=calib, bias_correction=True, correction_samples=0)
    with pytest.raises(ValueError, match="calibration"):
        xbar.to_snn(_tiny(), norm="none", bias_correction=True)
