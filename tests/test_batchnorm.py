"""BatchNorm folding (:mod:`xbar.convert.batchnorm`): the folded ANN equals the original in eval
mode, the user's model is left alone, a BatchNorm that cannot be folded is refused by name, and
crossbar layers absorb a BatchNorm too.

Every BatchNorm here has random running statistics and affine parameters (``_randomise``), so
that a fold that forgets the mean, the variance, ``eps``, ``gamma`` or ``beta`` shows. "Equal"
is float32 rounding: max abs difference below ``1e-5`` of the output's largest magnitude (the
fold itself runs in float64; what is left is the rounding of one float32 layer).
"""

from __future__ import annotations

import inspect
import os
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar
from xbar.convert import ConversionError, normalised_ann

FILE = os.path.basename(__file__)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere, random running statistics and affine parameters in every
    BatchNorm; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BN):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                m.running_var[0] = 1e-3  # a channel where eps (1e-5) matters beyond float rounding
                m.num_batches_tracked.fill_(7)
                if m.affine:
                    m.weight.copy_(torch.randn(n, generator=g))
                    m.bias.copy_(torch.randn(n, generator=g))
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model.eval()


def _images(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _vectors(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 16, generator=torch.Generator().manual_seed(1))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}


def _assert_same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = _state(model)
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), f"{k} was modified"


def _assert_equal_outputs(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = float(want.abs().max())
    assert scale > 0
    err = float((got - want).abs().max())
    assert err <= 1e-5 * scale, f"max abs difference {err:.3g} > 1e-5 * {scale:.3g}"


def _line_of(cls: type, marker: str = "# refused") -> int:
    lines, start = inspect.getsourcelines(cls.forward)
    hits = [start + i for i, line in enumerate(lines) if marker in line]
    assert len(hits) == 1
    return hits[0]


def _assert_folds(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """``normalised_ann(model)`` has no BatchNorm left and computes ``model.eval()(x)``; the
    model (put back in train mode to see that its mode is kept too) is not modified."""
    with torch.no_grad():
        want = model.eval()(x)
    model.train()
    before = _state(model)
    n_bn = sum(isinstance(m, _BN) for m in model.modules())
    gm = normalised_ann(model)
    assert not any(isinstance(m, _BN) for m in gm.modules())
    with torch.no_grad():
        got = gm(x)
    _assert_equal_outputs(got, want)
    assert model.training
    assert sum(isinstance(m, _BN) for m in model.modules()) == n_bn
    _assert_same_state(model, before)
    return gm


# -- the folds ------------------------------------------------------------------------------------


class _ConvBNCustom(nn.Module):
    """Conv-BN-ReLU in a custom forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


CASES = {
    "conv-bn": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(256, 5)),
    "conv-bn, conv without bias": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False),
                                                        nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                                        nn.Linear(256, 5)),
    "conv-bn without affine": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False),
                                                    nn.ReLU(), nn.Flatten(), nn.Linear(256, 5)),
    "linear-bn": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.BatchNorm1d(12), nn.ReLU(),
                                       nn.Linear(12, 4)),
    "flatten-linear-bn1d": lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10),
                                                 nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 4)),
    "input bn into unpadded conv": lambda: nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3), nn.ReLU(),
                                                         nn.Flatten(), nn.Linear(144, 5)),
    "input bn, flatten, linear": lambda: nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(64, 8),
                                                       nn.ReLU(), nn.Linear(8, 5)),
    "relu-bn-unpadded conv": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4),
                                                   nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5)),
    "relu-bn-flatten-linear": lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4),
                                                    nn.Flatten(), nn.Linear(256, 5)),
    "custom forward": _ConvBNCustom,
}


@pytest.mark.parametrize("name", list(CASES))
def test_folded_ann_equals_the_original(name):
    _assert_folds(_randomise(CASES[name]()), _images())


def test_bn1d_on_vector_input_folds_forward():
    model = _randomise(nn.Sequential(nn.BatchNorm1d(16), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)))
    _assert_folds(model, _vectors())


def test_batchnorm_network_converts_and_converges():
    model = _randomise(_ConvBNCustom(), seed=3)
    x = _images()
    with torch.no_grad():
        want = model(x)
    model.train()  # the user's mode; to_snn converts the eval-mode network and leaves the model alone
    before = _state(model)
    snn = xbar.to_snn(model, calibration=x, timesteps=2000, norm="max", encoder=xbar.ConstantEncoder())
    _assert_same_state(model, before)
    assert model.training
    assert not any(isinstance(m, _BN) for m in snn.modules())
    with torch.no_grad():
        out = snn(x)
    span = float(want.max() - want.min())
    assert float((out - want).abs().max()) < 0.02 * span  # as in tests/test_convert_graph.py
    assert (out.argmax(1) == want.argmax(1)).float().mean() >= 7 / 8


# -- refusals -----------------------------------------------------------------------------------------


class _BNPaddedConv(nn.Module):
    """BatchNorm on the input, feeding a padded convolution: its shift would reach the padded
    taps as zeros, so it cannot be folded forward; nothing before it to fold into."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        h = self.bn(x)  # refused
        h = F.relu(self.conv(h))
        return self.fc(torch.flatten(h, 1))


def test_bn_before_a_padded_conv_is_refused_with_its_line():
    model = _randomise(_BNPaddedConv())
    for convert in (lambda: normalised_ann(model),
                    lambda: xbar.to_snn(model, calibration=_images(), timesteps=8, norm="max")):
        with pytest.raises(ConversionError) as info:
            convert()
        msg = str(info.value)
        assert "BatchNorm" in msg and "padded" in msg, msg
        assert f"{FILE}:{_line_of(_BNPaddedConv)}" in msg, msg


def test_bn_before_a_padded_conv_is_refused_by_its_path():
    model = _randomise(nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
        flat=nn.Flatten(), fc=nn.Linear(256, 5))))
    with pytest.raises(ConversionError) as info:
        normalised_ann(model)
    msg = str(info.value)
    assert "BatchNorm" in msg and "features.0" in msg, msg


# -- crossbar layers absorb a BatchNorm ------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_bn_folds_into_crossbar_layers(bias):
    model = _randomise(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=bias), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(256, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5)))
    x = _images()
    xb = xbar.to_crossbar(model, "ideal").eval()
    assert isinstance(xb[0], xbar.CrossbarConv2d) and isinstance(xb[4], xbar.CrossbarLinear)
    with torch.no_grad():
        want = model(x)
        _assert_equal_outputs(xb(x), want)
    gm = _assert_folds(xb, x)
    folded = [m for m in gm.modules() if isinstance(m, (xbar.CrossbarConv2d, xbar.CrossbarLinear))]
    assert len(folded) == 3
    with torch.no_grad():
        _assert_equal_outputs(gm(x), want)
    snn = xbar.to_snn(xb, calibration=x, timesteps=2000, norm="max", encoder=xbar.ConstantEncoder())
    with torch.no_grad():
        out = snn(x)
    assert float((out - want).abs().max()) < 0.02 * float(want.max() - want.min())
    assert isinstance(snn.get_submodule("0"), xbar.CrossbarConv2d)
    assert torch.isfinite(out).all()
