"""The markdown report and the closing headline of `xbar reproduce`.

Everything printed here is read from the results dict written by ``experiments/study.py``
(schema in ``notes/results_schema.md``); the only figures not measured by this run are the EE 518
study's own, and those come from ``results["study_reference"]``. A part whose data is missing
says "not run" instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xbar.experiments.plots import aggregate_rows, point_at
from xbar.experiments.report_constrain import (_constrain_section, _run_label,
                                               best_constrained_run, constrain_runs, final_entry,
                                               reference_runs, study_procedure_run)
from xbar.experiments.report_energy import _energy_section
from xbar.experiments.report_lowt import lowt_section
from xbar.experiments.report_format import (DASH, NOT_RUN, _modes, _num, _plot, _table, acc_over_seeds,
                                            count, images_phrase, pct, pct_pm, plain, points_diff, sci,
                                            seconds)

__all__ = ["DASH", "NOT_RUN", "count", "pct", "pct_pm", "plain", "points_diff", "sci", "seconds",
           "summary_lines", "write_report"]
_STUDY_FLAWS = (
    "**No real ANN→SNN conversion.** The study's SNN was trained from scratch; without a "
    "surrogate gradient its first layer never learned, so its vanilla and spike-norm figures "
    "measure an untrained first layer, not a conversion.",
    "**Spike-norm threshold never reset.** Its threshold was a running maximum carried over "
    "every batch and never reset, so it only grew and updated late.",
    "**\"Energy\" was a spike count.** What it reported as energy was the cumulative number of "
    "input spikes, with no synaptic operations and no device physics.",
    "**Best T picked on the test set, from one unseeded run.** Its best timesteps and best "
    "firing rate were chosen by looking at test accuracy of a single run with no fixed seed.",
)


def study_ref(results: Mapping[str, Any], mode: str) -> Mapping[str, Any] | None:
    """The EE 518 study's own row for ``mode``, or None for modes the study did not have.

    Args:
        results: the results dict.
        mode: a key of ``results["modes"]``.

    Returns:
        The ``study_reference`` entry named by the mode's ``study_name`` (spaces read as
        hyphens), or by the mode's own name when ``study_name`` is absent; None when
        ``study_name`` is null or no entry matches.
    """
    refs = results.get("study_reference") or {}
    data = _modes(results).get(mode, {})
    if "study_name" in data and data["study_name"] is None:
        return None
    name = str(data.get("study_name") or mode)
    for key in (name, name.replace(" ", "-"), mode):
        if isinstance(refs.get(key), Mapping):
            return refs[key]
    return None


def _timestep_row(data: Mapping[str, Any], T: Any) -> list[Mapping[str, Any]]:
    """The timestep-sweep rows (all seeds) at ``T``."""
    t = _num(T)
    return [r for r in data.get("timesteps") or [] if t is not None and _num(r.get("T")) == t]


def eval_wall_s(data: Mapping[str, Any]) -> float | None:
    """Mean over seeds of the test-set evaluation wall time at the mode's best T, in seconds."""
    walls = [w for w in (_num(r.get("wall_s")) for r in _timestep_row(data, data.get("best_T")))
             if w is not None]
    return sum(walls) / len(walls) if walls else None


def _parse_threshold(text: Any) -> float | None:
    """The number in a study figure such as ``"> 85%"`` as a fraction (0.85)."""
    if _num(text) is not None:
        x = float(text)
        return x / 100 if x > 1 else x
    match = re.search(r"(\d+(?:\.\d+)?)\s*%", str(text or ""))
    return float(match.group(1)) / 100 if match else None


def _study_pair(ref: Mapping[str, Any] | None, key: str, ours: str, fmt: Any = plain) -> str:
    """A "study / ours" table cell; the study side is a dash for our extra modes."""
    theirs = DASH if ref is None or ref.get(key) is None else fmt(ref.get(key))
    return f"{theirs} / {ours}"


def _final_cell(run: Mapping[str, Any] | None) -> str:
    """A constrained run's final-epoch test accuracy and its epoch count, e.g. "84.50% (20 ep)"."""
    if run is None:
        return NOT_RUN
    last = final_entry(run)
    return f"{pct(last.get('test_acc'))} ({plain(last.get('epoch'))} ep)"


def results_table(results: Mapping[str, Any]) -> list[str]:
    """The study's results table with our numbers beside the study's, one row per mode.

    Args:
        results: the results dict.

    Returns:
        Markdown lines: the table, the ANN row last, followed by its footnotes.
    """
    header = ["Mode", "Best T (study / ours)", "Runtime s (study / ours)",
              "Best firing rate (study / ours)", "Accuracy (study, 5 epochs / ours)",
              "Constrained (study, 20 epochs / ours, clip + study)", "Best constrained (ours)"]
    rows = []
    for mode, data in _modes(results).items():
        ref = study_ref(results, mode)
        head = data.get("headline") or {}
        clip = study_procedure_run(results, mode)
        best = best_constrained_run(results, mode)
        best_cell = f"{_final_cell(best)}, {_run_label(best)}" if best is not None else NOT_RUN
        rows.append([
            mode,
            _study_pair(ref, "best_T", plain(data.get("best_T"))),
            _study_pair(ref, "runtime_s", seconds(eval_wall_s(data))),
            _study_pair(ref, "best_rate", plain(data.get("best_rate"))),
            _study_pair(ref, "acc_5_epochs", acc_over_seeds(head.get("test_acc_mean"), head.get("test_acc_std"),
                                                            head.get("n_seeds")),
                        fmt=str),
            _study_pair(ref, "constrained_20_epochs", _final_cell(clip), fmt=pct),
            best_cell,
        ])
    ann = results.get("ann") or {}
    ann_ref = (results.get("study_reference") or {}).get("ann")
    ann_ours = acc_over_seeds(ann.get("test_acc_mean"), ann.get("test_acc_std"),
                              len(ann.get("per_seed") or [])) if ann else NOT_RUN
    rows.append(["ANN baseline (784-100-10)", DASH, DASH, DASH,
                 _study_pair(ann_ref if isinstance(ann_ref, Mapping) else None, "acc_5_epochs",
                             ann_ours, fmt=str), DASH, DASH])
    seeds = len(results.get("seeds") or [])
    cval = (((results.get("config") or {}).get("constrain") or {}).get("val_limit"))
    return _table(header, rows) + [
        "",
        f"Ours: test accuracy on {images_phrase(results, 'test')} is the mean ± standard deviation "
        f"(percentage points) over {seeds} seed(s) at the best T, which was chosen on seed 0's "
        f"validation accuracy ({images_phrase(results, 'val')}); runtime is the wall time of one "
        "evaluation of those test images at the best T (mean over the seeds swept), on this run's "
        "hardware, so it is not comparable with the study's. Constrained columns: one seed "
        f"(seed 0), final-epoch accuracy on {images_phrase(results, 'test')}. \"Best constrained\" is the run (mapping + "
        "procedure) with the highest final-epoch validation accuracy"
        + (f" on {images_phrase(results, 'val', cval)}" if cval is not None else "")
        + f", reported by its final-epoch test accuracy.{_reference_note(results)} A dash in a "
        "study column: the study had no such mode.",
    ]


def _reference_note(results: Mapping[str, Any]) -> str:
    """The unconstrained reference's final figures, for the results table's footnote."""
    ref = (results.get("constrain") or {}).get("reference") or {}
    if not ref.get("history"):
        return ""
    last = final_entry(ref)
    text = (f" The reference, seed 0's ANN finetuned the same {plain(last.get('epoch'))} epochs without "
            f"constraints, reaches {pct(last.get('test_acc'))} as an ANN")
    convs = [f"{r.get('mode')} {pct(final_entry(r).get('test_acc'))}" for r in reference_runs(results)]
    return text + (f" and, converted, {', '.join(convs)}." if convs else ".")


def _provenance(results: Mapping[str, Any]) -> list[str]:
    """How the report was produced: command, config, seeds, versions, device, wall time."""
    device = results.get("device") or {}
    if isinstance(device, Mapping):
        cond = device.get("conductance") or {}
        bits = [f"{k} {plain(v)}" for k, v in cond.items() if not isinstance(v, (list, dict))]
        dev_text = f"`{device.get('name', '?')}`" + (f" ({', '.join(bits)})" if bits else "")
        if device.get("description"):
            dev_text += f": {device['description']}"
    else:
        dev_text = str(device) if device else NOT_RUN
    versions = results.get("versions") or {}
    wall = _num(results.get("wall_time_s"))
    lines = ["## How this was produced", ""]
    if results.get("command"):
        lines += [f"- Command: `{results['command']}`"]
    lines += [
        f"- Study config: `{results.get('study', '?')}`"
        + (" (**quick run**: reduced data and epochs; not comparable with the study)"
           if results.get("quick") else ""),
        f"- Seeds: {', '.join(str(s) for s in results.get('seeds') or []) or NOT_RUN}",
        "- Versions: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or DASH),
        f"- Constraint device: {dev_text}",
        "- Wall time: " + (DASH if wall is None else f"{wall:.1f} s ({wall / 60:.1f} min)"),
        "",
    ]
    return lines


def _modes_list(results: Mapping[str, Any]) -> list[str]:
    """What each mode is, from its description, with the study's name for it."""
    modes = _modes(results)
    if not modes:
        return []
    lines = ["Modes:", ""]
    for mode, data in modes.items():
        name = data.get("study_name")
        study = f" (the study's \"{name}\")" if name else " (not in the study)"
        lines.append(f"- `{mode}`{study}: {data.get('description') or DASH}")
    return lines + [""]


def _ann_section(results: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    """The ANN baseline: per-seed validation and test accuracy and the training plot."""
    ann = results.get("ann") or {}
    lines = ["## ANN baseline", ""]
    if not ann.get("per_seed"):
        return lines + [NOT_RUN, ""]
    lines += _plot(plots, "ann_training", "ANN training") + [""]
    rows = [[plain(s.get("seed")), str(len(s.get("history") or [])), pct(s.get("val_acc")),
             pct(s.get("test_acc"))] for s in ann["per_seed"]]
    lines += _table(["Seed", "Epochs", "Val acc", "Test acc"], rows)
    n = len(ann["per_seed"])
    return lines + ["", f"Mean test accuracy over {n} seed(s): "
                    f"{acc_over_seeds(ann.get('test_acc_mean'), ann.get('test_acc_std'), n)}, on "
                    f"{images_phrase(results, 'test')}; validation: {images_phrase(results, 'val')}.", ""]


def _seed_phrase(rows: Iterable[Mapping[str, Any]]) -> str:
    """What a table over sweep ``rows`` averages: ``"seed 0 only"`` or ``"mean over seeds 0, 1, 2"``
    (from the seeds the rows hold, never assumed)."""
    seeds = sorted({r.get("seed") for r in rows if r.get("seed") is not None})
    if not seeds:
        return "seed not recorded"
    if len(seeds) == 1:
        return f"seed {seeds[0]} only"
    return "mean over seeds " + ", ".join(str(x) for x in seeds)


def _timestep_section(results: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    """Accuracy against timesteps: plot and a table of mean test accuracy per T per mode."""
    modes = {m: d for m, d in _modes(results).items() if d.get("timesteps")}
    lines = ["## Timestep sweep", ""]
    if not modes:
        return lines + [NOT_RUN, ""]
    lines += _plot(plots, "accuracy_vs_timesteps", "Accuracy vs timesteps") + [""]
    curves = {m: aggregate_rows(d["timesteps"], "T", "test_acc") for m, d in modes.items()}
    ts = sorted({p.x for pts in curves.values() for p in pts})
    rows = []
    for t in ts:
        row = [plain(t)]
        for mode, pts in curves.items():
            p = point_at(pts, t)
            cell = pct(p.mean) if p else DASH
            row.append(f"**{cell}**" if p and point_at([p], modes[mode].get("best_T")) else cell)
        rows.append(row)
    lines += _table(["T", *modes], rows)
    seeds = _seed_phrase(r for d in modes.values() for r in d["timesteps"])
    rate = ((results.get("config") or {}).get("encoder") or {}).get("max_rate")
    at_rate = f", Poisson max rate {plain(rate)}" if rate is not None else ""
    return lines + ["", f"Test accuracy, {seeds}, on {images_phrase(results, 'test')}{at_rate}; "
                    "**bold**: the best T, chosen on validation accuracy (seed 0, "
                    f"{images_phrase(results, 'val')}), never on test.", ""]


def _pick_rates(values: Sequence[float], keep: Sequence[Any], n: int = 6) -> list[float]:
    """About ``n`` rates spread over ``values``, plus every rate in ``keep``."""
    values = sorted(values)
    if len(values) <= n:
        chosen = set(values)
    else:
        chosen = {values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)}
    for k in keep:
        p = _num(k)
        match = next((v for v in values if p is not None and abs(v - p) <= 1e-9), None)
        if match is not None:
            chosen.add(match)
    return sorted(chosen)


def _rate_section(results: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    """Accuracy against max firing rate: plots and a table at a handful of rates."""
    modes = {m: d for m, d in _modes(results).items() if d.get("rates")}
    lines = ["## Firing-rate sweep", ""]
    if not modes:
        return lines + [NOT_RUN, ""]
    lines += _plot(plots, "accuracy_vs_rate", "Accuracy vs max firing rate") + [""]
    lines += _plot(plots, "acs_vs_rate", "ACs and input spikes vs max firing rate") + [""]
    curves = {m: aggregate_rows(d["rates"], "rate", "test_acc") for m, d in modes.items()}
    rates = _pick_rates(sorted({p.x for pts in curves.values() for p in pts}),
                        [d.get("best_rate") for d in modes.values()])
    rows = []
    for r in rates:
        row = [plain(r)]
        for mode, pts in curves.items():
            p = point_at(pts, r)
            cell = pct(p.mean) if p else DASH
            row.append(f"**{cell}**" if p and point_at([p], modes[mode].get("best_rate")) else cell)
        rows.append(row)
    rows.append(["best T", *(plain(d.get("best_T")) for d in modes.values())])
    lines += _table(["Max rate", *modes], rows)
    seeds = _seed_phrase(r for d in modes.values() for r in d["rates"])
    r_cfg = (results.get("config") or {}).get("rates")
    r_cfg = r_cfg if isinstance(r_cfg, Mapping) else {}
    here, sweep = images_phrase(results, "test", r_cfg.get("test_limit")), images_phrase(results, "test")
    differ = (f" (the timestep sweep uses {sweep}, and other spike trains, so its figure at the "
              "same rate and T can differ)") if here != sweep else " (other spike trains than the timestep sweep's)"
    return lines + ["", f"Test accuracy, {seeds}, on {here}{differ}, each mode at its best T; "
                    "**bold**: the best rate, the lowest rate whose validation accuracy "
                    f"({images_phrase(results, 'val', r_cfg.get('val_limit'))}) is within 0.5 points "
                    "of the mode's best validation accuracy.", ""]


def _mode_differences(results: Mapping[str, Any], mode: str, data: Mapping[str, Any],
                      ref: Mapping[str, Any]) -> list[str]:
    """Generated sentences comparing one study mode's numbers with the study's."""
    out = []
    ours_t, their_t = _num(data.get("best_T")), _num(ref.get("best_T"))
    if ours_t and their_t:
        if ours_t == their_t:
            rel = "the same"
        elif ours_t > their_t:
            rel = f"{ours_t / their_t:.3g}× longer"
        else:
            rel = f"{their_t / ours_t:.3g}× shorter"
        out.append(f"best T {plain(ours_t)} against the study's {plain(their_t)} ({rel})")
    ours_r, their_r = _num(data.get("best_rate")), _num(ref.get("best_rate"))
    if ours_r is not None and their_r is not None:
        word = "equal" if abs(ours_r - their_r) < 1e-9 else (
            f"{abs(ours_r - their_r):.2f} {'higher' if ours_r > their_r else 'lower'}")
        out.append(f"best max firing rate {plain(ours_r)} against {plain(their_r)} ({word})")
    head = _num((data.get("headline") or {}).get("test_acc_mean"))
    thresh = _parse_threshold(ref.get("acc_5_epochs"))
    if head is not None and thresh is not None:
        out.append(f"accuracy {pct(head)} against the study's \"{ref.get('acc_5_epochs')}\" "
                   f"({points_diff(head, thresh)} than its threshold)")
    clip = study_procedure_run(results, mode)
    theirs = _num(ref.get("constrained_20_epochs"))
    if clip is not None and theirs is not None:
        last = final_entry(clip)
        acc = _num(last.get("test_acc"))
        if acc is not None:
            out.append(f"constrained accuracy (clip + study, {plain(last.get('epoch'))} epochs) "
                       f"{pct(acc)} against {pct(theirs)} after 20 epochs "
                       f"({points_diff(acc, theirs)})")
    elif theirs is not None:
        out.append("constrained finetuning not run")
    return out


def _differences_section(results: Mapping[str, Any]) -> list[str]:
    """"Where we differ from the study and why": generated comparisons, then fixed text."""
    lines = ["## Where we differ from the study and why", ""]
    compared = 0
    for mode, data in _modes(results).items():
        ref = study_ref(results, mode)
        if ref is None:
            continue
        sentences = _mode_differences(results, mode, data, ref)
        if sentences:
            lines.append(f"- **{mode}**: " + "; ".join(sentences) + ".")
            compared += 1
    extra = [m for m in _modes(results) if study_ref(results, m) is None]
    if not compared:
        lines.append(f"- None of the study's modes was {NOT_RUN}; nothing to compare.")
    if extra:
        lines.append(f"- Modes the study did not have: {', '.join(extra)}.")
    seeds = len(results.get("seeds") or [])
    device = results.get("device") or {}
    dev_name = device.get("name", "?") if isinstance(device, Mapping) else str(device)
    lines += ["", "Known weaknesses of the study (we do not copy them):", ""]
    lines += _hybrid_observation(results)
    lines += [f"- {flaw}" for flaw in _STUDY_FLAWS]
    lines += [
        "", "How this reproduction differs:", "",
        "- The converted modes (vanilla, spike-norm, percentile) start from the trained ANN "
        "(ReLU → integrate-and-fire, with each mode's threshold balancing; see the mode list "
        "above); `surrogate` is trained from scratch by BPTT as the study did, and the hybrid "
        "modes finetune a converted ANN by BPTT, so no first layer is left untrained.",
        "- Spike-norm is computed layer by layer on calibration data, with earlier layers already "
        "converted, and is not carried over between batches.",
        f"- Best T and best firing rate are chosen on a validation split, never on test; every "
        f"accuracy is the mean ± standard deviation over {seeds} seed(s), each with an explicit "
        "generator.",
        f"- Energy comes from the device model (`{dev_name}`): synaptic accumulate operations "
        "(input events × fan-out) and crossbar read energy from the programmed conductances, "
        "plus a digital comparison of ACs against the ANN's MACs.",
    ]
    setups = list(dict.fromkeys(_run_label(r) for r in constrain_runs(results)))
    if setups:
        lines.append("- Constrained finetuning setups run (mapping + procedure): "
                     + ", ".join(setups) + "; the study's own is clip + study.")
    if results.get("quick"):
        lines.append("- This is a quick run (reduced data and epochs): its numbers check the "
                     "pipeline and are not a reproduction of the study's.")
    return lines + [""]


def write_report(results: dict, out_dir: Path, plots: dict[str, str]) -> Path:
    """Write ``report.md`` for a finished `xbar reproduce` run.

    Args:
        results: the results dict (schema in ``notes/results_schema.md``).
        out_dir: folder to write into; created if missing. Plot files are linked relative to it.
        plots: ``{plot_key: file_name}`` as returned by :func:`experiments.plots.make_plots`.

    Returns:
        The path of the report written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# xbar reproduction of the EE 518 study (`{results.get('study', '?')}`)", ""]
    lines += _provenance(results)
    lines += ["## Results beside the study's", ""] + results_table(results) + [""]
    lines += _modes_list(results)
    for section in (_ann_section, _timestep_section, _rate_section, _constrain_section,
                    _energy_section, lowt_section):
        lines += section(results, plots)
    lines += _differences_section(results)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """The short headline printed at the end of a run.

    Args:
        results: the results dict.

    Returns:
        One line for the ANN, one per mode, and one with the wall time; never empty.
    """
    ann = results.get("ann") or {}
    seeds = len(results.get("seeds") or [])
    lines = [f"ANN test accuracy {acc_over_seeds(ann.get('test_acc_mean'), ann.get('test_acc_std'), seeds)} "
             f"over {seeds} seed(s)" if ann else f"ANN {NOT_RUN}"]
    for mode, data in _modes(results).items():
        ref = study_ref(results, mode) or {}
        head = data.get("headline") or {}
        text = (f"{mode}: best T {plain(data.get('best_T'))}"
                + (f" (study {plain(ref['best_T'])})" if ref.get("best_T") is not None else "")
                + f", test {acc_over_seeds(head.get('test_acc_mean'), head.get('test_acc_std'), head.get('n_seeds'))}")
        clip = study_procedure_run(results, mode)
        if clip is not None:
            text += f", constrained {pct(final_entry(clip).get('test_acc'))}"
            if ref.get("constrained_20_epochs") is not None:
                text += f" (study {pct(ref['constrained_20_epochs'])})"
        joules = ((data.get("energy") or {}).get("totals") or {}).get("joules")
        if joules is not None:
            text += f", {sci(joules, 'J')}/sample"
        lines.append(text)
    if not _modes(results):
        lines.append(f"SNN modes {NOT_RUN}")
    wall = _num(results.get("wall_time_s"))
    if wall is not None:
        lines.append(f"wall time {wall:.1f} s")
    return lines


def _hybrid_observation(results: Mapping[str, Any]) -> list[str]:
    """A note, from the numbers, when BPTT finetuning made a converted network worse."""
    modes = _modes(results)
    out = []
    for hybrid, base in (("surrogate-hybrid", "percentile"), ("spike-norm+surrogate", "spike-norm")):
        h = _num((modes.get(hybrid, {}).get("headline") or {}).get("test_acc_mean"))
        b = _num((modes.get(base, {}).get("headline") or {}).get("test_acc_mean"))
        if h is not None and b is not None and h < b:
            out.append(f"- **{hybrid}** ({pct(h)}) is below the `{base}` conversion it starts from ({pct(b)}): "
                       "BPTT finetuning at this configuration's training T lowered accuracy; keep the conversion.")
    return out + ([""] if out else [])
