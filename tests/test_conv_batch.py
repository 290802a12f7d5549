"""xbar.conv_batch: single-channel convolutions as grouped convolutions equal the plain ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar
from xbar import conv_batch
from xbar.conv_batch import conv, fold_groups

PLAIN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.fixture(autouse=True)
def _freed_memory_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold is what these tests look at; it runs only while glibc returns freed memory (an
    earlier network in this process may have set it to keep it)."""
    monkeypatch.setattr(conv_batch, "memory_kept", lambda: False)


def test_no_fold_once_freed_memory_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = _binary(12, 1, 9, 9), torch.randn(5, 1, 3, 3)
    monkeypatch.setattr(conv_batch, "memory_kept", lambda: True)
    assert fold_groups(x, w, 1) == 1
    torch.testing.assert_close(conv(x, w), F.conv2d(x, w), rtol=0, atol=0)


def _binary(*shape: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.2).float()


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(padding=2), dict(padding="same"),
                                dict(dilation=2, padding=1)])
@pytest.mark.parametrize("bias", [False, True])
def test_grouped_equals_plain(dims: int, kw: dict, bias: bool) -> None:
    x = _binary(12, 1, *([9] * dims))
    w = torch.randn(5, 1, *([3] * dims), generator=torch.Generator().manual_seed(1))
    b = torch.randn(5) if bias else None
    assert fold_groups(x, w, 1) == 4
    got = conv(x, w, b, **kw)
    ref = PLAIN[dims](x, w, b, **kw)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


def test_analog_input_equal() -> None:
    x = torch.rand(8, 1, 28, 28)
    w = torch.randn(6, 1, 5, 5)
    torch.testing.assert_close(conv(x, w, None, 1, 2), F.conv2d(x, w, None, 1, 2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", ["odd batch", "two channels", "groups", "grad", "unbatched"])
def test_falls_back_to_plain(case: str) -> None:
    x, w, groups = _binary(8, 1, 9, 9), torch.randn(4, 1, 3, 3), 1
    if case == "odd batch":
        x = _binary(7, 1, 9, 9)
    elif case == "two channels":
        x, w = _binary(8, 2, 9, 9), torch.randn(4, 2, 3, 3)
    elif case == "groups":
        x, w, groups = _binary(8, 2, 9, 9), torch.randn(4, 1, 3, 3), 2
    elif case == "grad":
        w.requires_grad_(True)
    elif case == "unbatched":
        x = _binary(1, 9, 9)
    assert fold_groups(x, w, groups) == 1
    out = conv(x, w, None, groups=groups)
    torch.testing.assert_close(out, F.conv2d(x, w, None, groups=groups))
    if case == "grad":
        out.sum().backward()
        assert w.grad is not None


def test_fold_is_what_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grouped convolution is really called (a planted bug in it is seen)."""
    x, w = _binary(8, 1, 9, 9), torch.randn(4, 1, 3, 3)
    real = F.conv2d

    def wrong(inp, weight, *a, **k):  # type: ignore[no-untyped-def]
        out = real(inp, weight, *a, **k)
        return out + 1 if inp.shape[1] > 1 else out

    monkeypatch.setitem(conv_batch._CONV, 2, wrong)
    assert not torch.allclose(conv(x, w), real(x, w))


def test_crossbar_and_snn_use_it_and_agree() -> None:
    """A crossbar Conv2d over one channel, and a converted CNN, give the same output with the
    grouped path on and off."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 7 * 7, 10)).eval()
    x = torch.rand(6, 1, 14, 14)
    layer = xbar.CrossbarConv2d.from_conv2d(ann[0], "seed-4bit")
    snn_f = xbar.to_snn(ann, calibration=x, timesteps=6, encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(3)))
    snn_x = xbar.to_snn(xbar.to_crossbar(ann, "seed-4bit"), calibration=x, timesteps=6,
                        encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(3)))
    with torch.no_grad():
        on = (layer(x), snn_f(x), snn_x(x))
        saved, conv_batch.GROUPS = conv_batch.GROUPS, ()
        try:
            snn_f.encoder.generator.manual_seed(3)
            snn_x.encoder.generator.manual_seed(3)
            off = (layer(x), snn_f(x), snn_x(x))
        finally:
            conv_batch.GROUPS = saved
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("crossbar", [False, True])
def test_energy_counts_unchanged(crossbar: bool) -> None:
    """The meter counts the same operations with the grouped path on and off (a float Conv2d
    run by the grouped path still reaches the meter)."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 7 * 7, 10)).eval()
    model = xbar.to_crossbar(ann, "seed-4bit") if crossbar else ann
    x = torch.rand(6, 1, 14, 14)
    snn = xbar.to_snn(model, calibration=x, timesteps=6,
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(3)))
    totals = []
    for groups in (conv_batch.GROUPS, ()):
        saved, conv_batch.GROUPS = conv_batch.GROUPS, groups
        try:
            snn.encoder.generator.manual_seed(3)
            with torch.no_grad(), xbar.EnergyMeter(snn) as meter:
                snn(x)
        finally:
            conv_batch.GROUPS = saved
        totals.append(meter.raw_totals())
    assert totals[0]["acs"] > 6 * 6 * 4 * 14 * 14 * 0.01  # the convolution is counted
    assert totals[0] == totals[1]
