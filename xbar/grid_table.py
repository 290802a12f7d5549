"""A sweep grid's outputs: one long-format table and a plot per axis pair.

The table has one row per point: every point key (axes first, then the fixed keys) and every
measured value (``accuracy``, ``energy_j``, ``energy.LAYER_j``, ``input_spikes``, ``spikes``).
It is written as ``grid.csv`` (floats as Python's shortest round-trip ``repr``, so they read
back bit for bit) and, when pandas with a Parquet engine (pyarrow) is importable, also as
``grid.parquet``; neither is a dependency of xbar.

A plot ``[x, series]`` draws each headline measure against axis ``x``, one line per value of
axis ``series``, as the mean over the other axes (their number of points is in the legend):
``plot_X_by_SERIES.png``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

HEADLINES = ("accuracy", "energy_j", "spikes")


def columns(rows: list[dict], first: list[str]) -> list[str]:
    """``first`` (those present), then every other key in first-seen order."""
    seen = [k for k in first if any(k in r for r in rows)]
    for r in rows:
        seen += [k for k in r if k not in seen]
    return seen


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_table(rows: list[dict], first: list[str], stem: Path) -> list[Path]:
    """Write ``STEM.csv`` (and ``STEM.parquet`` when possible); returns the paths written."""
    cols = columns(rows, first)
    csv_path = stem.with_suffix(".csv")
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in cols])
    tmp.replace(csv_path)
    paths = [csv_path]
    try:
        import pandas as pd

        pq = stem.with_suffix(".parquet")
        frame = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
        frame.to_parquet(pq, index=False)
        paths.append(pq)
    except (ImportError, ValueError):  # no pandas, or no Parquet engine
        pass
    return paths


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def series_means(rows: list[dict], x: str, series: str, metric: str) -> dict[Any, list[tuple[Any, float, int]]]:
    """``{series value: [(x value, mean of metric, points averaged), ...]}``, x ascending."""
    groups: dict[Any, dict[Any, list[float]]] = {}
    for r in rows:
        if metric in r and r[metric] is not None:
            groups.setdefault(r[series], {}).setdefault(r[x], []).append(float(r[metric]))
    return {s: [(xv, sum(v) / len(v), len(v)) for xv, v in sorted(g.items(), key=lambda kv: _sort_key(kv[0]))]
            for s, g in sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))}


def write_plots(rows: list[dict], pairs: list[list[str]], out: Path) -> list[Path]:
    """One PNG per ``[x, series]`` pair (a panel per headline measure present); returns the paths."""
    if not rows or not pairs:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in HEADLINES if any(m in r for r in rows)]
    paths = []
    for x, series in pairs:
        fig, axs = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
        for ax, metric in zip(axs[0], metrics):
            for s, pts in series_means(rows, x, series, metric).items():
                xs = list(range(len(pts))) if any(isinstance(p[0], str) for p in pts) else [p[0] for p in pts]
                ax.plot(xs, [p[1] for p in pts], marker="o", label=f"{series}={s} (n={pts[0][2]})")
                if xs and isinstance(pts[0][0], str):
                    ax.set_xticks(xs, [p[0] for p in pts])
            ax.set_xlabel(x)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        axs[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"plot_{_slug(x)}_by_{_slug(series)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
