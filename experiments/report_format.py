"""Numbers and tables as the markdown reports print them (``xbar reproduce``'s and
``xbar robustness``'s): percentages, scientific notation, counts, and markdown tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def _modes(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The results' modes mapping, empty when absent."""
    modes = results.get("modes") or {}
    return dict(modes) if isinstance(modes, Mapping) else {}


def _plot(plots: Mapping[str, str], key: str, title: str) -> list[str]:
    """A markdown image line for a drawn plot, or a note that it was not drawn."""
    return [f"![{title}]({plots[key]})"] if key in plots else [f"*{title}: plot not drawn (no data).*"]


_SPLIT_SIZE = {"test": 10_000}  # MNIST's test set; validation is ``data.val_size`` training images


def images_phrase(results: Mapping[str, Any], split: str, limit: Any = None) -> str:
    """Which images of ``split`` (``"test"`` or ``"val"``) a figure uses, from the run's
    configuration: ``data.<split>_limit`` and a further ``limit``, e.g. ``"the first 2,000 test
    images"`` or ``"all 10,000 test images"``."""
    cfg = results.get("config") or {}
    data = cfg.get("data") or {}
    limits = [int(x) for x in (data.get(f"{split}_limit"), limit) if _num(x) is not None]
    word = "validation" if split == "val" else split
    if limits:
        return f"the first {min(limits):,} {word} images"
    size = _SPLIT_SIZE.get(split) if split == "test" else data.get("val_size")
    return f"all {int(size):,} {word} images" if _num(size) is not None else f"all {word} images"


def acc_over_seeds(mean: Any, std: Any, n: Any) -> str:
    """Mean ± std of an accuracy over ``n`` seeds; one seed has no spread, so no ± is shown."""
    return pct(mean) + " (1 seed)" if _num(n) == 1 else pct_pm(mean, std)
