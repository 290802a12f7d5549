"""``norm="percentile-all"`` against spikingjelly 2.0's converter, run side by side."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from torch import nn

import xbar

ann2snn = pytest.importorskip("spikingjelly.activation_based.ann2snn")
functional = pytest.importorskip("spikingjelly.activation_based.functional")


def _ann() -> nn.Sequential:
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(64, 48, bias=False), nn.ReLU(), nn.Linear(48, 32, bias=False),
                        nn.ReLU(), nn.Linear(32, 5, bias=False))
    return ann.eval()


def _sj(ann: nn.Module, calib: torch.Tensor, mode: str) -> nn.Module:
    with contextlib.redirect_stderr(io.StringIO()):
        return ann2snn.Converter(ann2snn.RateCodingRecipe([(calib, None)], mode=mode)).convert(ann).eval()


@pytest.mark.parametrize("percentile", [99.9, 95.0])
def test_thresholds_equal_spikingjelly_scales(percentile):
    ann, calib = _ann(), torch.rand(400, 1, 8, 8)
    sj = _sj(ann, calib, f"{percentile}%")
    # spikingjelly: x / s_l -> IF(threshold 1) -> * s_l, so the threshold in input units is s_l and
    # the next layer's input is scaled by s_l; xbar: thresholds s_l / s_{l-1} on the raw weights
    scales = [float(1 / m.scale) for name, m in sj.named_modules() if name.endswith("scaler0")]
    snn = xbar.to_snn(ann, calibration=calib, timesteps=4, norm="percentile-all", percentile=percentile)
    got = [float(n.threshold) for n in snn.neurons()]
    want = [scales[0], scales[1] / scales[0]]
    assert got == pytest.approx(want, rel=1e-5)
    # and different from xbar's default, the percentile of the non-zero activations
    default = xbar.to_snn(ann, calibration=calib, timesteps=4, norm="percentile", percentile=percentile)
    assert [float(n.threshold) for n in default.neurons()] != pytest.approx(want, rel=1e-3)


def test_same_spikes_same_logits_as_spikingjelly():
    ann, calib = _ann(), torch.rand(400, 1, 8, 8)
    sj = _sj(ann, calib, "99.9%")
    snn = xbar.to_snn(ann, calibration=calib, timesteps=12, norm="percentile-all", percentile=99.9)
    spikes = (torch.rand(12, 30, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    with torch.no_grad():
        ours = snn.run(spikes)
        functional.reset_net(sj)
        theirs = sum(sj(spikes[t]) for t in range(12)) / 12
    # spikingjelly multiplies the spikes by s_l between layers, xbar moves s_l into the thresholds
    # and rescales only the output (ANN units): the same spikes fire and the logits are the same
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
