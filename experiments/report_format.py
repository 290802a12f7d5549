"""Numbers and tables as the markdown reports print them (``xbar reproduce``'s and
``xbar robustness``'s): percentages, scientific notation, counts, and markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DASH = "—"
NOT_RUN = "not run"


def _num(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def pct(value: Any) -> str:
    """An accuracy fraction as a percent with two decimals, e.g. ``0.9712 -> "97.12%"``."""
    x = _num(value)
    return DASH if x is None else f"{100 * x:.2f}%"


def pct_pm(mean: Any, std: Any) -> str:
    """Mean ± standard deviation of an accuracy, in percent (std in percentage points)."""
    if _num(mean) is None:
        return DASH
    s = _num(std)
    return pct(mean) if s is None else f"{pct(mean)} ± {100 * s:.2f}"


def sci(value: Any, unit: str = "") -> str:
    """A physical quantity in scientific notation, e.g. ``1.23e-06 J`` (``0`` when zero)."""
    x = _num(value)
    if x is None:
        return DASH
    text = "0" if x == 0 else f"{x:.2e}"
    return f"{text} {unit}" if unit else text


def count(value: Any) -> str:
    """A per-sample count with thousands separators (one decimal below 1000)."""
    x = _num(value)
    if x is None:
        return DASH
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.1f}"


def plain(value: Any) -> str:
    """A setting (T, rate, seconds) in its shortest exact form, or a dash when missing."""
    if value is None:
        return DASH
    x = _num(value)
    return f"{x:g}" if x is not None else str(value)


def seconds(value: Any) -> str:
    """A duration in seconds with two decimals (or a dash)."""
    x = _num(value)
    return DASH if x is None else f"{x:.2f}"


def points_diff(ours: float, theirs: float) -> str:
    """``ours - theirs`` in percentage points, as words: "3.20 points higher"."""
    d = 100 * (ours - theirs)
    if abs(d) < 0.005:
        return "equal"
    return f"{abs(d):.2f} points {'higher' if d > 0 else 'lower'}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out
