"""`xbar robustness`: configuration checks and a tiny end-to-end run on MNIST (resumable)."""

from __future__ import annotations

import csv
import json

import pytest

from xbar.cli import main
from xbar.experiments.config import ConfigError, list_configs
from xbar.experiments.robustness import Robustness, load_robustness_config

TINY = """
name: robustness-tiny
data: {train_limit: 1000, test_limit: 200, calibration_samples: 200}
ann: {epochs: 1}
timesteps: 8
hardware_aware: {epochs: 1}
acceptance: {chips: 2}
adc_calibration: {samples: 50}
sweeps:
  programming_sigma: [0.0, 0.1]
  stuck: [0.02]
  drift_time_s: [3600]
  adc_bits: [4]
  tile: [32]
  read_noise_flicker: [1.0]
  compensation_time_s: [3600]
devices: {names: [ideal, neurram], periphery: [shipped, ideal], energy_samples: 100}
"""


def test_shipped_configs_load_and_stay_out_of_the_study_list():
    full, quick = load_robustness_config("robustness"), load_robustness_config("robustness-quick")
    assert full["acceptance"] == {"programming_sigma": 0.05, "stuck": 0.01, "adc_bits": 6, "tile": 64, "chips": 3}
    assert full["timesteps"] == 32 and full["data"]["test_limit"] is None
    assert quick["data"]["test_limit"] == 1000 and quick["devices"]["names"] == ["ideal", "seed-4bit", "neurram"]
    assert not any(name.startswith("robustness") for name in list_configs())


@pytest.mark.parametrize("text, field", [
    ("chips: 0\n", "chips"), ("sweeps: {stuck: [0.5, 2]}\n", "sweeps.stuck"), ("bogus: 1\n", "bogus"),
    ("sweeps: {adc_bits: [1]}\n", "sweeps.adc_bits"), ("hardware_aware: {faults: some}\n", "hardware_aware.faults"),
    ("adc_calibration: {method: mean}\n", "adc_calibration.method"),
    ("devices: {periphery: [fancy]}\n", "devices.periphery"), ("acceptance: {tile: 0}\n", "acceptance.tile")])
def test_bad_config_names_file_and_key(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_robustness_config(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["robustness", "--chips", "0", "--out", str(tmp_path)]) == 2
    assert "--chips" in capsys.readouterr().err
    assert main(["robustness", "--device", "no-such-device", "--out", str(tmp_path)]) == 1
    assert "no-such-device" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_run_end_to_end_and_resume(tmp_path, capsys):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY)
    out = tmp_path / "out"
    assert main(["robustness", "--config", str(cfg_path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "hardware-aware" in printed and "report.md" in printed
    results = json.loads((out / "results.json").read_text())
    sweeps = {(p["sweep"], p["value"], p["compensation"], p["model"]) for p in results["points"]}
    # drift: with and without compensation; compensation: global and per column
    assert len(sweeps) == len(results["points"]) == 2 * (2 + 1 + 2 + 1 + 1 + 1 + 2)
    assert {(p["sweep"], p["compensation"]) for p in results["points"]} >= {
        ("read_noise", None), ("compensation", "global"), ("compensation", "column")}
    assert {d["device"] for d in results["devices"]} == {"ideal", "neurram"} and len(results["devices"]) == 8
    neurram = [d for d in results["devices"] if d["device"] == "neurram"]
    adc = {d["periphery"]: d["energy"]["totals"]["joules"] for d in neurram if d["model"] == "conversion"}
    assert adc["shipped"] > adc["ideal"], "neurram's 8-bit ADCs cost energy; ideal periphery has none"
    for d in results["devices"]:
        assert 0 <= d["acc"] <= 1 and d["energy"]["totals"]["joules"] > 0
    assert 0 <= results["acceptance"]["conversion"] <= 1 and 0 <= results["acceptance"]["hardware-aware"] <= 1
    assert [len(r["acc_per_chip"]) for r in results["acceptance"]["rows"]] == [2, 2]
    assert {"hardware-aware", "hardware-aware-chip1"} <= set(results["models"]), "fault-aware: one per chip"
    with open(out / "robustness.csv") as f:
        assert len(list(csv.DictReader(f))) == len(results["points"])
    assert (out / "robustness.png").stat().st_size > 0 and (out / "devices.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "Robustness" in report and "neurram" in report
    # a second run resumes: nothing is measured again, the numbers stay
    study = Robustness(load_robustness_config(cfg_path), out, progress=False)
    assert study.results["points"] == results["points"]
    assert not any(study.model_points()), "every network is trained already"
    study.step_measure()
    assert study.results["points"] == results["points"] and study.results["devices"] == results["devices"]
    # the same run on two worker processes: the same numbers, bit for bit (one torch thread per point)
    par = tmp_path / "par"
    assert main(["robustness", "--config", str(cfg_path), "--out", str(par), "--no-progress", "--workers", "2"]) == 0
    again = json.loads((par / "results.json").read_text())
    for key in ("points", "devices", "acceptance"):
        assert again[key] == results[key], key
    untimed = lambda models: {k: {f: v for f, v in m.items() if f != "train_s"} for k, m in models.items()}  # noqa: E731
    assert untimed(again["models"]) == untimed(results["models"])
    assert (par / "robustness.csv").read_text() == (out / "robustness.csv").read_text()
    # and on a 2-process Dask LocalCluster (workers read results.json and checkpoints from --out)
    distributed = pytest.importorskip("distributed", reason="Dask distributed not installed (pip install 'xbar[dask]')")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        dask_out = tmp_path / "dask"
        assert main(["robustness", "--config", str(cfg_path), "--out", str(dask_out), "--no-progress",
                     "--scheduler", cluster.scheduler_address]) == 0
    on_dask = json.loads((dask_out / "results.json").read_text())
    for key in ("points", "devices", "acceptance"):
        assert on_dask[key] == results[key], key
