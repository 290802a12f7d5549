"""The plots and markdown report of `xbar reproduce`, from a synthetic results dict."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from xbar.experiments.plots import PLOT_FILES, aggregate_rows, make_plots
from xbar.experiments.report import pct, pct_pm, summary_lines, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = [0, 1]
TS = [4, 8, 16, 32]
RATES = [0.2, 0.5, 1.0]
STUDY_REFERENCE = {
    "vanilla": {"best_T": 32, "runtime_s": 72, "best_rate": 0.46, "acc_5_epochs": "> 85%",
                "constrained_20_epochs": 0.841},
    "spike-norm": {"best_T": 128, "runtime_s": 240, "best_rate": 0.76, "acc_5_epochs": "> 82%",
                   "constrained_20_epochs": 0.864},
    "surrogate": {"best_T": 64, "runtime_s": 200, "best_rate": 0.24, "acc_5_epochs": "> 96%",
                  "constrained_20_epochs": 0.943},
    "spike-norm+surrogate": {"best_T": 8, "runtime_s": 55, "best_rate": 0.38,
                             "acc_5_epochs": "> 90%", "constrained_20_epochs": 0.913},
}
# mode -> (study_name, base accuracy, best T); headline test acc is base + 0.0010 (seed 0) / +0.0030
MODES: dict[str, tuple[str | None, float, int]] = {
    "vanilla": ("vanilla", 0.9100, 32),
    "spike-norm": ("spike-norm", 0.9200, 16),
    "percentile": (None, 0.9600, 16),
    "surrogate": ("surrogate", 0.9500, 8),
    "surrogate-hybrid": (None, 0.9650, 8),
    "spike-norm+surrogate": ("spike-norm+surrogate", 0.9300, 8),
}


def _history(epochs: int, start: float, step: float, first: int = 1) -> list[dict[str, Any]]:
    """A per-epoch history with accuracies rising by ``step`` per epoch."""
    return [{"epoch": e, "loss": 0.5 / (e + 1), "val_acc": start + step * (e - first) + 0.001,
             "test_acc": start + step * (e - first)} for e in range(first, first + epochs)]


def _energy(scale: float) -> dict[str, Any]:
    """An energy report of two synaptic layers; ``scale`` grows with T."""
    layers = []
    for name, fan_out, ins in (("1", 100, 150.0 * scale), ("2", 10, 40.0 * scale)):
        acs = ins * fan_out
        layers.append({"name": name, "kind": "linear", "input_events": ins, "acs": acs, "macs": 0.0,
                       "crossbar_j": acs * 2e-15, "adc_conversions": 0.0, "adc_j": 0.0,
                       "neuron_updates": fan_out * 8 * scale, "spikes": ins / 4, "neuron_j": 0.0,
                       "spike_j": 0.0, "digital_snn_j": acs * 0.9e-12,
                       "ann_macs": 784.0 * 100 if name == "1" else 1000.0,
                       "digital_ann_j": (784.0 * 100 if name == "1" else 1000.0) * 4.6e-12,
                       "joules": acs * 2e-15})
    totals = {key: sum(layer[key] for layer in layers)
              for key in ("input_events", "acs", "macs", "crossbar_j", "adc_j", "neuron_j",
                          "joules", "digital_snn_j", "ann_macs", "digital_ann_j")}
    totals["synaptic_events"] = totals["acs"]
    return {"samples": 10000, "device": "seed-4bit", "totals": totals, "layers": layers}


def _mode(name: str, quick: bool) -> dict[str, Any]:
    """One mode's entry: timestep sweep, rate sweep, headline and energy."""
    study_name, base, best_t = MODES[name]
    timesteps, rates = [], []
    for seed in SEEDS:
        for k, t in enumerate(TS):
            acc = base - 0.02 * (len(TS) - 1 - k) + 0.001 * (1 + 2 * seed) if t <= best_t else base
            timesteps.append({"seed": seed, "T": t, "val_acc": acc + 0.002, "test_acc": acc,
                              "input_spikes": 100.0 * t, "acs": 10000.0 * t, "joules": 2e-11 * t,
                              "wall_s": 0.5 * t + seed})
        if not quick:
            for r in RATES:
                acc = base - 0.05 * (1.0 - r) + 0.001 * seed
                rates.append({"seed": seed, "rate": r, "val_acc": acc + 0.002, "test_acc": acc,
                              "input_spikes": 100.0 * best_t * r, "acs": 10000.0 * best_t * r})
    per_seed = [{"seed": s, "test_acc": base + 0.001 * (1 + 2 * s)} for s in SEEDS]
    surrogate = "surrogate" in name
    return {
        "description": f"synthetic {name}",
        "study_name": study_name,
        "training": [{"seed": s, "history": _history(3, base - 0.03, 0.01)} for s in SEEDS]
        if surrogate else [],
        "timesteps": timesteps,
        "best_T": best_t,
        "rates": rates,
        "best_rate": None if quick else 0.5,
        "headline": {"T": best_t, "test_acc_mean": base + 0.002, "test_acc_std": 0.001,
                     "per_seed": per_seed},
        "energy": _energy(best_t / 8),
    }


def fake_results(quick: bool = False) -> dict[str, Any]:
    """A results dict following ``notes/results_schema.md``: 2 seeds, 4 Ts, 3 rates, 6 modes.

    Args:
        quick: when True, a quick run's dict: no rate sweep and no constrained runs.

    Returns:
        The synthetic results dict.
    """
    runs = [] if quick else [
        {"mode": "vanilla", "mapping": "clip", "procedure": "study", "T": 32,
         "history": _history(4, 0.8000, 0.0150, first=0)},
        {"mode": "vanilla", "mapping": "differential", "procedure": "hardware-aware", "T": 32,
         "history": _history(4, 0.8500, 0.0200, first=0)},
    ]
    return {
        "study": "ee518",
        "quick": quick,
        "command": "xbar reproduce --config ee518 --seeds 0 1",
        "config": {"name": "ee518", "timesteps": TS, "rates": RATES},
        "seeds": SEEDS,
        "versions": {"xbar": "0.1.0", "torch": "2.x", "spikingjelly": "0.0.0.0.14", "python": "3.11"},
        "device": {"schema": 1, "name": "seed-4bit", "description": "Generic memristor.",
                   "conductance": {"g_max_us": 100.0, "on_off_ratio": 10.0, "levels": 16,
                                   "spacing": "linear"}},
        "wall_time_s": 812.3,
        "ann": {"per_seed": [{"seed": s, "history": _history(5, 0.93 + 0.002 * s, 0.008),
                              "val_acc": 0.9650, "test_acc": 0.9700 + 0.002 * s} for s in SEEDS],
                "test_acc_mean": 0.9710, "test_acc_std": 0.0010},
        "modes": {name: _mode(name, quick) for name in MODES},
        "constrain": {"device": "seed-4bit", "runs": runs},
        "study_reference": copy.deepcopy(STUDY_REFERENCE),
    }


def _assert_pngs(out: Path, plots: dict[str, str]) -> None:
    """Every returned plot is a PNG file in ``out``."""
    for key, name in plots.items():
        assert name == PLOT_FILES[key]
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, key


def test_full_results_make_every_plot_and_the_report(tmp_path: Path) -> None:
    results = fake_results()
    plots = make_plots(results, tmp_path)
    assert set(plots) == set(PLOT_FILES)
    _assert_pngs(tmp_path, plots)

    path = write_report(results, tmp_path, plots)
    assert path == tmp_path / "report.md"
    text = path.read_text(encoding="utf-8")
    assert ("| Mode | Best T (study / ours) | Runtime s (study / ours) | "
            "Best firing rate (study / ours) |") in text
    for name in plots.values():
        assert f"({name})" in text
    # the study's own figures, beside ours
    assert "32 / 32" in text and "128 / 16" in text and "> 96% / 95.20% ± 0.10" in text
    assert "84.10% / " in text and "86.40%" in text and "94.30%" in text and "91.30%" in text
    # ours: vanilla headline 0.9120, its clip+study run ends at 0.8 + 3 * 0.015
    assert "91.20% ± 0.10" in text
    assert "84.10% / 84.50% (3 ep)" in text
    assert "91.00% (3 ep), differential + hardware-aware" in text
    assert "| percentile | — / 16 |" in text
    assert "97.10% ± 0.10" in text  # ANN
    # runtime at best T: mean over seeds of wall_s = 0.5 * 32 + seed
    assert "72 / 16.50" in text
    for section in ("## Timestep sweep", "## Firing-rate sweep", "## Hardware constraints",
                    "## Energy", "## Where we differ from the study and why"):
        assert section in text
    assert "0.40 points higher" in text  # vanilla constrained 84.50% vs the study's 84.10%
    assert "xbar reproduce --config ee518" in text
    assert "\n\nnot run" not in text  # every section has its data


def test_quick_results_without_rates_or_constraints(tmp_path: Path) -> None:
    results = fake_results(quick=True)
    plots = make_plots(results, tmp_path)
    assert "constrained_finetuning" not in plots
    assert "accuracy_vs_rate" not in plots and "acs_vs_rate" not in plots
    assert {"accuracy_vs_timesteps", "energy_per_layer", "ann_training"} <= set(plots)
    _assert_pngs(tmp_path, plots)
    assert not (tmp_path / "constrained_finetuning.png").exists()
    text = write_report(results, tmp_path, plots).read_text(encoding="utf-8")
    assert "## Hardware constraints\n\nnot run" in text
    assert "## Firing-rate sweep\n\nnot run" in text
    assert "quick run" in text


@pytest.mark.parametrize("drop", ["modes", "ann", "constrain", "study_reference", "device", "all"])
def test_missing_sections_say_not_run(tmp_path: Path, drop: str) -> None:
    results = {} if drop == "all" else {k: v for k, v in fake_results().items() if k != drop}
    plots = make_plots(results, tmp_path)
    _assert_pngs(tmp_path, plots)
    text = write_report(results, tmp_path, plots).read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "## Where we differ from the study and why" in text
    if drop in ("modes", "all"):
        assert "## Timestep sweep\n\nnot run" in text
    assert all(isinstance(line, str) and line for line in summary_lines(results))


def test_summary_lines() -> None:
    lines = summary_lines(fake_results())
    assert lines and all(isinstance(line, str) and line for line in lines)
    assert lines[0].startswith("ANN test accuracy 97.10%")
    vanilla = next(line for line in lines if line.startswith("vanilla:"))
    assert "best T 32 (study 32)" in vanilla and "84.50% (study 84.10%)" in vanilla
    assert any(line.startswith("percentile:") for line in lines)


def test_formatters_and_aggregation() -> None:
    assert pct(0.97123) == "97.12%" and pct(None) == "—"
    assert pct_pm(0.5, 0.0125) == "50.00% ± 1.25"
    rows = [{"seed": 0, "T": 4, "acc": 0.5}, {"seed": 1, "T": 4, "acc": 0.7},
            {"seed": 0, "T": 2, "acc": 0.1}, {"seed": 0, "T": 8}]
    points = aggregate_rows(rows, "T", "acc")
    assert [p.x for p in points] == [2, 4]
    assert points[1].mean == pytest.approx(0.6) and points[1].lo == 0.5 and points[1].hi == 0.7
    assert points[1].std == pytest.approx(0.1) and points[1].n == 2


def _empty_parts(fig: Any) -> list[str]:
    """Panels of ``fig`` with nothing drawn, and legend entries whose line holds no point (a
    marker key drawn empty counts when the panel draws that marker with data)."""
    problems = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
        if not (lines or ax.patches or ax.collections or ax.images):
            problems.append(f"empty panel {ax.get_title()!r}")
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if hasattr(handle, "get_xdata") and not len(handle.get_xdata()):
                marker = handle.get_marker()
                if marker not in (None, "", "None", "none") and any(ln.get_marker() == marker for ln in lines):
                    continue
                problems.append(f"legend entry without data {label!r} in {ax.get_title()!r}")
    return problems


@pytest.mark.parametrize("quick", [False, True])
def test_no_empty_panel_or_legend_entry(tmp_path: Path, monkeypatch, quick: bool) -> None:  # type: ignore[no-untyped-def]
    """Every plot, on results whose surrogate training histories hold what the study records
    (``epoch``, ``loss``, ``val_acc``; no test accuracy per epoch), draws data in every panel."""
    from xbar.experiments import plots as plots_mod

    results = fake_results(quick=quick)
    for mode in results["modes"].values():
        for run in mode["training"]:
            run["history"] = [{k: h[k] for k in ("epoch", "loss", "val_acc")} for h in run["history"]]
    found: dict[str, list[str]] = {}
    real_save = plots_mod._save

    def checking_save(fig, out_dir, key):  # type: ignore[no-untyped-def]
        found[key] = _empty_parts(fig)
        return real_save(fig, out_dir, key)

    monkeypatch.setattr(plots_mod, "_save", checking_save)
    made = make_plots(results, tmp_path)
    assert "ann_training" in made and set(found) == set(made)
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_sweep_captions_name_the_seeds_they_hold(tmp_path: Path, seeds: list[int]) -> None:
    """The timestep and rate tables say "seed 0 only" when their rows hold seed 0 only (the full
    study sweeps seed 0), and the mean over the seeds they hold otherwise; never hard-coded."""
    results = fake_results()
    for mode in results["modes"].values():
        mode["timesteps"] = [r for r in mode["timesteps"] if r["seed"] in seeds]
        mode["rates"] = [r for r in mode["rates"] if r["seed"] in seeds]
    text = write_report(results, tmp_path, make_plots(results, tmp_path)).read_text(encoding="utf-8")
    timestep = text.split("## Timestep sweep")[1].split("\n## ")[0]
    rate = text.split("## Firing-rate sweep")[1].split("\n## ")[0]
    want = "seed 0 only" if seeds == [0] else "mean over seeds 0, 1"
    for section in (timestep, rate):
        assert f"Test accuracy, {want}" in section
        assert ("mean over seeds" in section) == (len(seeds) > 1)


def test_energy_table_names_what_it_counts(tmp_path: Path) -> None:
    """The energy table's spike column is the encoder's spikes (the first layer's input events),
    not the sum over layers; the caption names the sample set and the terms of Total J that are
    zero, read from the data; the cited-periphery column appears with its sources."""
    results = fake_results()
    results["config"]["periphery_estimate"] = {"adc_pj": 1.67, "adc_source": "ADC SOURCE", "neuron_update_pj": 1.8,
                                               "neuron_source": "NEURON SOURCE", "spike_pj": 0.9,
                                               "spike_source": "SPIKE SOURCE"}
    for mode in results["modes"].values():
        mode["energy"]["with_periphery"] = {"joules": 3 * mode["energy"]["totals"]["joules"]}
    text = write_report(results, tmp_path, make_plots(results, tmp_path)).read_text(encoding="utf-8")
    energy = text.split("## Energy")[1].split("\n## ")[0]
    header = next(line for line in energy.splitlines() if line.startswith("| Mode"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "Input spikes" not in cols and {"Encoder spikes", "Input events, all crossbar layers"} <= set(cols)
    mode = next(iter(results["modes"]))
    row = next(line for line in energy.splitlines() if line.startswith(f"| {mode} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    layers = results["modes"][mode]["energy"]["layers"]
    first, total = layers[0]["input_events"], sum(layer["input_events"] for layer in layers)
    assert float(cells[cols.index("Encoder spikes")].replace(",", "")) == pytest.approx(first, rel=1e-3)
    assert float(cells[cols.index("Input events, all crossbar layers")].replace(",", "")) == pytest.approx(total, rel=1e-3)
    joules = results["modes"][mode]["energy"]["totals"]["joules"]
    assert float(cells[cols.index("Total J, cited periphery")]) == pytest.approx(3 * joules, rel=1e-2)
    assert "all 10,000 MNIST test images" in energy
    assert all(src in energy for src in ("ADC SOURCE", "NEURON SOURCE", "SPIKE SOURCE"))
    assert "here the ADC, neuron and digital terms are 0, so Total J, device model = Crossbar J" in energy
    results["modes"][mode]["energy"]["totals"]["adc_j"] = 1e-12  # a device with an ADC
    text = write_report(results, tmp_path, make_plots(results, tmp_path)).read_text(encoding="utf-8")
    assert "here the neuron and digital terms are 0." in text.split("## Energy")[1]


def test_constraint_caption_states_scope(tmp_path: Path) -> None:
    """The constrained-finetuning caption says, from the configuration, that the runs are one seed,
    which subsets they are evaluated on, that every layer is constrained, and how many epochs
    they add to the ANN's."""
    results = fake_results()
    results["config"].update(constrain={"epochs": 20, "val_limit": 500, "test_limit": 1000}, ann={"epochs": 5})
    text = write_report(results, tmp_path, make_plots(results, tmp_path)).read_text(encoding="utf-8")
    section = text.split("## Hardware constraints")[1].split("\n## ")[0]
    assert "seed 0's networks (one seed" in section
    assert "the first 500 validation images and the first 1,000 test images" in section
    assert "both layers of the 784-100-10 MLP" in section
    assert "finetunes 20 more epochs (the ANN itself trained 5)" in section
