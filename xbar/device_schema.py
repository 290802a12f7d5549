"""The device profile schema (schema 1): which YAML keys exist, the :class:`~xbar.DeviceProfile`
attribute each fills, the check it passes and its unit, and the rules that tie fields together.

``docs/devices.md`` documents every key listed here (``tests/test_devices_doc.py`` checks it).
:mod:`xbar.device` builds and parses profiles from these tables; the value checks themselves are
in :mod:`xbar.device_fields`.
"""

from __future__ import annotations

from typing import Any, Callable

from .device_fields import (
    _adc_bits,
    _bits,
    _canon,
    _coeffs,
    _count,
    _Errors,
    _floor,
    _fraction,
    _line,
    _nonneg,
    _nonneg_table,
    _origin,
    _positive,
    _positive_or_null,
    _span,
)

SCHEMA_VERSION = 1
MAX_LEVELS = 65536  # largest state table a profile may ask for
_AGREE_RTOL = 1e-6  # g_max_us / on_off_ratio given beside states_us must agree this closely
_SPACINGS = ("linear", "log")

_Check = Callable[[Any, str, str], Any]

# YAML section -> YAML key -> (DeviceProfile attribute, check, SI value per YAML unit).
# `conductance` is parsed by hand (it has alternatives); every other section is table-driven.
_SECTIONS: dict[str, dict[str, tuple[str, _Check, float]]] = {
    "read": {"voltage_v": ("read_voltage", _positive, 1.0), "pulse_ns": ("read_time", _positive, 1e-9)},
    "noise": {
        "programming_sigma": ("programming_sigma", _nonneg, 1.0),
        "programming_sigma_poly_us": ("programming_sigma_poly", _coeffs, 1e-6),
        "programming_sigma_states_us": ("programming_sigma_states", _nonneg_table, 1e-6),
        "programming_floor": ("programming_floor", _floor, 1.0),
        "read_sigma": ("read_sigma", _nonneg, 1.0),
        "flicker_q": ("flicker_q", _nonneg, 1.0),
        "flicker_exponent": ("flicker_exponent", _nonneg, 1.0),
        "flicker_q_max": ("flicker_q_max", _positive_or_null, 1.0),
        "flicker_t_read_ns": ("flicker_t_read", _positive_or_null, 1e-9),
        "d2d_sigma": ("d2d_sigma", _nonneg, 1.0),
    },
    "faults": {"stuck_off": ("stuck_off", _fraction, 1.0), "stuck_on": ("stuck_on", _fraction, 1.0)},
    "drift": {
        "nu": ("drift_nu", _nonneg, 1.0),
        "nu_sigma": ("drift_nu_sigma", _nonneg, 1.0),
        "t0_s": ("drift_t0", _positive, 1.0),
        "time_origin": ("drift_time_origin", _origin, 1.0),
        "nu_ln_coeffs": ("drift_nu_ln", _line, 1.0),
        "nu_range": ("drift_nu_range", _span, 1.0),
        "nu_sigma_ln_coeffs": ("drift_nu_sigma_ln", _line, 1.0),
        "nu_sigma_range": ("drift_nu_sigma_range", _span, 1.0),
        "nu_states": ("drift_nu_states", _nonneg_table, 1.0),
        "nu_sigma_states": ("drift_nu_sigma_states", _nonneg_table, 1.0),
    },
    "periphery": {
        "adc_bits": ("adc_bits", _adc_bits, 1.0),
        "dac_bits": ("dac_bits", _bits, 1.0),
        "tile_rows": ("tile_rows", _count, 1.0),
        "tile_cols": ("tile_cols", _count, 1.0),
        "wire_ohm": ("wire_ohm", _nonneg, 1.0),
        "out_noise": ("out_noise", _nonneg, 1.0),
    },
    "energy": {
        "adc_pj": ("adc_pj", _nonneg, 1.0),
        "dac_pj": ("dac_pj", _nonneg, 1.0),
        "neuron_update_pj": ("neuron_update_pj", _nonneg, 1.0),
        "spike_pj": ("spike_pj", _nonneg, 1.0),
        "digital_ac_pj": ("digital_ac_pj", _nonneg, 1.0),
        "digital_mac_pj": ("digital_mac_pj", _nonneg, 1.0),
    },
}
_REQUIRED_TOP = ("schema", "name", "conductance", "read")
_OPTIONAL_TOP = ("description", "source", "noise", "faults", "drift", "periphery", "energy")
_CONDUCTANCE_KEYS = ("g_max_us", "on_off_ratio", "levels", "spacing", "states_us")
# Attribute -> YAML field, for errors raised when a profile is built or replaced in Python.
_ATTR_FIELD = {attr: f"{sec}.{key}" for sec, keys in _SECTIONS.items()
               for key, (attr, _check, _scale) in keys.items()}
_ATTR_FIELD.update(g_min="conductance.on_off_ratio", g_max="conductance.g_max_us",
                   levels="conductance.levels", spacing="conductance.spacing",
                   states="conductance.states_us")


def to_si(value: Any, scale: float) -> Any:
    """A checked YAML value in SI units: numbers and each entry of a tuple times ``scale``."""
    if scale == 1.0 or value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return tuple(_canon(v * scale) for v in value)
    return value * scale


def from_si(value: Any, scale: float) -> Any:
    """An SI attribute in its YAML unit (tuples become lists), for :meth:`DeviceProfile.to_dict`."""
    if isinstance(value, tuple):
        return [_canon(v / scale) if scale != 1.0 else v for v in value]
    if scale == 1.0 or value is None:
        return value
    return _canon(value / scale)


def _make_states(g_min: float, g_max: float, levels: int, spacing: str) -> tuple[float, ...]:
    """The state table of ``levels`` states from ``g_min`` to ``g_max`` (siemens).

    Args:
        g_min: lowest state, siemens.
        g_max: highest state, siemens.
        levels: number of states, >= 2.
        spacing: ``"linear"`` (equal steps) or ``"log"`` (equal ratios).

    Returns:
        Ascending conductances in siemens, rounded to 12 significant digits, endpoints exact.
    """
    last = levels - 1
    if spacing == "log":
        ratio = g_max / g_min
        inner = [g_min * ratio ** (i / last) for i in range(1, last)]
    else:
        inner = [g_min + (g_max - g_min) * (i / last) for i in range(1, last)]
    return (g_min, *(_canon(g) for g in inner), g_max)


def _check_faults(stuck_off: float, stuck_on: float, errs: _Errors) -> None:
    """Both stuck fractions together cannot exceed the whole array."""
    if stuck_off + stuck_on > 1:
        errs.add("faults", f"stuck_off + stuck_on must be <= 1, got {stuck_off + stuck_on!r}")


# (model attribute, the scalar it replaces, the scalar's default)
_EXCLUSIVE = (("programming_sigma_poly", "programming_sigma"), ("programming_sigma_states", "programming_sigma"),
              ("programming_sigma_states", "programming_sigma_poly"), ("drift_nu_ln", "drift_nu"),
              ("drift_nu_states", "drift_nu"), ("drift_nu_states", "drift_nu_ln"),
              ("drift_nu_sigma_ln", "drift_nu_sigma"), ("drift_nu_sigma_states", "drift_nu_sigma"),
              ("drift_nu_sigma_states", "drift_nu_sigma_ln"))
_NEEDS = (("drift_nu_range", "drift_nu_ln"), ("drift_nu_sigma_range", "drift_nu_sigma_ln"))
_PER_STATE = ("programming_sigma_states", "drift_nu_states", "drift_nu_sigma_states")


def check_models(profile: Any, errs: _Errors, bad: set[str]) -> None:
    """The rules between the conductance-dependent model fields of a built ``profile``: a model
    replaces its one-number field (giving both is an error), a clip range needs its fit, and a
    per-state table needs a state table of the same length. ``bad``: attributes already refused."""
    def given(attr: str) -> bool:
        value = getattr(profile, attr)
        return attr not in bad and value is not None and value != 0.0
    for model, scalar in _EXCLUSIVE:
        if given(model) and given(scalar):
            errs.add(_ATTR_FIELD[model], f"replaces {_ATTR_FIELD[scalar]}; give one of them, not both")
    for rng, fit in _NEEDS:
        if given(rng) and not given(fit):
            errs.add(_ATTR_FIELD[rng], f"clips {_ATTR_FIELD[fit]}, which is not given")
    for attr in _PER_STATE:
        if not given(attr):
            continue
        states = profile.states
        if states is None:
            errs.add(_ATTR_FIELD[attr], "needs a state table (conductance.levels or conductance.states_us)")
        elif len(getattr(profile, attr)) != len(states):
            errs.add(_ATTR_FIELD[attr], f"has {len(getattr(profile, attr))} entries but the state table has "
                     f"{len(states)} states")
