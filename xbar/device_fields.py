"""Field checks for device profiles: the error type and the value validators.

Each validator takes the raw value, the file (or label) and the dotted YAML field for the error
message, and returns the converted value; a bad value raises :class:`DeviceProfileError`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

MAX_BITS = 32  # largest ADC/DAC resolution a profile may ask for

class DeviceProfileError(ValueError):
    """A device profile is malformed: names the file and the offending field.

    Args:
        path: the file (or ``"<dict>"``-style label) the profile came from.
        field: dotted YAML key, e.g. ``"conductance.on_off_ratio"``, or ``"<yaml>"`` /
            ``"<document>"`` / ``"<file>"`` for problems that belong to no single key.
        reason: what is wrong, e.g. ``"must be > 1, got 0.5"``.
    """

    def __init__(self, path: str, field: str, reason: str) -> None:
        self.path = str(path)
        self.field = field
        self.reason = " ".join(str(reason).split())
        shown = [_printable(self.path), _printable(field), _printable(self.reason)]
        super().__init__(": ".join(shown))

    def __reduce__(self) -> tuple[type[DeviceProfileError], tuple[str, str, str]]:
        return (type(self), (self.path, self.field, self.reason))


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so an error message stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _canon(x: float) -> float:
    """Round to 12 significant digits, so unit conversions (µS <-> S) round-trip exactly."""
    return float(f"{x:.12g}")


# ---------------------------------------------------------------------------------------------
# Value checks (shared by the YAML parser and the dataclass).  Each takes the raw value, the
# path and dotted field for error messages, and returns the converted value.

def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _number(value: Any, path: str, where: str) -> float:
    """A finite float from an int, a float, or a string holding a float (YAML 1.1 ``1e-6``)."""
    if isinstance(value, bool):
        raise DeviceProfileError(path, where, f"must be a number, got boolean {value!r}")
    if isinstance(value, (int, float)):
        try:
            out = float(value)
        except OverflowError:
            raise DeviceProfileError(path, where, "number out of range") from None
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise DeviceProfileError(path, where, f"must be a number, got {_describe(value)}") from None
    else:
        raise DeviceProfileError(path, where, f"must be a number, got {_describe(value)}")
    if not math.isfinite(out):
        raise DeviceProfileError(path, where, f"must be finite, got {_describe(value)}")
    return out


def _bounded(value: Any, path: str, where: str, low: float, strict: bool, high: float | None) -> float:
    out = _number(value, path, where)
    if out < low or (strict and out == low):
        raise DeviceProfileError(path, where, f"must be {'>' if strict else '>='} {low:g}, got {out!r}")
    if high is not None and out > high:
        raise DeviceProfileError(path, where, f"must be a fraction in [{low:g}, {high:g}], got {out!r}")
    return out


_positive = functools.partial(_bounded, low=0.0, strict=True, high=None)
_nonneg = functools.partial(_bounded, low=0.0, strict=False, high=None)
_fraction = functools.partial(_bounded, low=0.0, strict=False, high=1.0)


def _integer(value: Any, path: str, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DeviceProfileError(path, where, f"must be an integer, got {_describe(value)}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise DeviceProfileError(path, where, f"must be {bound}, got {value}")
    return int(value)


def _bits(value: Any, path: str, where: str) -> int | None:
    return None if value is None else _integer(value, path, where, 1, MAX_BITS)


def _adc_bits(value: Any, path: str, where: str) -> int | None:
    """ADC resolution: >= 2 (the signed, symmetric converter needs a sign and a magnitude bit)."""
    return None if value is None else _integer(value, path, where, 2, MAX_BITS)


def _count(value: Any, path: str, where: str) -> int | None:
    return None if value is None else _integer(value, path, where, 1)


def _text(value: Any, path: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DeviceProfileError(path, where, f"must be a string, got {_describe(value)}")
    return value
