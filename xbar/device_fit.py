"""Measured device data to a device profile: ``xbar devices fit MEASUREMENTS.csv``.

The CSV (documented in ``docs/devices.md``, "Measurements to a profile") has one row per device
read, with a header naming its columns:

* ``level`` (integer state index) or ``target_us`` (target conductance, µS): which state the
  device was programmed to; one of the two is required;
* ``measured_us`` (required): the conductance read, µS;
* ``time_s`` (optional): seconds since programming; an empty cell, or a time at or before
  ``t0``, is a reference read (the programmed conductance);
* ``device`` (optional): an identifier of the physical device, so that its reads at several
  times give its own drift exponent.

The fit (:func:`fit_profile`): the state table is the mean of each state's reference reads,
the per-state programming sigma their standard deviation; with later reads, ``nu`` per state is
fitted from ``ln G(t) = ln G0 - nu ln(t / t0)`` (per device when ``device`` is given: then the
mean and spread of the devices' exponents; else from the state's mean log conductance at each
time, spread unknown). Residuals are reported per state.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .device import DeviceProfile


class MeasurementError(ValueError):
    """A measurement file is malformed: names the file, the row (1 = first data row) and the column."""


@dataclass
class StateFit:
    """One state's fitted statistics."""

    key: float                      # the level index or the target conductance (µS)
    n: int                          # reference reads
    mean_us: float                  # mean of the reference reads (the state)
    sigma_us: float                 # their standard deviation (programming sigma)
    nu: float | None = None         # drift exponent (None without later reads)
    nu_sigma: float | None = None   # its device-to-device spread (None when not measurable)
    devices: int = 0                # devices with a fitted exponent
    residual: float | None = None   # RMS of ln G(t) - fitted ln G(t) over the later reads


@dataclass
class Fit:
    """What :func:`fit_profile` found: the profile and the per-state statistics."""

    profile: DeviceProfile
    states: list[StateFit] = field(default_factory=list)
    by: str = "level"

    def report(self) -> str:
        """The per-state fit as a text table (µS, exponents)."""
        head = f"{self.by:>10} {'n':>6} {'mean_us':>10} {'sigma_us':>9} {'nu':>8} {'nu_sigma':>9} {'resid_ln':>9}"
        lines = [head]

        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)
        for s in self.states:
            key = f"{int(s.key)}" if self.by == "level" else f"{s.key:g}"
            lines.append(f"{key:>10} {s.n:>6} {s.mean_us:>10.5g} {s.sigma_us:>9.4g} {num(s.nu, '8.4f'):>8} "
                         f"{num(s.nu_sigma, '9.4f'):>9} {num(s.residual, '9.4f'):>9}")
        return "\n".join(lines)


def _cell(row: dict[str, str], name: str) -> str:
    return (row.get(name) or "").strip()


def read_measurements(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a measurement CSV: one dict per row with ``key`` (level or target µS), ``g`` (µS),
    ``t`` (seconds or None) and ``device`` (str or None).

    Raises:
        MeasurementError: a missing file or column, or a cell that is not a number, naming it.
    """
    label = os.fspath(path)
    try:
        with open(label, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            raw = list(reader)
    except FileNotFoundError:
        raise MeasurementError(f"{label}: no such file") from None
    by = "level" if "level" in columns else "target_us" if "target_us" in columns else None
    if by is None or "measured_us" not in columns:
        raise MeasurementError(f"{label}: needs the columns measured_us and level or target_us, got "
                               f"{', '.join(columns) or 'none'}")
    rows = []
    for i, row in enumerate(raw, 1):
        def number(name: str, optional: bool = False) -> float | None:
            text = _cell(row, name)
            if optional and text == "":
                return None
            try:
                value = float(text)
            except ValueError:
                raise MeasurementError(f"{label}: row {i}: {name}: not a number: {text!r}") from None
            if not math.isfinite(value):
                raise MeasurementError(f"{label}: row {i}: {name}: must be finite, got {text!r}")
            return value
        key = number(by)
        if by == "level" and key != int(key):
            raise MeasurementError(f"{label}: row {i}: level: must be an integer, got {_cell(row, 'level')!r}")
        g = number("measured_us")
        t = number("time_s", optional=True) if "time_s" in columns else None
        if t is not None and t < 0:
            raise MeasurementError(f"{label}: row {i}: time_s: must be >= 0, got {t!r}")
        rows.append({"key": key, "g": g, "t": t, "device": _cell(row, "device") or None, "by": by})
    if not rows:
        raise MeasurementError(f"{label}: no measurements")
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def _slope_through_origin(xs: list[float], ys: list[float]) -> float:
    return sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)


def _fit_nu(state: StateFit, ref: list[dict[str, Any]], later: list[dict[str, Any]], t0: float) -> None:
    """Drift exponent of one state from its later reads (see the module doc)."""
    if not later:
        return
    floor = 1e-12
    by_dev = {r["device"]: math.log(max(r["g"], floor)) for r in ref if r["device"] is not None}
    tracked = [r for r in later if r["device"] in by_dev]
    if tracked:
        per: dict[str, list[tuple[float, float]]] = {}
        for r in tracked:
            per.setdefault(r["device"], []).append((math.log(r["t"] / t0), math.log(max(r["g"], floor)) - by_dev[r["device"]]))
        nus = {d: -_slope_through_origin([x for x, _ in pts], [y for _, y in pts]) for d, pts in per.items()}
        state.nu, spread = _mean_std(list(nus.values()))
        state.nu_sigma, state.devices = (spread if len(nus) > 1 else None), len(nus)
        res = [y + nus[d] * x for d, pts in per.items() for x, y in pts]
    else:
        ln0 = sum(math.log(max(r["g"], floor)) for r in ref) / len(ref)
        times: dict[float, list[float]] = {}
        for r in later:
            times.setdefault(r["t"], []).append(math.log(max(r["g"], floor)))
        xs = [math.log(t / t0) for t in times]
        ys = [sum(v) / len(v) - ln0 for v in times.values()]
        state.nu = -_slope_through_origin(xs, ys)
        res = [y + state.nu * x for x, y in zip(xs, ys)]
    state.residual = math.sqrt(sum(r * r for r in res) / len(res))


def fit_profile(rows: list[dict[str, Any]], name: str, t0: float = 20.0, read_voltage: float = 0.2,
                read_time: float = 10e-9, source: str = "") -> Fit:
    """Fit a profile to measurements (from :func:`read_measurements`).

    Args:
        rows: the measurements.
        name: the profile's name.
        t0: reference time, seconds: reads at or before it (or without a time) are reference reads.
        read_voltage, read_time: the read conditions written into the profile (not measured).
        source: the profile's ``source`` line.

    Returns:
        :class:`Fit`: a validated :class:`DeviceProfile` with the state table, per-state
        programming sigma and (with later reads) per-state ``nu`` and its spread.

    Raises:
        MeasurementError: fewer than 2 states, a state without two reference reads, or state
            means that are not strictly ascending in the order of the levels / targets.
    """
    by = rows[0]["by"]
    groups: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["key"], []).append(r)
    if len(groups) < 2:
        raise MeasurementError(f"needs at least 2 states, got {len(groups)}")
    states = []
    for key in sorted(groups):
        ref = [r for r in groups[key] if r["t"] is None or r["t"] <= t0]
        later = [r for r in groups[key] if r["t"] is not None and r["t"] > t0]
        if len(ref) < 2:
            raise MeasurementError(f"{by} {key:g}: needs at least 2 reference reads (no time_s, or time_s <= "
                                   f"t0 = {t0:g} s), got {len(ref)}")
        mean, sigma = _mean_std([r["g"] for r in ref])
        state = StateFit(key, len(ref), mean, sigma)
        _fit_nu(state, ref, later, t0)
        states.append(state)
    for a, b in zip(states, states[1:]):
        if not b.mean_us > a.mean_us:
            raise MeasurementError(f"{by} {b.key:g}: mean {b.mean_us:g} uS is not above {by} {a.key:g}'s "
                                   f"{a.mean_us:g} uS: the state table must be strictly ascending")
    kw: dict[str, Any] = {}
    if all(s.nu is not None for s in states):
        kw["drift_nu_states"] = tuple(max(s.nu, 0.0) for s in states)
        if all(s.nu_sigma is not None for s in states):
            kw["drift_nu_sigma_states"] = tuple(s.nu_sigma for s in states)
    table = tuple(float(f"{s.mean_us * 1e-6:.12g}") for s in states)
    profile = DeviceProfile(
        name=name, g_min=table[0], g_max=table[-1], states=table,
        description=f"Fitted to {sum(s.n for s in states)} reference reads of {len(states)} states.",
        source=source, read_voltage=read_voltage, read_time=read_time, drift_t0=t0,
        programming_sigma_states=tuple(float(f"{s.sigma_us * 1e-6:.12g}") for s in states), **kw)
    return Fit(profile, states, by)


def plot_fit(fit: Fit, rows: list[dict[str, Any]], path: str) -> None:
    """Write a figure of the fit: measured reference reads per state with the fitted mean and
    +-sigma, and (with later reads) the fitted ``nu`` per state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drift = any(s.nu is not None for s in fit.states)
    fig, axes = plt.subplots(1, 2 if drift else 1, figsize=(10 if drift else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    index = {s.key: i for i, s in enumerate(fit.states)}
    ref = [r for r in rows if r["t"] is None or r["t"] <= fit.profile.drift_t0]
    ax.plot([index[r["key"]] for r in ref], [r["g"] for r in ref], ".", ms=2, alpha=0.3, label="reference reads")
    ax.errorbar(range(len(fit.states)), [s.mean_us for s in fit.states], yerr=[s.sigma_us for s in fit.states],
                fmt="o", color="k", capsize=3, label="fitted state +- sigma")
    ax.set_xlabel("state index")
    ax.set_ylabel("conductance (uS)")
    ax.legend(fontsize=8)
    if drift:
        ax = axes[0][1]
        ax.errorbar([s.mean_us for s in fit.states], [s.nu or 0.0 for s in fit.states],
                    yerr=[s.nu_sigma or 0.0 for s in fit.states], fmt="o", capsize=3)
        ax.set_xlabel("state conductance (uS)")
        ax.set_ylabel("drift exponent nu (+- spread)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
