"""Channel-wise normalisation (xbar.convert.equalise): the rescaled ANN computes the same function
and every equalised channel then has the same calibration statistic."""

import pytest
import torch
from torch import nn

import xbar
from xbar.convert.balance import CalibrationData, entry_stages
from xbar.convert.batchnorm import fold_batchnorm
from xbar.convert.capture import capture
from xbar.convert.equalise import channel_groups, channel_scales, equalise_channels
from xbar.convert.normalise import canonicalize, swap_maxpool_relu
from xbar.models import build_model


def _graph(model, x):
    return swap_maxpool_relu(fold_batchnorm(canonicalize(capture(model), x)))


def _trained_like(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.2, 3.0)  # channels of very different sizes
    return model.eval()


@pytest.mark.parametrize("name", ["res-cnn", "bn-cnn"])
def test_equalised_graph_equals_original(name):
    model = _trained_like(build_model(name))
    x = torch.rand(16, 1, 28, 28)
    gm = _graph(model, x)
    with torch.no_grad():
        before = gm(x)
    applied = equalise_channels(gm, CalibrationData([x]), 99.0, torch.device("cpu"))
    assert applied, "nothing was equalised"
    assert any(d.max() / d.min() > 1.5 for d in applied.values())
    with torch.no_grad():
        assert torch.allclose(gm(x), before, rtol=1e-4, atol=1e-5)


def test_channels_equal_after_equalising():
    model = _trained_like(build_model("res-cnn"))
    x = torch.rand(16, 1, 28, 28)
    gm = _graph(model, x)
    equalise_channels(gm, CalibrationData([x]), None, torch.device("cpu"))
    groups = [g for g in channel_groups(gm) if not g.fixed and g.relus]
    # a group's scale is the max over its ReLUs, so at least one ReLU per channel reaches it
    for g in groups:
        stats = channel_scales(gm, g.relus, CalibrationData([x]), None, torch.device("cpu"))
        per = torch.tensor([list(stats[r]) for r in g.relus]).nan_to_num(0).max(0).values
        live = per[per > 0]
        assert torch.allclose(live, live.median().expand_as(live), rtol=1e-4)


def test_groups_fixed_at_output_and_identity_shortcut_tied():
    model = build_model("res-cnn").eval()
    gm = _graph(model, torch.rand(2, 1, 28, 28))
    groups = channel_groups(gm)
    fc = [g for g in groups if "fc" in g.producers]
    assert fc and fc[0].fixed  # the output keeps the ANN's units
    tied = [g for g in groups if "layer2.conv2" in g.producers]
    assert tied and {"layer1.conv2", "layer1.shortcut.0"} <= set(tied[0].producers)


def test_to_snn_channelwise_arguments():
    model = build_model("bn-cnn").eval()
    x = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match="channelwise"):
        xbar.to_snn(model, norm="none", channelwise=True)
    with pytest.raises(TypeError, match="channelwise"):
        xbar.to_snn(model, calibration=x, channelwise="yes")
    snn = xbar.to_snn(model, calibration=iter([x, x]), channelwise=True, timesteps=4)
    assert snn.conversion["channelwise"] is True
    assert snn(x).shape == (8, 10)


def test_one_shot_calibration_iterator_reads_every_batch():
    torch.manual_seed(1)
    model = build_model("bn-cnn").eval()
    batches = [torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28) * 3]
    listed = xbar.to_snn(model, calibration=batches, timesteps=4, norm="max")
    once = xbar.to_snn(model, calibration=(b for b in batches), timesteps=4, norm="max")
    for (k, a), (_, b) in zip(listed.state_dict().items(), once.state_dict().items()):
        assert torch.equal(a, b), k


def test_channelwise_checkpoint_round_trip(tmp_path):
    model = _trained_like(build_model("res-cnn"))
    x = torch.rand(8, 1, 28, 28)
    hw = xbar.to_crossbar(model, "seed-4bit")
    snn = xbar.to_snn(hw, calibration=x, channelwise=True, v_init=0.5, timesteps=4,
                      encoder=xbar.ConstantEncoder())
    xbar.save(snn, tmp_path / "s.xbar.pt")
    back = xbar.load(tmp_path / "s.xbar.pt")
    assert back.conversion.get("channelwise") is True
    assert torch.equal(back(x), snn(x))
