"""Figures of `xbar reproduce`, drawn from its results dict alone.

Every function here reads the results dict written by ``experiments/study.py`` (the schema is
in ``notes/results_schema.md``: accuracies are fractions in [0, 1], energies joules per sample,
counts per sample) and draws with matplotlib's Agg backend, so no display is needed. A figure
whose data is empty (a quick run without constrained finetuning, say) is skipped, not drawn
empty, and left out of the dict that :func:`make_plots` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DPI = 120
PLOT_FILES: dict[str, str] = {
    "accuracy_vs_timesteps": "accuracy_vs_timesteps.png",
    "accuracy_vs_rate": "accuracy_vs_rate.png",
    "acs_vs_rate": "acs_vs_rate.png",
    "constrained_finetuning": "constrained_finetuning.png",
    "energy_per_layer": "energy_per_layer.png",
    "ann_training": "ann_training.png",
}
_MAPPING_STYLES = ("-", "-.", ":", (0, (5, 1, 1, 1)))


@dataclass(frozen=True)
class Point:
    """One x value of a sweep, aggregated over the seeds that ran it.

    Attributes:
        x: the swept value (timesteps, firing rate, epoch).
        mean: mean of y over seeds.
        lo: smallest y over seeds.
        hi: largest y over seeds.
        std: population standard deviation of y over seeds (0 for one seed).
        n: number of seeds with a value at this x.
    """

    x: float
    mean: float
    lo: float
    hi: float
    std: float
    n: int


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def aggregate_rows(rows: Iterable[Mapping[str, Any]], x_key: str, y_key: str) -> list[Point]:
    """Group sweep rows by ``x_key`` and summarise ``y_key`` over seeds.

    Args:
        rows: sweep rows such as ``modes[m]["timesteps"]``, one per (seed, x).
        x_key: the swept field, e.g. ``"T"`` or ``"rate"``.
        y_key: the measured field, e.g. ``"test_acc"``.

    Returns:
        One :class:`Point` per distinct x, ascending; rows missing either field are ignored.
    """
    groups: dict[float, list[float]] = {}
    for row in rows:
        x, y = _number(row.get(x_key)), _number(row.get(y_key))
        if x is None or y is None:
            continue
        groups.setdefault(round(x, 9), []).append(y)
    points = []
    for x in sorted(groups):
        ys = groups[x]
        mean = sum(ys) / len(ys)
        std = math.sqrt(sum((y - mean) ** 2 for y in ys) / len(ys))
        points.append(Point(x, mean, min(ys), max(ys), std, len(ys)))
    return points


def point_at(points: Sequence[Point], x: Any) -> Point | None:
    """The point of ``points`` at ``x`` (within 1e-9), or None when ``x`` is missing or absent."""
    target = _number(x)
    if target is None:
        return None
    return next((p for p in points if abs(p.x - target) <= 1e-9), None)


def _pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend selected first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mode_colors(modes: Sequence[str]) -> dict[str, Any]:
    """One stable tab10 colour per mode, in the results' mode order."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {mode: cmap(i % 10) for i, mode in enumerate(modes)}


def _modes(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The results' modes mapping, empty when absent."""
    modes = results.get("modes") or {}
    return dict(modes) if isinstance(modes, Mapping) else {}


def _curve(ax: Any, points: Sequence[Point], band: bool, **style: Any) -> None:
    """Draw the mean of ``points`` and, when several seeds ran, their min-max band."""
    xs = [p.x for p in points]
    ax.plot(xs, [p.mean for p in points], **style)
    if band and any(p.n > 1 for p in points):
        ax.fill_between(xs, [p.lo for p in points], [p.hi for p in points],
                        color=style.get("color"), alpha=0.15, linewidth=0)


def _percent_axis(ax: Any) -> None:
    """Label a y axis that holds accuracies (fractions) as percent."""
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    ax.grid(True, alpha=0.3)


def _integer_x(ax: Any) -> None:
    """Put ticks only on whole numbers of the x axis (epochs)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lo, hi = ax.get_xlim()
    if hi - lo < 1.0:  # one epoch only: one tick on it, and room either side
        mid = round((lo + hi) / 2)
        ax.set_xlim(mid - 0.5, mid + 0.5)
        ax.set_xticks([mid])


def _save(fig: Any, out_dir: Path, key: str) -> str:
    """Write ``fig`` as the PNG of plot ``key``, close it, and return the file name."""
    plt = _pyplot()
    name = PLOT_FILES[key]
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name


def plot_accuracy_vs_timesteps(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """Validation and test accuracy against timesteps T, one line per mode, best T marked.

    Args:
        results: the results dict of ``xbar reproduce``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when no mode has timestep rows.
    """
    modes = {m: d for m, d in _modes(results).items() if d.get("timesteps")}
    if not modes:
        return None
    plt = _pyplot()
    from matplotlib.ticker import ScalarFormatter

    colors = _mode_colors(list(_modes(results)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, split in zip(axes, ("val", "test")):
        for mode, data in modes.items():
            points = aggregate_rows(data["timesteps"], "T", f"{split}_acc")
            if not points:
                continue
            _curve(ax, points, band=True, color=colors[mode], marker="o", markersize=3, label=mode)
            best = point_at(points, data.get("best_T"))
            if best is not None:
                ax.plot([best.x], [best.mean], marker="*", markersize=14, color=colors[mode],
                        markeredgecolor="black", linestyle="none")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("timesteps T (log2 scale)")
        ax.set_title(f"{'Validation' if split == 'val' else 'Test'} accuracy")
        _percent_axis(ax)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].plot([], [], marker="*", markersize=12, color="grey", markeredgecolor="black",
                 linestyle="none", label="best T (chosen on validation)")
    axes[0].legend(fontsize=8, loc="best")
    seeds = len({r.get("seed") for d in modes.values() for r in d["timesteps"]})
    band = f"mean over {seeds} seeds; shaded: min-max" if seeds > 1 else "one seed"
    fig.suptitle(f"SNN accuracy vs timesteps ({band}; max firing rate "
                 f"{(results.get('config') or {}).get('encoder', {}).get('max_rate', 1.0)})")
    return _save(fig, out_dir, "accuracy_vs_timesteps")


def plot_accuracy_vs_rate(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """Test accuracy against the encoder's max firing rate, each mode at its best T.

    Args:
        results: the results dict of ``xbar reproduce``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when no mode has rate rows.
    """
    modes = {m: d for m, d in _modes(results).items() if d.get("rates")}
    if not modes:
        return None
    plt = _pyplot()
    colors = _mode_colors(list(_modes(results)))
    fig, ax = plt.subplots(figsize=(8, 5))
    for mode, data in modes.items():
        points = aggregate_rows(data["rates"], "rate", "test_acc")
        if not points:
            continue
        _curve(ax, points, band=True, color=colors[mode], marker="o", markersize=3,
               label=f"{mode} (at best T={data.get('best_T', '?')})")
        best = point_at(points, data.get("best_rate"))
        if best is not None:
            ax.plot([best.x], [best.mean], marker="D", markersize=7, color=colors[mode],
                    markeredgecolor="black", linestyle="none")
    ax.plot([], [], marker="D", color="grey", markeredgecolor="black", linestyle="none",
            label="best rate (chosen on validation)")
    ax.set_xlabel("max firing rate (spike probability per step at pixel 1)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy vs max firing rate, each mode at its best T")
    _percent_axis(ax)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out_dir, "accuracy_vs_rate")


def _set_log_if_positive(ax: Any, values: Iterable[float]) -> None:
    """Use a log y axis when every plotted value is positive."""
    values = list(values)
    if values and min(values) > 0:
        ax.set_yscale("log")


def plot_acs_vs_rate(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """Accumulate operations and input spikes per sample against max firing rate.

    Args:
        results: the results dict of ``xbar reproduce``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when no mode has rate rows.
    """
    modes = {m: d for m, d in _modes(results).items() if d.get("rates")}
    if not modes:
        return None
    plt = _pyplot()
    colors = _mode_colors(list(_modes(results)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = (("acs", "ACs per sample", "Synaptic accumulate operations (ACs)"),
              ("input_spikes", "input spikes per sample", "Input spikes from the Poisson encoder"))
    for ax, (key, ylabel, title) in zip(axes, panels):
        drawn: list[float] = []
        for mode, data in modes.items():
            points = aggregate_rows(data["rates"], "rate", key)
            if not points:
                continue
            _curve(ax, points, band=True, color=colors[mode], marker="o", markersize=3,
                   label=f"{mode} (T={data.get('best_T', '?')})")
            drawn += [p.lo for p in points]
        _set_log_if_positive(ax, drawn)
        ax.set_xlabel("max firing rate (spike probability per step at pixel 1)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    fig.suptitle("Work and input activity vs max firing rate, each mode at its best T")
    return _save(fig, out_dir, "acs_vs_rate")


def _history_points(history: Iterable[Mapping[str, Any]], key: str) -> list[Point]:
    """A training history (list of per-epoch dicts) as points of ``key`` against epoch."""
    return aggregate_rows(history, "epoch", key)


def plot_constrained_finetuning(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """Test accuracy per finetuning epoch of every constrained run, one panel per procedure,
    beside the unconstrained reference (the same finetuning without constraints), all on the
    same per-epoch test subset.

    Args:
        results: the results dict of ``xbar reproduce``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when there are no constrained runs.
    """
    all_runs = [r for r in (results.get("constrain") or {}).get("runs") or [] if r.get("history")]
    runs = [r for r in all_runs if r.get("procedure") != "unconstrained"]
    refs = [r for r in all_runs if r.get("procedure") == "unconstrained"]
    if not runs:
        return None
    plt = _pyplot()
    procedures = list(dict.fromkeys(str(r.get("procedure", "?")) for r in runs))
    mappings = list(dict.fromkeys(str(r.get("mapping", "?")) for r in runs))
    colors = _mode_colors(list(dict.fromkeys([*_modes(results), *(str(r.get("mode")) for r in all_runs)])))
    fig, axes = plt.subplots(1, len(procedures), figsize=(6.5 * len(procedures), 6),
                             sharey=True, squeeze=False)
    ann_ref = ((results.get("constrain") or {}).get("reference") or {}).get("history") or []
    c = (results.get("config") or {}).get("constrain") or {}
    subset = f"first {c['test_limit']} test images" if c.get("test_limit") else "test images"
    device = (results.get("constrain") or {}).get("device", "")
    for ax, procedure in zip(axes[0], procedures):
        modes_here = []
        for run in (r for r in runs if str(r.get("procedure", "?")) == procedure):
            points = _history_points(run["history"], "test_acc")
            if not points:
                continue
            mapping = str(run.get("mapping", "?"))
            modes_here.append(str(run.get("mode")))
            label = f"{run.get('mode')} + {mapping} (T={run.get('T', '?')})"
            if "seed" in run:
                label += f" seed {run['seed']}"
            _curve(ax, points, band=False, color=colors[str(run.get("mode"))], marker="o",
                   markersize=3, linestyle=_MAPPING_STYLES[mappings.index(mapping) % 4],
                   label=label)
        for run in (r for r in refs if str(r.get("mode")) in modes_here):
            points = _history_points(run["history"], "test_acc")
            if points:
                _curve(ax, points, band=False, color=colors[str(run.get("mode"))], linestyle=":",
                       linewidth=1.2, label=f"{run.get('mode')}, unconstrained reference")
        ann_points = _history_points(ann_ref, "test_acc")
        if ann_points:
            _curve(ax, ann_points, band=False, color="black", linestyle="--", linewidth=1,
                   label="ANN, unconstrained reference (not converted)")
        ax.set_xlabel("finetuning epoch (0 = constraints applied, no finetuning yet)")
        _integer_x(ax)
        ax.set_title(f"procedure: {procedure}")
        _percent_axis(ax)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    axes[0][0].set_ylabel(f"test accuracy (%), {subset}, seed 0")
    fig.suptitle(f"Finetuning under hardware constraints (device {device}) against the same "
                 "finetuning without constraints")
    return _save(fig, out_dir, "constrained_finetuning")


def _grouped_bars(ax: Any, groups: Sequence[str], series: Mapping[str, Sequence[float | None]],
                  colors: Callable[[int], Any]) -> list[float]:
    """Grouped bars: one group per x label, one bar per series; returns the heights drawn."""
    width = 0.8 / max(len(series), 1)
    drawn: list[float] = []
    for k, (name, heights) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        pairs = [(x, h) for x, h in zip(xs, heights) if h is not None and h > 0]
        if pairs:
            ax.bar([x for x, _ in pairs], [h for _, h in pairs], width=width, label=name,
                   color=colors(k))
            drawn += [h for _, h in pairs]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right")
    return drawn


def plot_energy_per_layer(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """Crossbar energy per synaptic layer per mode, and analog vs digital totals per mode.

    Args:
        results: the results dict of ``xbar reproduce``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when no mode has an energy report.
    """
    modes = {m: d["energy"] for m, d in _modes(results).items() if (d.get("energy") or {}).get("layers")}
    if not modes:
        return None
    plt = _pyplot()
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    names = list(dict.fromkeys(str(layer.get("name")) for e in modes.values() for layer in e["layers"]))
    per_layer = {
        f"layer {name}": [next((_number(layer.get("crossbar_j")) for layer in e["layers"]
                                if str(layer.get("name")) == name), None) for e in modes.values()]
        for name in names
    }
    zero = [name for key, name in (("adc_j", "ADC"), ("neuron_j", "neuron"), ("digital_j", "digital"))
            if all(not _number((e.get("totals") or {}).get(key)) for e in modes.values())]
    model_label = "analog, device model" + (f" ({', '.join(zero)} terms 0)" if zero else "")
    totals = {model_label: [_number((e.get("totals") or {}).get("joules")) for e in modes.values()]}
    if any((e.get("with_periphery") or {}).get("joules") is not None for e in modes.values()):
        totals["analog, cited ADC + digital IF periphery"] = [
            _number((e.get("with_periphery") or {}).get("joules")) for e in modes.values()]
    totals["digital SNN (ACs x AC energy)"] = [_number((e.get("totals") or {}).get("digital_snn_j")) for e in modes.values()]
    totals["digital ANN (MACs x MAC energy)"] = [_number((e.get("totals") or {}).get("digital_ann_j")) for e in modes.values()]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    panels = ((axes[0], per_layer, "Crossbar read energy per synaptic layer", lambda k: cmap(k)),
              (axes[1], totals, "Total energy: analog crossbars vs digital", lambda k: cmap(k + 3)))
    for ax, series, title, colors in panels:
        drawn = _grouped_bars(ax, list(modes), series, colors)
        _set_log_if_positive(ax, drawn)
        ax.set_ylabel("energy per sample (J)")
        ax.set_title(title)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        if drawn:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3)
    device = next((str(e.get("device")) for e in modes.values() if e.get("device")), "?")
    images = sorted({int(e.get("samples") or 0) for e in modes.values()})
    fig.suptitle(f"Energy per test sample at each mode's best T (device {device}; seed 0 networks, "
                 f"{', '.join(map(str, images))} test images)")
    return _save(fig, out_dir, "energy_per_layer")


def _recorded_split(runs: Iterable[Mapping[str, Any]]) -> str:
    """``"test"`` when the training histories record a per-epoch test accuracy, else ``"val"``
    (the BPTT modes of ``xbar reproduce`` record only the validation accuracy)."""
    return "test" if any("test_acc" in h for run in runs for h in run.get("history") or []) else "val"


def plot_ann_training(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """ANN validation and test accuracy per epoch, per seed, and, when modes were trained with
    surrogate gradients, their accuracy per epoch (test if recorded, else validation).

    Args:
        results: the results dict of ``xbar reproduce``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when there is no ANN training history.
    """
    per_seed = [s for s in (results.get("ann") or {}).get("per_seed") or [] if s.get("history")]
    if not per_seed:
        return None
    plt = _pyplot()
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    trained = {m: d["training"] for m, d in _modes(results).items() if d.get("training")}
    fig, axes = plt.subplots(1, 2 if trained else 1, figsize=(12 if trained else 7, 4.8),
                             squeeze=False)
    ax = axes[0][0]
    for i, run in enumerate(per_seed):
        for split, style in (("val", "--"), ("test", "-")):
            points = _history_points(run["history"], f"{split}_acc")
            if points:
                _curve(ax, points, band=False, color=cmap(i % 10), linestyle=style, marker="o",
                       markersize=3, label=f"seed {run.get('seed', i)} {split}")
    ax.set_xlabel("epoch")
    _integer_x(ax)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("ANN (784-100-10) training: validation (dashed) and test (solid)")
    _percent_axis(ax)
    ax.legend(fontsize=8, loc="lower right")
    if trained:
        ax = axes[0][1]
        colors = _mode_colors(list(_modes(results)))
        split = _recorded_split(run for runs in trained.values() for run in runs)
        for mode, runs in trained.items():
            for k, run in enumerate(runs):
                points = _history_points(run.get("history") or [], f"{split}_acc")
                if points:
                    _curve(ax, points, band=False, color=colors[mode], marker="o", markersize=3,
                           alpha=1.0 if k == 0 else 0.5,
                           label=f"{mode} seed {run.get('seed', k)}")
        word = "validation" if split == "val" else "test"
        ax.set_xlabel("epoch")
        _integer_x(ax)
        ax.set_ylabel(f"{word} accuracy (%)")
        ax.set_title(f"Surrogate-gradient SNN training ({word} accuracy per epoch)")
        _percent_axis(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    return _save(fig, out_dir, "ann_training")


LOWT_PLOT = "lowt.png"


def plot_lowt(results: Mapping[str, Any], out_dir: Path) -> str | None:
    """The low-T study (``results["lowt"]``): test accuracy and joules per sample against T, one
    line per network (conversion, hybrids, QCFS), mean over seeds with the min-max band, as
    ``lowt.png`` (drawn by the study's outputs beside :func:`make_plots`, key ``"lowt"``).

    Args:
        results: the results dict of ``xbar reproduce`` or ``python -m experiments.lowlatency``.
        out_dir: folder to write the PNG into.

    Returns:
        The file name written, or None when the low-T study has no rows.
    """
    low = results.get("lowt") or {}
    rows = [r for r in low.get("per_seed") or [] if r.get("network") is not None]
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    names = list(dict.fromkeys(str(r["network"]) for r in rows))
    colors = _mode_colors(names)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key in zip(axes, ("test_acc", "joules")):
        for name in names:
            points = aggregate_rows([r for r in rows if str(r["network"]) == name], "T", key)
            if points:
                _curve(ax, points, band=True, color=colors[name], marker="o", markersize=3, label=name)
        ax.set_xscale("log", base=2)
        ts = sorted({int(r["T"]) for r in rows})
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("timesteps T (log2 scale)")
        ax.grid(True, alpha=0.3)
    _percent_axis(axes[0])
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("Accuracy")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("joules per sample")
    axes[1].set_title("Energy (energy meter, device profile)")
    axes[0].legend(fontsize=8, loc="lower right")
    s = low.get("settings") or {}
    seeds = sorted({r.get("seed") for r in rows})
    band = f"mean over seeds {', '.join(map(str, seeds))}; shaded: min-max" if len(seeds) > 1 else f"seed {seeds[0]}"
    images = f"{int(s['test_images']):,}" if isinstance(s.get("test_images"), int) else "?"
    fig.suptitle(f"Few timesteps on {s.get('device', '?')} crossbars ({band}; {images} test "
                 f"images, Poisson max rate {s.get('max_rate', '?')})")
    fig.tight_layout()
    fig.savefig(Path(out_dir) / LOWT_PLOT, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return LOWT_PLOT


_PLOTTERS: dict[str, Callable[[Mapping[str, Any], Path], str | None]] = {
    "accuracy_vs_timesteps": plot_accuracy_vs_timesteps,
    "accuracy_vs_rate": plot_accuracy_vs_rate,
    "acs_vs_rate": plot_acs_vs_rate,
    "constrained_finetuning": plot_constrained_finetuning,
    "energy_per_layer": plot_energy_per_layer,
    "ann_training": plot_ann_training,
}


def make_plots(results: dict, out_dir: Path) -> dict[str, str]:
    """Draw every figure of the study whose data is present.

    Args:
        results: the results dict of ``xbar reproduce`` (schema in ``notes/results_schema.md``).
        out_dir: folder to write the PNGs into; created if missing.

    Returns:
        ``{plot_key: file_name}`` for the figures written (file names relative to ``out_dir``);
        figures without data are left out.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for key, plotter in _PLOTTERS.items():
        name = plotter(results, out_dir)
        if name is not None:
            written[key] = name
    return written
