"""CSVs, figures and ``report.md`` of `xbar robustness`, drawn from its results dict alone.

The dict is the one :mod:`experiments.robustness` writes to ``results.json``: accuracies are
fractions in [0, 1] (mean over chips, per chip in ``acc_per_chip``), energies joules per sample.
A part missing from a partial run (no acceptance, no device comparison, some sweeps) is left out
of the outputs; a figure or CSV without data is not written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .outputs import _write
from .plots import DPI, _curve, _grouped_bars, _mode_colors, _percent_axis, _pyplot, aggregate_rows
from .report_format import DASH, _num, _table, pct, plain

ACCEPTANCE_THRESHOLD = 0.96  # default target of the hardware-aware network at the acceptance condition
MODELS = ("conversion", "hardware-aware")
MODEL_LABELS = {"conversion": "conversion only", "hardware-aware": "hardware-aware"}
SWEEPS = ("programming_sigma", "stuck", "drift", "adc_bits", "tile", "read_noise", "compensation")
def _scaled(value: Any, units: Sequence[tuple[float, str]]) -> str:
    """``value`` in the largest of ``units`` it reaches (the last unit below), 3 significant digits."""
    x = _num(value)
    if x is None:
        return DASH
    size, unit = next(((s, u) for s, u in units if abs(x) >= s), units[-1])
    return f"{x / size:.3g} {unit}"


def duration(seconds: Any) -> str:
    """A drift time in the largest whole unit it reaches: ``3600 -> "1 h"``, ``2592000 -> "30 d"``."""
    return _scaled(seconds, ((365 * 86400, "y"), (86400, "d"), (3600, "h"), (60, "min"), (1, "s")))


def energy(joules: Any) -> str:
    """An energy with an SI prefix, e.g. ``1.234e-08 -> "12.3 nJ"``."""
    return _scaled(joules, ((1, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ"), (1e-12, "pJ")))


def _percent(value: Any) -> str:
    x = _num(value)
    return DASH if x is None else f"{100 * x:.4g}%"


# sweep -> (title, quantity, table value, x drawn); drift and tile are drawn on log axes
_SWEEP_INFO: dict[str, tuple[str, str, Any, Any]] = {
    "programming_sigma": ("Programming noise", "programming sigma (% of g_max)", _percent, lambda v: 100 * v),
    "stuck": ("Stuck-at devices", "stuck devices (%, half at g_min, half at g_max)", _percent,
              lambda v: 100 * v),
    "drift": ("Conductance drift", "time since programming", duration, lambda v: v),
    "adc_bits": ("ADC resolution", "ADC bits", lambda v: f"{plain(v)} bits", lambda v: v),
    "tile": ("Tile size", "tile rows = columns", lambda v: f"{plain(v)}x{plain(v)}", lambda v: v),
    "read_noise": ("1/f vs white read noise", "1/f share of the read-noise variance (total sigma fixed)", _percent,
                   lambda v: 100 * v),
    "compensation": ("Drift compensation: per column vs global", "time since programming", duration, lambda v: v),
}
_LOG_BASE = {"drift": 10, "tile": 2, "compensation": 10}


def _cfg(results: Mapping[str, Any], *keys: str) -> Any:
    node: Any = results.get("config") or {}
    for k in keys:
        node = node.get(k) if isinstance(node, Mapping) else None
    return node


def _threshold(results: Mapping[str, Any]) -> float:
    """The hardware-aware target at the acceptance condition (``acceptance.threshold`` or the default)."""
    return _num(_cfg(results, "acceptance", "threshold")) or ACCEPTANCE_THRESHOLD


def describe_device(dev: Mapping[str, Any] | None, T: Any = None) -> str:
    """A device condition in words: name, programming sigma, stuck devices, ADC, tiles, T."""
    dev = dev or {}
    noise, faults, per = dev.get("noise") or {}, dev.get("faults") or {}, dev.get("periphery") or {}
    parts = [str(dev.get("name", "?")).split("+")[0]]
    if _num(noise.get("programming_sigma")):
        parts.append(f"programming sigma {_percent(noise['programming_sigma'])} of g_max")
    off, on = _num(faults.get("stuck_off")) or 0.0, _num(faults.get("stuck_on")) or 0.0
    if off + on:
        how = ("half at g_min, half at g_max" if abs(off - on) < 1e-12
               else f"{_percent(off)} at g_min, {_percent(on)} at g_max")
        parts.append(f"{_percent(off + on)} stuck devices ({how})")
    if per.get("adc_bits") is not None:
        parts.append(f"{plain(per['adc_bits'])}-bit ADC")
    if per.get("tile_rows") is not None:
        parts.append(f"{plain(per['tile_rows'])}x{plain(per.get('tile_cols'))} tiles")
    if T is not None:
        parts.append(f"T={plain(T)}")
    return ", ".join(parts)


def _models(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen = dict.fromkeys(str(r.get("model")) for r in rows)
    return [m for m in MODELS if m in seen] + [m for m in seen if m not in MODELS]


def _sweeps(results: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Points per sweep, in the runner's sweep order (unknown sweeps last)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for p in results.get("points") or []:
        if _num(p.get("value")) is not None:
            out.setdefault(str(p.get("sweep")), []).append(p)
    order = [s for s in SWEEPS if s in out] + [s for s in out if s not in SWEEPS]
    return {s: out[s] for s in order}


def _accept(results: Mapping[str, Any], sweep: str) -> float | None:
    """The acceptance condition's value of ``sweep`` (None where it has none, as for drift)."""
    return _num(_cfg(results, "acceptance", sweep)) if sweep in _SWEEP_INFO and sweep not in (
        "drift", "compensation", "read_noise") else None


def _series(points: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """``(model, compensation)`` pairs present: one per model, two per model for drift."""
    return [(m, c) for m in _models(points)
            for c in sorted({p.get("compensation") for p in points if p.get("model") == m}, key=str)]


def _label(model: str, comp: Any) -> str:
    if isinstance(comp, str):
        return MODEL_LABELS.get(model, model) + (", per-column compensation" if comp == "column"
                                                 else ", global compensation")
    suffix = "" if comp is None else ", compensated" if comp else ", uncompensated"
    return MODEL_LABELS.get(model, model) + suffix


def plot_sweeps(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """``robustness.png``: accuracy against each sweep's value, one panel per sweep, one colour per model."""
    sweeps = _sweeps(results)
    if not sweeps:
        return None
    plt = _pyplot()
    models = _models([p for ps in sweeps.values() for p in ps])
    colors = _mode_colors(models)
    ncols = min(3, len(sweeps))
    nrows = -(-len(sweeps) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(sweeps):]:
        ax.set_visible(False)
    for ax, (sweep, points) in zip(axes.flat, sweeps.items()):
        title, xlabel, fmt, tr = _SWEEP_INFO.get(sweep, (sweep, sweep, plain, lambda v: v))
        log = _LOG_BASE.get(sweep)
        for model, comp in _series(points):
            rows = [{"x": tr(float(p["value"])), "acc": a} for p in points  # one per chip: band = min-max
                    if p.get("model") == model and p.get("compensation") == comp
                    for a in (p.get("acc_per_chip") or [p.get("acc")])]
            curve = aggregate_rows([r for r in rows if not log or r["x"] > 0], "x", "acc")
            if curve:
                _curve(ax, curve, band=True, color=colors[model], marker="o", markersize=3,
                       linestyle="--" if comp is False or comp == "global" else "-", label=_label(model, comp))
        xs = sorted({tr(float(p["value"])) for p in points if not log or tr(float(p["value"])) > 0})
        if log:
            ax.set_xscale("log", base=log)
            ax.set_xticks(xs, [duration(x) if sweep in ("drift", "compensation") else plain(x) for x in xs])
            ax.minorticks_off()
        elif sweep == "adc_bits":
            ax.set_xticks(xs)
        accept = _accept(results, sweep)
        if accept is not None:
            ax.axvline(tr(accept), color="black", linewidth=0.8, alpha=0.7, label="acceptance condition")
        ax.set_title(title)
        ax.set_xlabel(xlabel + (f" (log{'' if log == 10 else log} scale)" if log else ""))
        ax.set_ylabel("test accuracy (%)")
        _percent_axis(ax)
        ax.legend(fontsize=7, loc="best")
    chips = _cfg(results, "chips")
    base, T = (results.get("base_device") or {}).get("name", "?"), plain(_cfg(results, "timesteps"))
    fig.suptitle(f"Accuracy under one non-ideality at a time (base device {base}, T={T}"
                 + (f", mean over {chips} chips; shaded: min-max)" if (chips or 1) > 1 else ")"))
    return _save(fig, out_dir, "robustness.png")


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return name


def _device_groups(results: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Mapping[str, Any]]]:
    """``{(device, periphery): {model: row}}`` in the order run."""
    out: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for r in results.get("devices") or []:
        out.setdefault((str(r.get("device")), str(r.get("periphery"))), {})[str(r.get("model"))] = r
    return out


def _joules(row: Mapping[str, Any] | None, key: str = "joules") -> float | None:
    return _num(((row or {}).get("energy") or {}).get("totals", {}).get(key))


def plot_devices(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """``devices.png``: accuracy per device (bars: model x periphery) and energy per sample (log)."""
    rows = results.get("devices") or []
    if not rows:
        return None
    plt = _pyplot()
    devices = list(dict.fromkeys(str(r.get("device")) for r in rows))
    peripheries = list(dict.fromkeys(str(r.get("periphery")) for r in rows))
    models = _models(rows)
    groups = _device_groups(results)
    series = [(m, p) for m in models for p in peripheries]
    model_colors = _mode_colors(models)
    colors = [(*model_colors[m][:3], 1.0 if p == peripheries[0] else 0.45) for m, p in series]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, value, ylabel, title in (
            (axes[0], lambda r: _num((r or {}).get("acc")), "test accuracy (%)", "Accuracy per device"),
            (axes[1], _joules, "energy per sample (J)", "Energy per test sample (device model)")):
        data = {f"{MODEL_LABELS.get(m, m)}, {p} periphery": [value(groups.get((d, p), {}).get(m))
                                                              for d in devices] for m, p in series}
        drawn = _grouped_bars(ax, devices, data, lambda k: colors[k])
        if ax is axes[0]:
            _percent_axis(ax)
        elif drawn:
            ax.set_yscale("log")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if drawn:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    fig.suptitle("Shipped device profiles, as shipped and with ideal periphery "
                 f"(T={plain(_cfg(results, 'timesteps'))})")
    return _save(fig, out_dir, "devices.png")


def write_csvs(results: Mapping[str, Any], out_dir: Path) -> None:
    """``robustness.csv`` (one row per sweep point) and ``devices.csv``; an empty table gets no file."""
    points = [{"sweep": p.get("sweep"), "value": p.get("value"), "compensation": p.get("compensation"),
               "model": p.get("model"), "acc": p.get("acc"), "chips": len(p.get("acc_per_chip") or [])}
              for p in results.get("points") or []]
    devices = [{"device": r.get("device"), "periphery": r.get("periphery"), "model": r.get("model"),
                "acc": r.get("acc"), "joules_per_sample": _joules(r), "crossbar_j": _joules(r, "crossbar_j"),
                "adc_j": _joules(r, "adc_j"), "acs": _joules(r, "acs")} for r in results.get("devices") or []]
    for name, rows in (("robustness.csv", points), ("devices.csv", devices)):
        _write(out_dir / name, rows)  # writes nothing for an empty table


def _provenance(results: Mapping[str, Any]) -> list[str]:
    wall = _num(results.get("wall_time_s"))
    versions = results.get("versions") or {}
    lines = ["## How this was produced", ""]
    if results.get("command"):
        lines.append(f"- Command: `{results['command']}`")
    return lines + [
        f"- Configuration: `{results.get('study', '?')}`",
        f"- Base device: `{(results.get('base_device') or {}).get('name', '?')}`",
        f"- Chips per point: {plain(_cfg(results, 'chips'))} (acceptance: "
        f"{plain((_cfg(results, 'acceptance') or {}).get('chips', _cfg(results, 'chips')))})",
        f"- Timesteps: T={plain(_cfg(results, 'timesteps'))}",
        "- Versions: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or DASH),
        "- Wall time: " + (DASH if wall is None else f"{wall:.1f} s ({wall / 60:.1f} min)"), ""]


def _acceptance(results: Mapping[str, Any]) -> list[str]:
    acc = results.get("acceptance")
    if not acc:
        return []
    t, hw = _threshold(results), _num(acc.get("hardware-aware"))
    verdict = DASH if hw is None else ("**yes**" if hw >= t else "**no**")
    rows = [[MODEL_LABELS.get(m, m), pct(acc.get(m)),
             ", ".join(pct(a) for a in next((r.get("acc_per_chip") or [] for r in acc.get("rows") or []
                                              if r.get("model") == m), []))] for m in MODELS if m in acc]
    return ["## Acceptance", "",
            f"Condition: {describe_device(acc.get('device'), acc.get('T'))}.", ""] + _table(
        ["Network", "Test accuracy (mean over chips)", "Per chip"], rows) + [
        "", f"Hardware-aware network at or above {100 * t:.1f}%: {verdict}.", ""]


def _training(results: Mapping[str, Any]) -> list[str]:
    models = results.get("models") or {}
    if not models:
        return []
    lines = ["## Networks", ""]
    conv = models.get("conversion")
    if conv:
        lines.append(f"- Conversion only: the ANN trained for {len(conv.get('history') or [])} epochs, float "
                     f"test accuracy {pct(conv.get('ann_test_acc'))}, converted on each chip.")
    hw = models.get("hardware-aware")
    if hw:
        h, hist = _cfg(results, "hardware_aware") or {}, hw.get("history") or []
        loss = _num(hist[-1].get("loss")) if hist else None
        lines.append(
            f"- Hardware-aware: finetuned for {plain(h.get('epochs', len(hist)))} epochs "
            f"(lr {plain(h.get('lr'))}, noise scale {plain(h.get('noise_scale'))}, "
            f"faults: {h.get('faults', '?')}) at "
            f"{describe_device(hw.get('device'))}, in {plain(round(_num(hw.get('train_s')) or 0, 1))} s; "
            f"final loss {DASH if loss is None else f'{loss:.4f}'}, ANN-on-chip test accuracy "
            f"{pct(hw.get('ann_on_chip_test_acc'))}.")
    return lines + [""]


def _sweep_sections(results: Mapping[str, Any]) -> list[str]:
    sweeps = _sweeps(results)
    if not sweeps:
        return []
    lines = ["## Sweeps", "", "![Accuracy under each non-ideality](robustness.png)", ""]
    for sweep, points in sweeps.items():
        title, xlabel, fmt, _ = _SWEEP_INFO.get(sweep, (sweep, sweep, plain, None))
        cols = _series(points)
        cell = {(str(p.get("model")), p.get("compensation"), round(float(p["value"]), 9)): p for p in points}
        accept = _accept(results, sweep)
        rows = []
        for v in sorted({round(float(p["value"]), 9) for p in points}):
            label = fmt(v)
            rows.append([f"**{label}**" if accept is not None and abs(v - accept) < 1e-9 else label]
                        + [pct((cell.get((m, c, v)) or {}).get("acc")) for m, c in cols])
        lines += [f"### {title}", ""] + _table([xlabel, *(_label(m, c) for m, c in cols)], rows) + [""]
        lines += [_accuracy_caption(results, points)
                  + (" Bold: the acceptance condition's value." if accept is not None else ""), ""]
    return lines


def _test_images(results: Mapping[str, Any], limit: Any = None) -> str:
    """Which test images a figure uses, from ``data.test_limit`` and a further ``limit``."""
    limits = [int(x) for x in (_cfg(results, "data", "test_limit"), limit) if _num(x) is not None]
    return f"the first {min(limits):,} MNIST test images" if limits else "all 10,000 MNIST test images"


def _accuracy_caption(results: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> str:
    """What a sweep table's cells are: test accuracy on which images, averaged over which chips."""
    chips = sorted({len(p.get("acc_per_chip") or []) for p in points} - {0})
    n = ", ".join(map(str, chips)) if chips else plain(_cfg(results, "chips"))
    return (f"Test accuracy on {_test_images(results)} at T={plain(_cfg(results, 'timesteps'))}, Poisson max "
            f"rate {plain(_cfg(results, 'max_rate'))}, mean over {n} chip(s) (chip k is seed k).")


def _device_section(results: Mapping[str, Any]) -> list[str]:
    groups = _device_groups(results)
    if not groups:
        return []
    models = _models(results.get("devices") or [])
    rows = []
    for (dev, periphery), by_model in groups.items():
        row = [f"`{dev}`", periphery] + [pct((by_model.get(m) or {}).get("acc")) for m in models]
        for m in models:
            j, adc = _joules(by_model.get(m)), _joules(by_model.get(m), "adc_j")
            row.append(energy(j) + (f" (ADC {100 * adc / j:.0f}%)" if j and adc is not None else ""))
        rows.append(row)
    labels = [MODEL_LABELS.get(m, m) for m in models]
    samples = sorted({plain((r.get("energy") or {}).get("samples")) for r in results.get("devices") or []})
    return ["## Device comparison", ""] + _table(
        ["Device", "Periphery", *(f"Accuracy, {x}" for x in labels),
         *(f"Energy/sample, {x}" for x in labels)], rows) + [
        "", _accuracy_caption(results, results.get("devices") or []) + " Energy per test sample "
        f"from the device model, chip 0 only, averaged over the first {', '.join(samples)} test images: "
        "crossbar reads, ADC, neuron updates and spikes and digital work as the profile prices them; "
        "in brackets the ADC's share. "
        "\"ideal\" periphery: the profile without ADC, DAC, tiling or wire resistance.", "",
        "![Accuracy and energy per device](devices.png)", ""]


def _how_to_read(results: Mapping[str, Any]) -> list[str]:
    s, acc = _cfg(results, "sweeps") or {}, _cfg(results, "acceptance") or {}
    h = _cfg(results, "hardware_aware") or {}
    faults = {"chip": "with the chip's own defect map", "random": "with a fresh random defect map every step"}
    train_dev = ((results.get("models") or {}).get("hardware-aware") or {}).get("device")
    cond = describe_device(train_dev) if train_dev else "the training condition"
    return ["## How to read this", "",
            f"Each sweep varies one non-ideality of the base device "
            f"(`{(results.get('base_device') or {}).get('name', '?')}`) with everything else ideal; "
            f"the drift sweep uses drift exponent nu={plain(s.get('drift_nu'))}"
            + (f" (device-to-device sigma {plain(s['drift_nu_sigma'])})" if s.get("drift_nu_sigma") else "")
            + ", the ADC sweep "
            f"{plain(s.get('adc_tile'))}x{plain(s.get('adc_tile'))} tiles and the tile sweep a "
            f"{plain(acc.get('adc_bits'))}-bit ADC. A chip is a seed: its defect map (nested across stuck "
            "fractions, so a larger fraction adds faults to a smaller one's), its programming noise and its "
            f"read noise; each accuracy is the mean over {plain(_cfg(results, 'chips'))} chip(s). Drift "
            "\"compensated\" applies a global drift compensation. The hardware-aware network was finetuned "
            f"{'once per chip' if h.get('faults') == 'chip' else 'once'}, at {cond}, "
            f"{faults.get(h.get('faults'), '')} (faults: {h.get('faults', '?')}), and is "
            "evaluated unchanged at every point.", ""]


def write_all(results: dict, out_dir: str | Path) -> Path:
    """Write the CSVs, ``robustness.png``, ``devices.png`` and ``report.md`` into ``out_dir``
    (created if missing) and return the path of ``report.md``. Parts without data are left out."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csvs(results, out)
    plots = {"robustness.png": plot_sweeps(results, out), "devices.png": plot_devices(results, out)}
    lines = ["# Robustness of the converted MNIST MLP", ""]
    lines += _provenance(results) + _acceptance(results) + _training(results)
    lines += [ln for ln in _sweep_sections(results) + _device_section(results)
              if not ln.startswith("![") or any(plots.get(k) and f"({k})" in ln for k in plots)]
    path = out / "report.md"
    path.write_text("\n".join(lines + _how_to_read(results)).rstrip() + "\n", encoding="utf-8")
    return path


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """A few lines for the terminal: the acceptance figures and each sweep's worst point per model."""
    lines = []
    acc = results.get("acceptance")
    if acc:
        hw, t = _num(acc.get("hardware-aware")), _threshold(results)
        lines.append(f"acceptance ({describe_device(acc.get('device'), acc.get('T'))}): "
                     + ", ".join(f"{MODEL_LABELS.get(m, m)} {pct(acc.get(m))}" for m in MODELS if m in acc)
                     + ("" if hw is None else f" ({'meets' if hw >= t else 'misses'} {100 * t:.1f}%)"))
    else:
        lines.append("acceptance not run")
    for sweep, points in _sweeps(results).items():
        title, _, fmt, _ = _SWEEP_INFO.get(sweep, (sweep, sweep, plain, None))
        parts = []
        for m in _models(points):
            worst = min((p for p in points if p.get("model") == m), key=lambda p: _num(p.get("acc")) or 0.0)
            parts.append(f"{_label(m, worst.get('compensation'))} {pct(worst.get('acc'))} at "
                         f"{fmt(float(worst['value']))}")
        lines.append(f"{title}, worst: " + "; ".join(parts))
    return lines
