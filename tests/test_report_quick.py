"""A small real `xbar reproduce` run, its report parsed back: every table checked number by number
against results.json and the CSVs, and every caption against what the data holds."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from xbar.experiments.report_format import images_phrase, pct, pct_pm, sci

SMALL = {"seeds": 2, "ann.epochs": 1, "timesteps": [1, 2, 4, 8], "rates.count": 3, "rates.val_limit": 200,
         "rates.test_limit": 300, "constrain.epochs": 2, "constrain.mappings": ["clip"],
         "constrain.procedures": ["study"], "constrain.snn_variants": ["clip/study"],
         "constrain.val_limit": 200, "constrain.test_limit": 250, "constrain.snn_samples_per_epoch": 300,
         "data.train_limit": 2000, "data.val_limit": 300, "data.test_limit": 500, "data.calibration_samples": 300,
         "surrogate.epochs": 1, "surrogate.timesteps": 4}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from xbar.experiments.config import load_config
    from xbar.experiments.study import Study

    out = tmp_path_factory.mktemp("quick")
    Study(load_config("quick", SMALL), out, progress=False).run_all()
    csvs = {name: list(csv.DictReader((out / f"{name}.csv").open())) for name in
            ("ann", "timesteps", "rates", "constrain", "energy")}
    text = (out / "report.md").read_text(encoding="utf-8")
    return {"out": out, "results": json.loads((out / "results.json").read_text()), "csv": csvs,
            "text": text}


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def _tables(section: str) -> list[tuple[list[dict[str, str]], str]]:
    """Every markdown table of a section as rows keyed by header, with the paragraph after it."""
    lines = section.splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            head = [c.strip() for c in lines[i].strip("|").split("|")]
            j, rows = i + 2, []
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(dict(zip(head, (c.strip() for c in lines[j].strip("|").split("|")))))
                j += 1
            caption = next((line for line in lines[j:] if line.strip()), "")
            found.append((rows, caption))
            i = j
        else:
            i += 1
    return found


def _one(section: str) -> tuple[list[dict[str, str]], str]:
    tables = _tables(section)
    assert len(tables) == 1
    return tables[0]


def _f(cell: str) -> float:
    return float(cell.strip("*").replace(",", "").rstrip("%×"))


@pytest.mark.slow
def test_every_table_has_a_caption_and_every_plot_exists(run: dict[str, Any]) -> None:
    text, out = run["text"], run["out"]
    tables = _tables(text)
    assert len(tables) >= 6
    for rows, caption in tables:
        assert rows and caption and not caption.startswith(("|", "#", "!")), caption
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


@pytest.mark.slow
def test_results_table_and_ann_table_match_the_data(run: dict[str, Any]) -> None:
    res, text = run["results"], run["text"]
    rows, caption = _tables(_section(text, "Results beside the study's"))[0]
    seeds = res["seeds"]
    assert f"over {len(seeds)} seed(s)" in caption and images_phrase(res, "test") in caption
    sweep = run["csv"]["timesteps"]
    for mode, data in res["modes"].items():
        row = next(r for r in rows if r["Mode"] == mode)
        assert row["Best T (study / ours)"].split(" / ")[1] == str(data["best_T"])
        accs = [p["test_acc"] for p in data["headline"]["per_seed"]]
        assert [p["seed"] for p in data["headline"]["per_seed"]] == seeds
        seed0 = next(float(r["test_acc"]) for r in sweep if r["mode"] == mode and int(r["T"]) == data["best_T"])
        assert accs[0] == seed0  # seed 0's headline is the sweep's figure at best T
        want = pct_pm(statistics.fmean(accs), statistics.pstdev(accs))
        assert row["Accuracy (study, 5 epochs / ours)"].split(" / ")[1] == want
    ann_rows, ann_caption = _one(_section(text, "ANN baseline"))
    finals = []
    for r in ann_rows:
        hist = [h for h in run["csv"]["ann"] if int(h["seed"]) == int(r["Seed"])]
        assert r["Epochs"] == str(len(hist)) and r["Test acc"] == pct(float(hist[-1]["test_acc"]))
        finals.append(float(hist[-1]["test_acc"]))
    assert f"over {len(finals)} seed(s): {pct_pm(statistics.fmean(finals), statistics.pstdev(finals))}" in ann_caption


@pytest.mark.slow
def test_sweep_tables_match_the_csvs_and_captions_name_seeds_and_images(run: dict[str, Any]) -> None:
    res, text = run["results"], run["text"]
    rows, caption = _one(_section(text, "Timestep sweep"))
    sweep = run["csv"]["timesteps"]
    held = sorted({int(r["seed"]) for r in sweep})
    assert ("seed 0 only" in caption) == (held == [0])
    assert images_phrase(res, "test") in caption
    assert res["modes"]["vanilla"]["energy"]["samples"] == int(re.search(r"first ([\d,]+) test", caption)[1].replace(",", ""))
    for row in rows:
        for mode, cell in row.items():
            if mode == "T":
                continue
            vals = [float(r["test_acc"]) for r in sweep if r["mode"] == mode and int(r["T"]) == int(row["T"])]
            assert cell.strip("*") == pct(statistics.fmean(vals))
            assert cell.startswith("**") == (int(row["T"]) == res["modes"][mode]["best_T"])
    rows, caption = _one(_section(text, "Firing-rate sweep"))
    rates = run["csv"]["rates"]
    assert ("seed 0 only" in caption) == (sorted({int(r["seed"]) for r in rates}) == [0])
    assert images_phrase(res, "test", res["config"]["rates"]["test_limit"]) in caption
    for row in rows:
        for mode, cell in row.items():
            if mode == "Max rate":
                continue
            if row["Max rate"] == "best T":
                assert cell == str(res["modes"][mode]["best_T"])
                continue
            vals = [float(r["test_acc"]) for r in rates if r["mode"] == mode and abs(float(r["rate"]) - float(row["Max rate"])) < 1e-9]
            assert cell.strip("*") == pct(statistics.fmean(vals))


@pytest.mark.slow
def test_constraint_table_matches_constrain_csv_and_has_the_reference(run: dict[str, Any]) -> None:
    res, text = run["results"], run["text"]
    rows, caption = _one(_section(text, "Hardware constraints"))
    table = run["csv"]["constrain"]
    for row in rows:
        if row["Mode"].startswith("ANN"):
            hist = res["constrain"]["reference"]["history"]
        else:
            proc = row["Procedure"].split(" ")[0]
            hist = [h for h in table if h["mode"] == row["Mode"] and h["procedure"] == proc]
        assert hist, row
        acc = lambda h, k: float(h[k])  # noqa: E731
        assert row["Epochs"] == str(len(hist) - 1) == str(res["config"]["constrain"]["epochs"])
        assert row["Epoch-0 acc"] == pct(acc(hist[0], "test_acc")) and row["Final acc"] == pct(acc(hist[-1], "test_acc"))
        assert row["Final acc, full test set"] == pct(acc(hist[-1], "test_acc_full"))
        best = max(hist, key=lambda h: (acc(h, "val_acc"), -int(h["epoch"])))
        assert row["Best-val epoch"] == str(int(best["epoch"])) and row["Acc at best-val epoch"] == pct(acc(best, "test_acc"))
    procs = {r["Procedure"] for r in rows}
    assert "unconstrained (reference)" in procs and any(r["Mode"].startswith("ANN") for r in rows)
    converted = [m for m in res["config"]["modes"] if m in ("vanilla", "spike-norm", "percentile")]
    assert {r["Mode"] for r in rows if r["Procedure"].startswith("unconstrained")} == {*converted, "ANN (not converted)"}
    c = res["config"]["constrain"]
    assert images_phrase(res, "val", c["val_limit"]) in caption and images_phrase(res, "test", c["test_limit"]) in caption
    assert "one seed" in caption and "unconstrained reference" in caption


@pytest.mark.slow
def test_energy_table_agrees_with_the_timestep_sweep(run: dict[str, Any]) -> None:
    res, text = run["results"], run["text"]
    rows, caption = _one(_section(text, "Energy"))
    sweep, layers = run["csv"]["timesteps"], run["csv"]["energy"]
    est = res["config"]["periphery_estimate"]
    for row in rows:
        mode = row["Mode"]
        t = res["modes"][mode]["best_T"]
        point = next(r for r in sweep if r["mode"] == mode and int(r["T"]) == t and r["seed"] == "0")
        assert row["T"] == str(t)
        assert row["Total J, device model"] == sci(float(point["joules"]))
        assert _f(row["ACs"]) == pytest.approx(float(point["acs"]), abs=0.5)
        assert _f(row["Encoder spikes"]) == pytest.approx(float(point["input_spikes"]), abs=0.05)
        mine = [r for r in layers if r["mode"] == mode]
        priced = sum(float(r["crossbar_j"]) + float(r["digital_j"]) + float(r["column_reads"]) * est["adc_pj"] * 1e-12
                     + (float(r["neuron_updates"]) * est["neuron_update_pj"] + float(r["spikes"]) * est["spike_pj"]) * 1e-12
                     * (r["kind"] == "if") for r in mine)
        assert row["Total J, cited periphery"] == sci(priced)
    assert images_phrase(res, "test").replace(" test images", " MNIST test images") in caption
    for key in ("adc_pj", "neuron_update_pj", "spike_pj"):
        assert f"{est[key]:g} pJ" in caption
    for key in ("adc_source", "neuron_source", "spike_source"):
        assert est[key] in caption
