"""CSVs, plots and report of `xbar robustness`, from a synthetic results dict."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

from xbar.experiments.report import pct
from xbar.experiments.robustness_report import duration, energy, summary_lines, write_all

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP_VALUES = {
    "programming_sigma": [0.0, 0.05, 0.2],
    "stuck": [0.0, 0.01, 0.1],
    "drift": [1.0, 3600.0, 31536000.0],
    "adc_bits": [2.0, 6.0, 8.0],
    "tile": [16.0, 64.0, 256.0],
}
DEVICES = ["pcm", "seed-4bit"]


def _profile(name: str, sigma: float = 0.0, stuck: float = 0.0, adc: int | None = None,
             tile: int | None = None) -> dict[str, Any]:
    return {"schema": 1, "name": name, "conductance": {"g_max_us": 100.0, "on_off_ratio": 10.0, "levels": 16},
            "noise": {"programming_sigma": sigma, "read_sigma": 0.0, "d2d_sigma": 0.0},
            "faults": {"stuck_off": stuck / 2, "stuck_on": stuck / 2}, "drift": {"nu": 0.0, "t0_s": 20.0},
            "periphery": {"adc_bits": adc, "dac_bits": None, "tile_rows": tile, "tile_cols": tile,
                          "wire_ohm": 0.0}}


def _energy(scale: float, adc: float) -> dict[str, Any]:
    totals = {"input_events": 300.0, "acs": 3.0e4, "macs": 0.0, "synaptic_events": 3.0e4,
              "crossbar_j": 2e-9 * scale, "adc_j": adc, "neuron_j": 1e-10,
              "joules": 2e-9 * scale + adc + 1e-10,
              "digital_snn_j": 2.7e-8, "ann_macs": 79400.0, "digital_ann_j": 3.6e-7}
    return {"samples": 100, "device": "x", "totals": totals, "layers": []}


def make_results() -> dict[str, Any]:
    acceptance = {"programming_sigma": 0.05, "stuck": 0.01, "adc_bits": 6, "tile": 64}
    config = {"name": "robustness-test", "timesteps": 32, "chips": 2, "base_device": "seed-4bit",
              "acceptance": acceptance,
              "hardware_aware": {"epochs": 2, "lr": 0.001, "noise_scale": 1.0, "faults": "chip",
                                 "device": dict(acceptance)},
              "sweeps": {"programming_sigma": SWEEP_VALUES["programming_sigma"],
                         "stuck": SWEEP_VALUES["stuck"],
                         "drift_nu": 0.05, "drift_nu_sigma": 0.02, "drift_time_s": SWEEP_VALUES["drift"],
                         "adc_bits": [2, 6, 8],
                         "adc_tile": 64, "tile": [16, 64, 256]},
              "devices": {"names": DEVICES, "periphery": ["shipped", "ideal"], "energy_samples": 100}}
    cond = _profile("seed-4bit+condition", 0.05, 0.01, 6, 64)
    points = []
    for s, (sweep, values) in enumerate(SWEEP_VALUES.items()):
        for comp in ((False, True) if sweep == "drift" else (None,)):
            for i, v in enumerate(values):
                for m, model in enumerate(("conversion", "hardware-aware")):
                    acc = 0.97 - 0.05 * i - 0.01 * s + 0.02 * m + (0.01 if comp else 0.0)
                    points.append({"sweep": sweep, "value": v, "compensation": comp, "model": model,
                                   "acc": acc, "acc_per_chip": [acc - 0.002, acc + 0.002]})
    devices = []
    for d, name in enumerate(DEVICES):
        for periphery in ("shipped", "ideal"):
            for m, model in enumerate(("conversion", "hardware-aware")):
                adc = 1e-9 if periphery == "shipped" else 0.0
                devices.append({"device": name, "periphery": periphery, "model": model,
                                "acc": 0.95 - 0.03 * d + 0.01 * m, "acc_per_chip": [0.9, 0.9],
                                "energy": _energy(1 + d, adc)})
    return {
        "study": "robustness-test", "kind": "robustness", "config": config,
        "versions": {"xbar": "0.0.test", "torch": "2.x"}, "command": "xbar robustness --config test",
        "wall_time_s": 123.4, "base_device": _profile("seed-4bit"),
        "models": {"conversion": {"history": [{"epoch": 1, "loss": 0.3}, {"epoch": 2, "loss": 0.2}],
                                  "ann_test_acc": 0.9765},
                   "hardware-aware": {"history": [{"epoch": 1, "loss": 0.25}, {"epoch": 2, "loss": 0.2}],
                                      "device": cond, "train_s": 42.0, "ann_on_chip_test_acc": 0.9612}},
        "acceptance": {"device": cond, "T": 32, "conversion": 0.9123, "hardware-aware": 0.9654,
                       "rows": [{"model": "conversion", "acc": 0.9123, "acc_per_chip": [0.91, 0.9146]},
                                {"model": "hardware-aware", "acc": 0.9654, "acc_per_chip": [0.96, 0.9708]}]},
        "points": points, "devices": devices,
    }


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_write_all_full(tmp_path: Path) -> None:
    results = make_results()
    report = write_all(copy.deepcopy(results), tmp_path)
    assert report == tmp_path / "report.md"
    for name in ("robustness.png", "devices.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    rows = _csv(tmp_path / "robustness.csv")
    assert len(rows) == len(results["points"]) == 2 * (4 * 3 + 2 * 3)
    assert list(rows[0]) == ["sweep", "value", "compensation", "model", "acc", "chips"]
    assert {r["chips"] for r in rows} == {"2"}
    assert {r["compensation"] for r in rows if r["sweep"] == "drift"} == {"False", "True"}
    dev = _csv(tmp_path / "devices.csv")
    assert len(dev) == 2 * 2 * 2
    assert list(dev[0]) == ["device", "periphery", "model", "acc", "joules_per_sample", "crossbar_j", "adc_j",
                            "acs"]
    assert float(dev[0]["joules_per_sample"]) == results["devices"][0]["energy"]["totals"]["joules"]

    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Robustness of the converted MNIST MLP")
    assert "`xbar robustness --config test`" in text and "123.4 s" in text and "0.0.test" in text
    assert "## Acceptance" in text
    assert pct(0.9123) in text and pct(0.9654) in text and "at or above 96.0%: **yes**" in text
    assert ("seed-4bit, programming sigma 5% of g_max, 1% stuck devices (half at g_min, half at g_max), "
            "6-bit ADC, 64x64 tiles, T=32") in text
    assert "faults: chip" in text and "42 s" in text and pct(0.9612) in text
    sections = {s.split("\n", 1)[0]: s for s in text.split("### ")[1:]}
    assert set(sections) == {"Programming noise", "Stuck-at devices", "Conductance drift", "ADC resolution",
                             "Tile size"}
    for label in ("0%", "5%", "20%"):
        assert f"| {label} |" in sections["Programming noise"] or f"| **{label}** |" in sections[
            "Programming noise"]
    for label in ("0%", "1%", "10%"):
        assert label in sections["Stuck-at devices"]
    for label in ("1 s", "1 h", "1 y"):
        assert f"| {label} |" in sections["Conductance drift"]
    for label in ("2 bits", "6 bits", "8 bits"):
        assert label in sections["ADC resolution"]
    for label in ("16x16", "64x64", "256x256"):
        assert label in sections["Tile size"]
    drift_header = next(ln for ln in sections["Conductance drift"].splitlines() if ln.startswith("|"))
    assert drift_header.count("compensated") == 4
    for p in results["points"]:
        assert pct(p["acc"]) in text
    assert "## Device comparison" in text and "![Accuracy and energy per device](devices.png)" in text
    assert "`pcm` | shipped" in text and "`seed-4bit` | ideal" in text
    assert energy(results["devices"][0]["energy"]["totals"]["joules"]) in text and "(ADC " in text
    assert "## How to read this" in text and "evaluated unchanged at every point" in text
    assert "nu=0.05 (device-to-device sigma 0.02)" in text


def test_partial_results(tmp_path: Path) -> None:
    results = make_results()
    del results["acceptance"]
    del results["models"]["hardware-aware"]
    results["devices"] = []
    results["points"] = [p for p in results["points"] if p["sweep"] == "stuck"]
    text = write_all(results, tmp_path).read_text(encoding="utf-8")
    assert (tmp_path / "robustness.png").exists() and (tmp_path / "robustness.csv").exists()
    assert not (tmp_path / "devices.png").exists() and not (tmp_path / "devices.csv").exists()
    assert "## Acceptance" not in text and "## Device comparison" not in text and "devices.png" not in text
    assert "### Stuck-at devices" in text and "### Programming noise" not in text
    assert summary_lines(results)[0] == "acceptance not run"

    bare = {"study": "x", "kind": "robustness", "config": {}, "versions": {}, "command": None,
            "wall_time_s": 0.0, "models": {}, "points": [], "devices": []}
    text = write_all(bare, tmp_path / "bare").read_text(encoding="utf-8")
    assert "## Sweeps" not in text and not (tmp_path / "bare" / "robustness.png").exists()


def test_summary_lines() -> None:
    results = make_results()
    lines = summary_lines(results)
    assert 3 <= len(lines) <= 6
    assert "conversion only" in lines[0] and "hardware-aware" in lines[0] and pct(0.9654) in lines[0]
    assert "meets 96.0%" in lines[0]
    for line in lines[1:]:
        assert "conversion only" in line and "hardware-aware" in line
    assert any("Programming noise, worst" in ln and "at 20%" in ln for ln in lines)


def test_formatting() -> None:
    assert [duration(v) for v in (1, 60, 3600, 86400, 2592000, 31536000)] == [
        "1 s", "1 min", "1 h", "1 d", "30 d", "1 y"]
    assert energy(1.234e-8) == "12.3 nJ" and energy(2.5e-6) == "2.5 µJ" and energy(0) == "0 pJ"
    assert duration(0) == "0 s" and duration(90) == "1.5 min"


def test_every_table_caption_names_images_chips_and_energy_scope(tmp_path: Path) -> None:
    """Every sweep table and the device table say which test images, T and how many chips their
    accuracies average (read from the data), and that the energy is chip 0's on its own images."""
    results = make_results()
    results["config"]["data"] = {"test_limit": 1000}
    results["config"]["max_rate"] = 1.0
    for p in results["points"]:
        p["acc_per_chip"] = p["acc_per_chip"] + [p["acc"]]  # three chips held
    text = write_all(results, tmp_path).read_text(encoding="utf-8")
    sweeps = text.split("## Sweeps")[1].split("\n## ")[0].split("### ")[1:]
    assert len(sweeps) == len(SWEEP_VALUES)
    for part in sweeps:
        assert "Test accuracy on the first 1,000 MNIST test images at T=32, Poisson max rate 1, " \
               "mean over 3 chip(s)" in part
    device = text.split("## Device comparison")[1].split("\n## ")[0]
    assert "mean over 2 chip(s)" in device and "chip 0 only, averaged over the first 100 test images" in device
