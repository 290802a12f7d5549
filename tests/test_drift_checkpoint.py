"""Drift (power law, global compensation) and checkpoints (bit-identical round trips, bad files)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xbar

US = 1e-6


def test_drift_follows_power_law_exactly(seed4):
    dev = seed4.replace(drift_nu=0.05, drift_t0=20.0)
    layer = xbar.CrossbarLinear.from_linear(nn.Linear(4, 3, bias=False), dev)
    g0 = layer.g_pos.clone()
    for t in (20.0, 3600.0, 3.15e7):
        g_pos, _ = layer.drift(t)
        assert torch.allclose(g_pos, g0 * (t / 20.0) ** -0.05, rtol=1e-6)
    assert torch.equal(layer.g_pos, g0), "programmed conductances are kept"


def test_compensation_restores_undrifted_output(seed4):
    dev = seed4.replace(drift_nu=0.1)
    torch.manual_seed(0)
    model = xbar.to_crossbar(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), dev)
    x = torch.rand(3, 6)
    with torch.no_grad():
        before = model(x)
        xbar.drift(model, 86400.0, compensate=False)
        drifted = model(x)
        xbar.drift(model, 86400.0, compensate=True)
        compensated = model(x)
    assert not torch.allclose(before, drifted, atol=1e-3)
    assert torch.allclose(before, compensated, atol=1e-5)
    model[0].program()
    assert model[0].drift_compensation == 1.0 and model[0]._drift_t is None


def test_bad_drift_time():
    with pytest.raises(ValueError, match="t_seconds"):
        xbar.CrossbarLinear(2, 2).drift(-1.0)


def _mlp_snn(seed4):
    torch.manual_seed(0)
    ann = xbar.to_crossbar(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), seed4)
    return xbar.to_snn(ann, calibration=torch.rand(8, 1, 4, 4), timesteps=6, norm="percentile",
                       encoder=xbar.PoissonEncoder(0.7, torch.Generator().manual_seed(3)))


def _cnn(seed4):
    torch.manual_seed(0)
    return xbar.to_crossbar(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                                          nn.Flatten(), nn.Linear(8, 3)), seed4)


@pytest.mark.parametrize("build", [_mlp_snn, _cnn])
def test_round_trip_is_bit_identical_with_noisy_programming(build, seed4, tmp_path):
    model = build(seed4)
    with torch.no_grad():  # a "noisy" programming, unlike what program() would draw again
        for m in model.modules():
            if isinstance(m, (xbar.CrossbarLinear, xbar.CrossbarConv2d)):
                m.g_pos.mul_(1 + 0.05 * torch.randn_like(m.g_pos))
                m._refresh_effective()
    x = torch.rand(4, 1, 4, 4)
    path = xbar.save(model, tmp_path / "m.pt", metadata={"seed": 3})
    loaded = xbar.load(path)
    if isinstance(model, xbar.SpikingNetwork):
        assert loaded.timesteps == 6 and loaded.encoder.max_rate == 0.7
        assert loaded.conversion["norm"] == "percentile"
    assert loaded.checkpoint_metadata == {"seed": 3}
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_gives_clear_error(damage, seed4, tmp_path):
    path = xbar.save(_cnn(seed4), tmp_path / "m.pt")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 50, "empty": b""}[damage])
    with pytest.raises(xbar.CheckpointError, match="m.pt"):
        xbar.load(path)


def test_incompatible_version_and_foreign_file(tmp_path):
    torch.save({"format": "xbar-checkpoint", "format_version": 99, "xbar_version": "9.0"}, tmp_path / "v.pt")
    with pytest.raises(xbar.CheckpointError, match="version 99"):
        xbar.load(tmp_path / "v.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "f.pt")
    with pytest.raises(xbar.CheckpointError, match="not an xbar checkpoint"):
        xbar.load(tmp_path / "f.pt")
    with pytest.raises(xbar.CheckpointError, match="no such"):
        xbar.load(tmp_path / "missing.pt")


def test_spiking_network_with_an_unknown_module_is_refused(tmp_path):
    snn = xbar.SpikingNetwork([nn.Flatten(), nn.Linear(4, 3), nn.Sigmoid()], timesteps=2)
    with pytest.raises(xbar.CheckpointError, match="Sigmoid"):
        xbar.save(snn, tmp_path / "x.pt")
    assert not any(tmp_path.iterdir()), "nothing half-written"


def test_a_model_outside_the_vocabulary_loads_into_a_template(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    path = xbar.save(model, tmp_path / "x.pt")
    with pytest.raises(xbar.CheckpointError, match="Sequential.*model="):
        xbar.load(path)
    loaded = xbar.load(path, model=nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()))
    x = torch.rand(2, 4)
    assert torch.equal(loaded(x), model(x))
