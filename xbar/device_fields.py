"""Field checks for device profiles: the error and warning types, the value validators, and the
collector that gathers every error of one profile.

Each validator takes the raw value, the file (or label) and the dotted YAML field for the error
message, and returns the converted value; a bad value raises :class:`DeviceProfileError`.
:class:`_Errors` runs validators and keeps their errors, so that a profile with three bad fields
is refused once, with all three.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable
from typing import Any, Callable

MAX_BITS = 32  # largest ADC/DAC resolution a profile may ask for
# Conductances (siemens) a real device plausibly has; a value outside warns (units mistaken?).
PLAUSIBLE_G = (1e-9, 1e-2)


class DeviceProfileError(ValueError):
    """A device profile is malformed: names the file and the offending field(s).

    Args:
        path: the file (or ``"<dict>"``-style label) the profile came from.
        field: dotted YAML key, e.g. ``"conductance.on_off_ratio"``, or ``"<yaml>"`` /
            ``"<document>"`` / ``"<file>"`` for problems that belong to no single key.
        reason: what is wrong, e.g. ``"must be > 1, got 0.5"``.
        errors: every ``(field, reason)`` of the profile when there is more than one; the
            first gives ``field`` and ``reason``. Default: just ``((field, reason),)``.

    The message is one line: ``path: field: reason`` for one error, ``path: N errors:
    field: reason; field: reason; ...`` for several. :meth:`combine` builds one from many.
    """

    def __init__(self, path: str, field: str, reason: str,
                 errors: Iterable[tuple[str, str]] = ()) -> None:
        self.path = str(path)
        self.field = field
        self.reason = " ".join(str(reason).split())
        self.errors: tuple[tuple[str, str], ...] = tuple(
            (str(f), " ".join(str(r).split())) for f, r in errors) or ((field, self.reason),)
        if len(self.errors) == 1:
            shown = [_printable(self.path), _printable(field), _printable(self.reason)]
        else:
            shown = [_printable(self.path), f"{len(self.errors)} errors",
                     "; ".join(f"{_printable(f)}: {_printable(r)}" for f, r in self.errors)]
        super().__init__(": ".join(shown))

    @classmethod
    def combine(cls, errors: list[DeviceProfileError]) -> DeviceProfileError:
        """One error listing every one of ``errors`` (non-empty, same file); one stays itself."""
        if len(errors) == 1:
            return errors[0]
        pairs = [pair for e in errors for pair in e.errors]
        return cls(errors[0].path, pairs[0][0], pairs[0][1], pairs)

    def __reduce__(self) -> tuple[type[DeviceProfileError], tuple[Any, ...]]:
        return (type(self), (self.path, self.field, self.reason, self.errors))


class DeviceProfileWarning(UserWarning):
    """A device profile loads but a value is implausible (e.g. a conductance given in siemens
    where the key asks for microsiemens). The message names the file, the field and the value."""


BAD = object()  # what _Errors.check returns for a value that failed its check


class _Errors:
    """The errors of one profile, collected so that all are reported together.

    Args:
        path: the file or label every error names.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[DeviceProfileError] = []

    def check(self, fn: Callable[..., Any], value: Any, where: str, *args: Any) -> Any:
        """``fn(value, path, where, *args)``, or :data:`BAD` (error kept) when it raises."""
        try:
            return fn(value, self.path, where, *args)
        except DeviceProfileError as exc:
            self.items.append(exc)
            return BAD

    def add(self, where: str, reason: str) -> None:
        self.items.append(DeviceProfileError(self.path, where, reason))

    def run(self, fn: Callable[[], Any]) -> None:
        """Call ``fn()``, keeping a :class:`DeviceProfileError` it raises."""
        try:
            fn()
        except DeviceProfileError as exc:
            self.items.append(exc)

    def raise_any(self) -> None:
        """Raise every collected error as one :class:`DeviceProfileError`, if there is any."""
        if self.items:
            raise DeviceProfileError.combine(self.items)


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so an error message stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _canon(x: float) -> float:
    """Round to 12 significant digits, so unit conversions (µS <-> S) round-trip exactly."""
    return float(f"{x:.12g}")


# ---------------------------------------------------------------------------------------------
# Value checks (shared by the YAML parser and the dataclass).  Each takes the raw value, the
# path and dotted field for error messages, and returns the converted value.

def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {_short(value)}"


def _number(value: Any, path: str, where: str) -> float:
    """A finite float from an int or a float; strings (a quoted ``"100"``) and booleans are refused.

    (The device loader reads an unquoted ``1e-6`` as a number; see ``xbar.device``.)
    """
    if isinstance(value, bool):
        raise DeviceProfileError(path, where, f"must be a number, got boolean {value!r}")
    if isinstance(value, str):
        raise DeviceProfileError(path, where, f"must be a number, got a YAML string {_short(value)} "
                                 "(remove the quotes)")
    if not isinstance(value, (int, float)):
        raise DeviceProfileError(path, where, f"must be a number, got {_describe(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise DeviceProfileError(path, where, "number out of range") from None
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
        got = f"a YAML string {_short(value)} (remove the quotes)" if isinstance(value, str) else _describe(value)
        raise DeviceProfileError(path, where, f"must be an integer, got {got}")
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


def _si(siemens: float) -> str:
    """``1e-12`` -> ``'1 pS'``: a conductance with an SI prefix, 3 significant digits."""
    for scale, unit in ((1.0, "S"), (1e-3, "mS"), (1e-6, "uS"), (1e-9, "nS"), (1e-12, "pS")):
        if abs(siemens) >= scale:
            return f"{siemens / scale:.3g} {unit}"
    return f"{siemens / 1e-15:.3g} fS"


def warn_implausible(value_us: float, path: str, where: str) -> bool:
    """Warn (:class:`DeviceProfileWarning`) when a conductance in µS lies outside
    :data:`PLAUSIBLE_G`, naming the field, the value and the likely unit mistake.

    Returns:
        True when it warned.
    """
    g = _canon(value_us * 1e-6)
    low, high = PLAUSIBLE_G
    if low * (1 - 1e-9) <= g <= high * (1 + 1e-9):
        return False
    key = where.rsplit(".", 1)[-1]
    unit = key.split("[")[0]
    if g > high and low <= g * 1e-3 <= high:
        hint = f"if {value_us:g} is in nanosiemens, write {key}: {_canon(value_us / 1e3):g}"
    elif g < low <= value_us <= high:
        hint = f"if {value_us:g} is in siemens, write {key}: {_canon(value_us * 1e6):g}"
    else:
        hint = "check the unit"
    warnings.warn(DeviceProfileWarning(
        f"{_printable(path)}: {where}: {value_us:g} uS ({_si(g)}) is outside the plausible range "
        f"{_si(low)} to {_si(high)}; the unit of {unit} is microsiemens (uS): {hint}"), stacklevel=3)
    return True


# ---------------------------------------------------------------------------------------------
# Checks of the conductance-dependent model fields (lists and choices).  A list may be given as
# a YAML list or (from Python) a tuple; each returns a tuple of floats, or None for null.

MAX_COEFFS = 8  # polynomial / log-fit coefficients a profile may give


def _float_list(value: Any, path: str, where: str, low: int, high: int | None, what: str) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise DeviceProfileError(path, where, f"must be a list of {what}, got {_describe(value)}")
    if len(value) < low or (high is not None and len(value) > high):
        count = f"{low}" if high == low else (f"{low} to {high}" if high is not None else f"at least {low}")
        raise DeviceProfileError(path, where, f"needs {count} entries, got {len(value)}")
    return tuple(_number(v, path, f"{where}[{i}]") for i, v in enumerate(value))


def _coeffs(value: Any, path: str, where: str) -> tuple[float, ...] | None:
    """Polynomial coefficients ``[c0, c1, ...]`` (1 to :data:`MAX_COEFFS`), or None."""
    return None if value is None else _float_list(value, path, where, 1, MAX_COEFFS, "numbers")


def _line(value: Any, path: str, where: str) -> tuple[float, ...] | None:
    """A straight-line fit ``[c0, c1]``, or None."""
    return None if value is None else _float_list(value, path, where, 2, 2, "two numbers [c0, c1]")


def _span(value: Any, path: str, where: str) -> tuple[float, ...] | None:
    """A closed interval ``[low, high]`` with ``0 <= low <= high``, or None."""
    if value is None:
        return None
    low, high = _float_list(value, path, where, 2, 2, "two numbers [low, high]")
    if low < 0 or high < low:
        raise DeviceProfileError(path, where, f"must be [low, high] with 0 <= low <= high, got {[low, high]!r}")
    return (low, high)


def _nonneg_table(value: Any, path: str, where: str) -> tuple[float, ...] | None:
    """One value >= 0 per state (its length is checked against the state table), or None."""
    if value is None:
        return None
    out = _float_list(value, path, where, 2, None, "numbers >= 0, one per state")
    for i, v in enumerate(out):
        if v < 0:
            raise DeviceProfileError(path, f"{where}[{i}]", f"must be >= 0, got {v!r}")
    return out


def _positive_or_null(value: Any, path: str, where: str) -> float | None:
    return None if value is None else _bounded(value, path, where, 0.0, True, None)


def _choice(*allowed: str) -> Callable[[Any, str, str], str]:
    """A check accepting one of the strings ``allowed`` (the first is the default)."""
    def check(value: Any, path: str, where: str) -> str:
        if value not in allowed:
            raise DeviceProfileError(path, where, f"must be one of {', '.join(repr(a) for a in allowed)}, "
                                     f"got {_describe(value)}")
        return str(value)
    return check


_floor = _choice("g_min", "zero")
_origin = _choice("programming", "t0")
