"""``xbar devices fit``: synthetic measurements drawn from a known profile are fitted back to it
within sampling error; the written YAML loads, validates and reproduces the measured statistics;
bad CSVs are refused naming row and column."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import xbar
from xbar.cli import main
from xbar.device import DeviceProfile
from xbar.device_fit import MeasurementError, fit_profile, read_measurements
from xbar.noise_models import draw_nu_of, programming_sigma_of
from xbar.nonideal import drift_conductance, program_devices

US = 1e-6
STATES = (2 * US, 6 * US, 12 * US, 20 * US, 30 * US)
KNOWN = DeviceProfile(name="known", g_min=STATES[0], g_max=STATES[-1], states=STATES,
                      programming_sigma_states=(0.1 * US, 0.2 * US, 0.3 * US, 0.35 * US, 0.4 * US),
                      drift_nu_states=(0.08, 0.06, 0.05, 0.045, 0.04),
                      drift_nu_sigma_states=(0.02, 0.015, 0.01, 0.01, 0.008))
N = 3000  # devices per state
TIMES = (100.0, 3600.0, 86400.0)


def _write(path: Path, devices: bool = True, times: bool = True) -> None:
    gen = torch.Generator().manual_seed(0)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["level", "measured_us"] + (["time_s"] if times else []) + (["device"] if devices else []))
        for level, g in enumerate(STATES):
            target = torch.full((N,), g, dtype=torch.float64)
            g0 = program_devices(target, 0.0, 1.0, generator=gen,  # unclipped: the states are the means
                                 sigma=programming_sigma_of(KNOWN, target), floor=0.0)
            nu = draw_nu_of(KNOWN, target, gen)
            reads = [(None, g0)] + ([(t, drift_conductance(g0, t, nu, 20.0)) for t in TIMES] if times else [])
            for t, gs in reads:
                for d, value in enumerate(gs.tolist()):
                    w.writerow([level, f"{value / US:.9g}"] + (["" if t is None else t] if times else [])
                               + ([f"s{level}d{d}"] if devices else []))


def test_fit_recovers_the_known_profile(tmp_path):
    path = tmp_path / "m.csv"
    _write(path)
    fit = fit_profile(read_measurements(path), "fitted")
    dev = fit.profile
    for i, s in enumerate(fit.states):
        sigma = KNOWN.programming_sigma_states[i]
        # state mean within 4 standard errors; sigma within 4 relative standard errors (1.3% each)
        assert abs(dev.states[i] - STATES[i]) < 4 * sigma / math.sqrt(N)
        assert dev.programming_sigma_states[i] == pytest.approx(sigma, rel=4 / math.sqrt(2 * N))
        spread = KNOWN.drift_nu_sigma_states[i]
        assert abs(dev.drift_nu_states[i] - KNOWN.drift_nu_states[i]) < 4 * spread / math.sqrt(N)
        assert dev.drift_nu_sigma_states[i] == pytest.approx(spread, rel=4 / math.sqrt(2 * N))
        assert s.residual < 1e-6, "the power law is exact for every device"


def test_fit_without_device_ids_gives_nu_but_no_spread(tmp_path):
    path = tmp_path / "m.csv"
    _write(path, devices=False)
    dev = fit_profile(read_measurements(path), "fitted").profile
    assert dev.drift_nu_sigma_states is None
    # the state's mean log conductance drifts with about the mean exponent (the spread of nu
    # and of G0 bias it a little): within 10%
    assert list(dev.drift_nu_states) == pytest.approx(list(KNOWN.drift_nu_states), rel=0.1)


def test_cli_writes_a_profile_that_loads_and_reproduces_the_statistics(tmp_path, capsys):
    path = tmp_path / "m.csv"
    _write(path, times=False, devices=False)
    out, plot = tmp_path / "fitted.yaml", tmp_path / "fit.png"
    assert main(["devices", "fit", str(path), "--name", "fitted", "-o", str(out), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "sigma_us" in text and f"wrote {out}" in text and plot.stat().st_size > 0
    dev = xbar.load_device(str(out))
    assert dev.name == "fitted" and dev.levels == 5 and dev.drift_nu_states is None
    # programming the fitted profile reproduces the measured spread per state
    layer_targets = torch.tensor(dev.states, dtype=torch.float64).repeat(N)
    g = program_devices(layer_targets, dev.g_min, dev.g_max, generator=torch.Generator().manual_seed(9),
                        sigma=programming_sigma_of(dev, layer_targets))
    rows = read_measurements(path)
    for i in (1, 2, 3):  # inner states (the ends are clipped at g_min / g_max)
        measured = torch.tensor([r["g"] for r in rows if r["key"] == i]).std().item() * US
        assert g.view(N, -1)[:, i].std().item() == pytest.approx(measured, rel=0.06)


@pytest.mark.parametrize("text, message", [
    ("level,measured\n0,1\n", "needs the columns measured_us"),
    ("level,measured_us\n0,abc\n1,2\n", "row 1: measured_us: not a number"),
    ("level,measured_us\n0.5,1\n", "row 1: level: must be an integer"),
    ("level,measured_us,time_s\n0,1,-3\n", "row 1: time_s: must be >= 0"),
    ("level,measured_us\n", "no measurements"),
])
def test_bad_csv_is_refused_naming_row_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(MeasurementError, match=message):
        read_measurements(path)


def test_states_must_ascend_and_cli_reports_it(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text("target_us,measured_us\n5,5.1\n5,4.9\n1,6.1\n1,5.9\n")
    assert main(["devices", "fit", str(path), "--name", "x", "-o", str(tmp_path / "x.yaml")]) == 1
    assert "strictly ascending" in capsys.readouterr().err
