"""Study plumbing: configuration validation, batch loader, sweeps equal separate runs, CSVs."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

import xbar
from xbar.experiments.config import ConfigError, load_config
from xbar.experiments.outputs import write_csvs
from xbar.experiments.sweeps import TensorLoader, rate_sweep, timestep_sweep


def test_shipped_configs_load():
    full, quick = load_config("ee518"), load_config("quick")
    assert full["timesteps"] == [2 ** k for k in range(10)]
    assert full["rates"]["count"] == 50 and full["constrain"]["epochs"] == 20
    assert quick["seeds"] == 1


@pytest.mark.parametrize("text, field", [
    ("seeds: 0\n", "seeds"), ("ann: {epochz: 3}\n", "ann.epochz"), ("modes: [vanilla, magic]\n", "modes"),
    ("timesteps: [4, 2]\n", "timesteps"), ("bogus: 1\n", "bogus"), ("- a list\n", "mapping"),
    ("constrain: {procedures: [guess]}\n", "constrain.procedures"), ("encoder: {max_rate: 1.5}\n", "encoder.max_rate")])
def test_bad_config_names_file_and_key(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_unknown_config_name():
    with pytest.raises(ConfigError, match="ee518"):
        load_config("nope")


def test_tensor_loader_shuffles_reproducibly_and_takes():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    a = [b[1].tolist() for b in TensorLoader(x, y, 4, shuffle=True, seed=3)]
    b = [b[1].tolist() for b in TensorLoader(x, y, 4, shuffle=True, seed=3)]
    assert a == b and sorted(sum(a, [])) == list(range(10))
    taken = TensorLoader(x, y, 4, shuffle=True, seed=3).take(6)
    assert sum(len(b[1]) for b in taken) == 6 and len(taken) == 2


def _nets():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(16, 12, bias=False), nn.ReLU(), nn.Linear(12, 4, bias=False))
    calib = torch.rand(32, 1, 4, 4)
    return {"float": xbar.to_snn(ann, calibration=calib, norm="max"),
            "seed": xbar.to_snn(xbar.to_crossbar(ann, "seed-4bit"), calibration=calib, norm="max")}


def test_timestep_sweep_equals_separate_runs(seed4):
    nets = _nets()
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 4, (20,))
    loader = TensorLoader(x, y, 20)
    rows = timestep_sweep(nets, loader, [1, 2, 4, 8], 0.8, seed=5, device=seed4, chunk=3)
    for name, net in nets.items():
        for row in rows[name]:
            # The sweep draws spikes chunk by chunk; one generator stream, so the first T steps
            # are exactly what a T-step run with the same seed draws.
            net.encoder = xbar.PoissonEncoder(0.8, torch.Generator().manual_seed(5))
            net.timesteps = row["T"]
            with torch.no_grad(), xbar.EnergyMeter(net, seed4) as meter:
                acc = (net(x).argmax(1) == y).float().mean().item()
            assert row["acc"] == pytest.approx(acc)
            assert row["acs"] == pytest.approx(meter.report().acs, rel=1e-6)
            assert row["joules"] == pytest.approx(meter.report().joules, rel=1e-5)


def test_timestep_sweep_layer_report_equals_its_row(seed4):
    """The per-layer report a sweep takes at T (first T steps of every batch, same spike trains)
    sums to the sweep's row at that T; T must be a checkpoint."""
    nets = _nets()
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 4, (12,))
    rows = timestep_sweep(nets, TensorLoader(x, y, 5), [1, 2, 4, 8], 0.8, seed=5, device=seed4, chunk=3,
                          reports={"seed": 4})
    rep = rows["reports"]["seed"]
    row = next(r for r in rows["seed"] if r["T"] == 4)
    assert rep["T"] == 4 and rep["report"].samples == 12
    assert rep["report"].acs == pytest.approx(row["acs"], rel=1e-9)
    assert rep["report"].joules == pytest.approx(row["joules"], rel=1e-9)
    assert rep["encoder_spikes"] == pytest.approx(row["input_spikes"])
    with pytest.raises(ValueError, match="reports"):
        timestep_sweep(nets, TensorLoader(x, y, 5), [1, 2], 0.8, seed=5, device=seed4, reports={"seed": 3})


def test_rate_sweep_counts_spikes(seed4):
    nets = _nets()
    x, y = torch.rand(10, 1, 4, 4), torch.randint(0, 4, (10,))
    rows = rate_sweep(nets, TensorLoader(x, y, 5), 6, [0.2, 1.0], seed=0, device=seed4)
    low, high = rows["float"]
    assert low["input_spikes"] < high["input_spikes"]
    assert high["input_spikes"] == pytest.approx(6 * x.sum().item() / 10, rel=0.15)


def test_write_csvs(tmp_path):
    results = {"ann": {"per_seed": [{"seed": 0, "history": [{"epoch": 1, "loss": 0.3, "val_acc": 0.9, "test_acc": 0.91}]}]},
               "modes": {"percentile": {"timesteps": [{"seed": 0, "T": 1, "val_acc": 0.5, "test_acc": 0.5}], "rates": []}},
               "constrain": {"runs": []}}
    written = write_csvs(results, tmp_path)
    assert {p.name for p in written} == {"ann.csv", "timesteps.csv"}
    rows = list(csv.DictReader((tmp_path / "timesteps.csv").open()))
    assert rows[0]["mode"] == "percentile" and rows[0]["T"] == "1"
