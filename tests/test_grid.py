"""Grid files (xbar.grid): validation naming the key, expansion, stable hashes, overrides, table, CLI."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import xbar
from xbar.cli import main
from xbar.grid import GridError, expand, load_grid, point_key, point_profile, point_seed, validate_grid
from xbar.grid_table import write_table

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "grid.yaml"


def _ok(**over):
    doc = {"model": {"zoo": "mlp"}, "axes": {"device": ["seed-4bit", "pcm"], "timesteps": [4, 8]}}
    doc.update(over)
    return doc


def _errors(doc) -> list[tuple[str, str]]:
    with pytest.raises(GridError) as info:
        validate_grid(doc, "G.yaml")
    assert all(line.startswith("G.yaml: ") for line in str(info.value).splitlines())
    return info.value.errors


@pytest.mark.parametrize("doc, key, words", [
    (_ok(axes={"noise.programming_sigma": 0.1}), "axes.noise.programming_sigma", "must be a non-empty list of numbers"),
    (_ok(axes={"noise.programming_sigma": ["a"]}), "axes.noise.programming_sigma", "must be a number"),
    (_ok(axes={"timesteps": [0, 4]}), "axes.timesteps", "integer >= 1"),
    (_ok(axes={"max_rate": [1.5]}), "axes.max_rate", "(0, 1]"),
    (_ok(axes={"timesteps": [4, 4]}), "axes.timesteps", "repeated"),
    (_ok(axes={"noise.programming_sigma": [-0.1]}), "axes.noise.programming_sigma", "must be >= 0"),
    (_ok(axes={"periphery.adc_bits": [1]}), "axes.periphery.adc_bits", "between 2 and 32"),
    (_ok(axes={"device": ["no-such-device"]}), "axes.device", "unknown device profile"),
    (_ok(axes={"noise.sigma": [0.1]}), "axes.noise.sigma", "unknown key; known: device, timesteps"),
    (_ok(axes={}), "axes", "non-empty mapping"),
    (_ok(colour="red"), "colour", "unknown key; known: name, model, data"),
    (_ok(model={"zoo": "nope"}), "model.zoo", "unknown model 'nope'"),
    (_ok(model={"zoo": "mlp", "train_epochs": -1}), "model.train_epochs", "integer >= 0"),
    (_ok(model={"checkpoint": "missing.pt"}), "model.checkpoint", "no such file"),
    (_ok(model={"zoo": "mlp", "checkpoint": "x.pt"}), "model", "exactly one of"),
    (_ok(model={"zoo": "mlp", "optimiser": "sgd"}), "model.optimiser", "unknown key"),
    (_ok(data={"dataset": "cifar"}), "data.dataset", "mnist, synthetic"),
    (_ok(data={"size": 0}), "data.size", "integer >= 1"),
    (_ok(measure=["latency"]), "measure", "unknown measure 'latency'"),
    (_ok(plots=[["timesteps"]]), "plots[0]", "pair"),
    (_ok(plots=[["timesteps", "seed"]]), "plots[0]", "'seed' is not an axis"),
    (_ok(fixed={"timesteps": 4}), "fixed.timesteps", "is also an axis"),
    (_ok(fixed={"drift_compensation": "yes"}), "fixed.drift_compensation", "true or false"),
])
def test_validation_names_the_key(doc, key, words):
    errs = _errors(doc)
    assert any(k == key and words in reason for k, reason in errs), errs


def test_every_error_is_reported():
    errs = _errors({"model": {"zoo": "nope"}, "axes": {"timesteps": [0]}, "extra": 1})
    assert {k for k, _ in errs} == {"model.zoo", "axes.timesteps", "extra"}


def test_bad_yaml_and_missing_file(tmp_path):
    (tmp_path / "g.yaml").write_text("axes: [\n")
    with pytest.raises(GridError, match="g.yaml: <document>: not valid YAML"):
        load_grid(tmp_path / "g.yaml")
    with pytest.raises(GridError, match="<file>"):
        load_grid(tmp_path / "absent.yaml")


def test_expand_order_and_fixed_defaults():
    g = validate_grid(_ok(fixed={"max_rate": 0.5}))
    pts = expand(g)
    assert [(p["device"], p["timesteps"]) for p in pts] == [("seed-4bit", 4), ("seed-4bit", 8), ("pcm", 4), ("pcm", 8)]
    assert all(p["max_rate"] == 0.5 and p["seed"] == 0 and p["drift_time_s"] == 0.0 for p in pts)


def test_point_hashes_are_stable():
    a = {"device": "pcm", "timesteps": 8, "noise.programming_sigma": 0.02}
    b = dict(reversed(list(a.items())))
    assert point_key(a) == point_key(b) and point_seed(a) == point_seed(b)
    assert point_key(a) == "581e4f53b78a4f36"  # SHA-256 of canonical JSON: the same in every process
    assert point_seed(a, 1) != point_seed(a, 2) and 0 <= point_seed(a) < 2**62
    assert point_key({**a, "timesteps": 16}) != point_key(a)


def test_point_profile_overrides():
    pcm = xbar.load_device("pcm")
    assert pcm.programming_sigma_poly is not None
    p = point_profile({"device": "pcm", "noise.programming_sigma": 0.01, "periphery.adc_bits": 6, "tile": 64})
    assert (p.programming_sigma, p.programming_sigma_poly, p.adc_bits, p.tile_rows, p.tile_cols) == (0.01, None, 6, 64, 64)
    assert point_profile({"device": "pcm"}) == pcm


def test_example_grid_validates():
    g = load_grid(EXAMPLE)
    assert len(expand(g)) == 48 and g["plots"]


def test_table_is_long_format_and_exact(tmp_path):
    rows = [{"device": "pcm", "timesteps": 4, "accuracy": 0.1 + 0.2}, {"device": "ideal", "timesteps": 8, "accuracy": 1 / 3}]
    (path,) = [p for p in write_table(rows, ["device", "timesteps"], tmp_path / "grid") if p.suffix == ".csv"]
    back = list(csv.DictReader(path.open()))
    assert [float(r["accuracy"]) for r in back] == [0.1 + 0.2, 1 / 3]
    assert list(back[0]) == ["device", "timesteps", "accuracy"]


def _tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16, bias=False), nn.ReLU(), nn.Linear(16, 10, bias=False))
    xbar.save(net, path)
    return path


def tiny_grid(tmp_path: Path, axes: str) -> Path:
    """A grid file on a 784-16-10 checkpoint and 40 synthetic images (seconds per point)."""
    _tiny_checkpoint(tmp_path / "tiny.pt")
    text = ("name: tiny\nmodel: {checkpoint: tiny.pt}\n"
            "data: {dataset: synthetic, size: 40, batch_size: 20, calibration: 40, train_size: 40}\n"
            "axes:\n" + textwrap.indent(axes, "  ") + "measure: [accuracy, energy, spikes]\n"
            "plots: [[timesteps, device]]\n")
    (tmp_path / "g.yaml").write_text(text)
    return tmp_path / "g.yaml"


def test_cli_reports_bad_grid(tmp_path, capsys):
    path = tiny_grid(tmp_path, "noise.programming_sigma: oops\n")
    assert main(["sweep", "grid", str(path), "--workers", "1"]) == 1
    assert f"error: {path}: axes.noise.programming_sigma: must be a non-empty list of numbers" in capsys.readouterr().err


def test_cli_runs_and_resumes(tmp_path, capsys):
    path = tiny_grid(tmp_path, "device: [seed-4bit, ideal]\ntimesteps: [2, 4]\n")
    out = tmp_path / "out"
    assert main(["sweep", "grid", str(path), "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "grid.csv").open()))
    assert len(rows) == 4 and {"device", "timesteps", "accuracy", "energy_j", "spikes"} <= set(rows[0])
    assert (out / "plot_timesteps_by_device.png").is_file() and len(list((out / "points").glob("*.json"))) == 4
    assert main(["sweep", "grid", str(path), "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    assert "0 points computed, 4 already done" in capsys.readouterr().out
    assert list(csv.DictReader((out / "grid.csv").open())) == rows


def test_sweep_timesteps_still_parses():
    from xbar.cli import build_parser

    args = build_parser().parse_args(["sweep", "timesteps", "--quick"])
    assert args.sweep == "timesteps" and args.quick
