"""Device profiles: what a memristor can store, how it is read, and how it misbehaves.

A profile is a YAML file (schema 1, documented field by field in ``docs/devices.md``) with the
units in the key names (``g_max_us`` microsiemens, ``pulse_ns`` nanoseconds). :func:`load_device`
reads a shipped profile by name (the YAML files of ``xbar.devices``) or a file by path,
:func:`parse_device` validates a parsed mapping; both return a frozen :class:`DeviceProfile` in SI
units (siemens, volts, seconds). A bad profile raises one :class:`DeviceProfileError` (a
``ValueError``) listing every error found, each naming the file and the field:
``devices/foo.yaml: conductance.on_off_ratio: must be > 1, got 0.5`` for one, ``foo.yaml: 2
errors: read.voltage_v: ...; noise.read_sigma: ...`` for several (``.errors`` holds the pairs).

Numbers are YAML numbers: the loader reads an unquoted ``1e-6`` as a float (PyYAML's YAML 1.1
rules alone would read it as a string), and a string where a number belongs (``g_max_us:
"100"``) is an error, as are booleans. A conductance outside 1 nS to 10 mS (``g_max_us: 1e-6``,
written in siemens, is 1 pS) loads with a :class:`DeviceProfileWarning` naming the field and the
likely unit mistake. Conductances and the read pulse are rounded to 12 significant digits so
that :meth:`DeviceProfile.to_yaml` output reads back identical.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .device_fields import (
    BAD,
    DeviceProfileError,
    DeviceProfileWarning,
    _canon,
    _describe,
    _Errors,
    _integer,
    _number,
    _positive,
    _text,
    warn_implausible,
)
from .device_schema import (
    _AGREE_RTOL,
    _ATTR_FIELD,
    _CONDUCTANCE_KEYS,
    _OPTIONAL_TOP,
    _REQUIRED_TOP,
    _SECTIONS,
    _SPACINGS,
    MAX_LEVELS,
    SCHEMA_VERSION,
    _check_faults,
    _make_states,
    check_models,
    from_si,
    to_si,
)

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceProfile", "DeviceProfileError", "DeviceProfileWarning", "list_devices", "load_device",
           "load_device_file", "parse_device"]

_PACKAGE = "xbar.devices"


@dataclass(frozen=True)
class DeviceProfile:
    """A memristive device as the crossbar sees it, in SI units.

    Build one with :func:`load_device` or :func:`parse_device`; direct construction (keyword
    arguments) is validated the same way. Give either ``levels`` (a table of ``levels`` states
    spread from ``g_min`` to ``g_max`` by ``spacing``) or ``states`` (an explicit table, from which
    ``levels``, ``g_min`` and ``g_max`` follow), or neither for a continuous device.

    Fields carry SI units (listed beside each); the noise sigmas are Gaussian and relative to
    ``g_max``, read noise is drawn afresh at every read, ``None`` periphery means ideal, and
    ``path`` (the file it came from) is not compared.
    """

    name: str                                   # profile name (need not equal the file stem)
    g_min: float                                # siemens, = states[0] when there is a table
    g_max: float                                # siemens
    levels: int | None = None                   # number of states; None = continuous
    spacing: str = "linear"                     # "linear" | "log": how `levels` states are spread
    states: tuple[float, ...] | None = None     # ascending siemens, or None = continuous
    description: str = ""                       # one line
    source: str = ""                            # paper or datasheet the figures come from
    read_voltage: float = 0.2                   # volts
    read_time: float = 10e-9                    # seconds (read pulse width)
    programming_sigma: float = 0.0              # relative to g_max
    programming_sigma_poly: tuple[float, ...] | None = None    # siemens: sigma(G) = sum c_i (G/g_max)^i
    programming_sigma_states: tuple[float, ...] | None = None  # siemens, one per state
    programming_floor: str = "g_min"            # "g_min" | "zero": where a write is clipped below
    read_sigma: float = 0.0                     # relative to g_max, fresh at every read
    flicker_q: float = 0.0                      # 1/f read noise Q_s at G = g_max (relative to G)
    flicker_exponent: float = 0.0               # Q_s(G) = flicker_q (G / g_max)^-exponent
    flicker_q_max: float | None = None          # cap of Q_s; None = none
    flicker_t_read: float | None = None         # seconds, t_read of the 1/f fit; None = read_time
    d2d_sigma: float = 0.0                      # device-to-device, relative to g_max
    stuck_off: float = 0.0                      # fraction of devices stuck at g_min
    stuck_on: float = 0.0                       # fraction of devices stuck at g_max
    drift_nu: float = 0.0                       # G(t) = G0 (t / t0)^-nu
    drift_nu_sigma: float = 0.0                 # device-to-device spread of nu (absolute)
    drift_t0: float = 20.0                      # seconds
    drift_time_origin: str = "programming"      # "programming": t since programming; "t0": since t0
    drift_nu_ln: tuple[float, ...] | None = None            # nu(G) = c0 + c1 ln(G / g_max)
    drift_nu_range: tuple[float, ...] | None = None         # clip of nu(G)
    drift_nu_sigma_ln: tuple[float, ...] | None = None      # nu_sigma(G) = c0 + c1 ln(G / g_max)
    drift_nu_sigma_range: tuple[float, ...] | None = None   # clip of nu_sigma(G)
    drift_nu_states: tuple[float, ...] | None = None        # nu per state
    drift_nu_sigma_states: tuple[float, ...] | None = None  # nu spread per state
    adc_bits: int | None = None                 # bits; None = ideal readout
    dac_bits: int | None = None                 # bits; None = ideal drive
    tile_rows: int | None = None                # rows per array; None = one array per layer
    tile_cols: int | None = None                # columns per array; None = one array per layer
    wire_ohm: float = 0.0                       # ohms per wire segment (IR drop); 0 = none
    out_noise: float = 0.0                      # ADC-input noise, relative to g_max * V_read
    adc_pj: float = 0.0                         # picojoules per ADC conversion
    dac_pj: float = 0.0                         # picojoules per analog row drive (with dac_bits)
    neuron_update_pj: float = 0.0               # picojoules per neuron update
    spike_pj: float = 0.0                       # picojoules per spike
    digital_ac_pj: float = 0.9                  # picojoules per digital accumulate (baseline)
    digital_mac_pj: float = 4.6                 # picojoules per digital MAC (baseline)
    path: str | None = field(default=None, compare=False)   # file it was loaded from

    def __post_init__(self) -> None:
        errs = _Errors(self.path or "<DeviceProfile>")
        put = self._put
        for attr in ("name", "description", "source"):
            value = errs.check(_text, getattr(self, attr), attr)
            if value is not BAD:
                put(attr, value)
        if self.name == "":
            errs.add("name", "must be a non-empty string")
        bad = set()
        for keys in _SECTIONS.values():
            for attr, check, _scale in keys.values():
                value = errs.check(check, getattr(self, attr), _ATTR_FIELD[attr])
                if value is BAD:
                    bad.add(attr)
                else:
                    put(attr, value)
        for attr in {"read_time", "flicker_t_read"} - bad:
            if getattr(self, attr) is not None:
                put(attr, _canon(getattr(self, attr)))
        if not bad & {"stuck_off", "stuck_on"}:
            _check_faults(self.stuck_off, self.stuck_on, errs)
        errs.run(self._set_conductance)
        if not errs.items:
            check_models(self, errs, bad)
        errs.raise_any()

    def _set_conductance(self) -> None:
        """Validate ``spacing``, the range and the state table (``levels`` or ``states``)."""
        where, put = self.path or "<DeviceProfile>", self._put
        if self.spacing not in _SPACINGS:
            raise self._bad("spacing", f"must be 'linear' or 'log', got {_describe(self.spacing)}")
        if self.states is not None:
            self._set_table()
            return
        put("g_min", _canon(_positive(self.g_min, where, _ATTR_FIELD["g_min"])))
        put("g_max", _canon(_positive(self.g_max, where, _ATTR_FIELD["g_max"])))
        if self.g_min <= 0 or self.g_max <= self.g_min or not math.isfinite(self.g_max / self.g_min):
            raise self._bad("g_min", "on/off ratio g_max / g_min must be > 1 and finite, "
                            f"got g_max={self.g_max!r} S, g_min={self.g_min!r} S")
        if self.levels is not None:
            put("levels", _integer(self.levels, where, _ATTR_FIELD["levels"], 2, MAX_LEVELS))
            put("states", _make_states(self.g_min, self.g_max, self.levels, self.spacing))
            self._check_ascending()

    def _put(self, attr: str, value: Any) -> None:
        object.__setattr__(self, attr, value)

    def _bad(self, attr: str, reason: str) -> DeviceProfileError:
        return DeviceProfileError(self.path or "<DeviceProfile>", _ATTR_FIELD[attr], reason)

    def _set_table(self) -> None:
        """Validate an explicit ``states`` table and derive ``levels``, ``g_min``, ``g_max``."""
        where, states = self.path or "<DeviceProfile>", self.states
        if isinstance(states, (str, bytes)) or not hasattr(states, "__iter__"):
            raise self._bad("states", f"must be a sequence of conductances, got {_describe(states)}")
        table = tuple(_canon(_positive(g, where, _ATTR_FIELD["states"])) for g in states)
        if not 2 <= len(table) <= MAX_LEVELS:
            raise self._bad("states", f"needs 2 to {MAX_LEVELS} states, got {len(table)}")
        self._put("states", table)
        self._check_ascending()
        if self.levels is not None and self.levels != len(table):
            raise self._bad("levels", f"is {self.levels!r} but the state table has {len(table)} states")
        for attr, value in (("g_min", table[0]), ("g_max", table[-1])):
            given = getattr(self, attr)
            if isinstance(given, bool) or not isinstance(given, (int, float)) or _canon(given) != value:
                raise self._bad(attr, f"{attr}={given!r} disagrees with the state table ({value!r} S)")
            self._put(attr, value)
        if not math.isfinite(table[-1] / table[0]):
            raise self._bad("states", "on/off ratio of the table overflows")
        self._put("levels", len(table))

    def _check_ascending(self) -> None:
        states = self.states or ()
        for i in range(1, len(states)):
            if not states[i] > states[i - 1]:
                raise self._bad("states", f"must be strictly ascending, got {states[i - 1]!r} then "
                                f"{states[i]!r} S at index {i} (too many levels for this on/off ratio?)")

    @property
    def on_off_ratio(self) -> float:
        """ON/OFF ratio ``g_max / g_min`` (dimensionless)."""
        return self.g_max / self.g_min

    @property
    def is_continuous(self) -> bool:
        """True when the device has no state table (any conductance in [g_min, g_max])."""
        return self.states is None

    def state_tensor(self, dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor | None:
        """The state table as a tensor.

        Args:
            dtype: tensor dtype; None means ``torch.float32``.
            device: torch device; None means the default device.

        Returns:
            1-D ascending conductances in siemens, shape ``[levels]``, or None when continuous.
        """
        if self.states is None:
            return None
        import torch

        return torch.tensor(self.states, dtype=dtype or torch.float32, device=device)

    @property
    def has_ideal_periphery(self) -> bool:
        """True when the periphery is exact: no ADC, no DAC, no IR drop (tiling alone then
        changes nothing). Read noise belongs to the devices (see :meth:`ideal_devices`)."""
        return self.adc_bits is None and self.dac_bits is None and self.wire_ohm == 0 and self.out_noise == 0

    def ideal_periphery(self) -> DeviceProfile:
        """A copy with ideal periphery: no ADC, no DAC, one array per layer, no IR drop.

        The device's own figures (states, noise, faults, drift, energy) stay, so a study can
        isolate device effects from periphery effects.
        """
        return self.replace(adc_bits=None, dac_bits=None, tile_rows=None, tile_cols=None,
                            wire_ohm=0.0, out_noise=0.0, name=f"{self.name}+ideal-periphery")

    def ideal_devices(self) -> DeviceProfile:
        """A copy with ideal devices: no programming, read or device-to-device noise, no stuck
        devices, no drift. States, periphery and energy figures stay."""
        return self.replace(programming_sigma=0.0, read_sigma=0.0, d2d_sigma=0.0, stuck_off=0.0,
                            stuck_on=0.0, drift_nu=0.0, drift_nu_sigma=0.0, flicker_q=0.0, **_NO_MODELS,
                            name=f"{self.name}+ideal-devices")

    def _table_is_generated(self) -> bool:
        return (self.states is not None and self.levels is not None
                and self.states == _make_states(self.g_min, self.g_max, self.levels, self.spacing))

    def to_dict(self) -> dict[str, Any]:
        """The profile as a schema-1 mapping, units in the key names.

        Returns:
            A plain dict of str/float/int/None/list values such that
            ``parse_device(profile.to_dict()) == profile``.
        """
        if self.states is not None and not self._table_is_generated():
            conductance: dict[str, Any] = {"states_us": [_canon(g * 1e6) for g in self.states]}
        else:
            ratio = self.g_max / self.g_min
            if _canon(self.g_max / _canon(ratio)) == self.g_min:  # the short form reads back exactly
                ratio = _canon(ratio)
            conductance = {"g_max_us": _canon(self.g_max * 1e6), "on_off_ratio": ratio}
            if self.levels is not None:
                conductance.update(levels=self.levels, spacing=self.spacing)
        out: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "conductance": conductance,
        }
        for sec, keys in _SECTIONS.items():
            out[sec] = {key: from_si(getattr(self, attr), scale) for key, (attr, _check, scale) in keys.items()}
        return out

    def to_yaml(self) -> str:
        """The profile as schema-1 YAML text (see :meth:`to_dict`)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def replace(self, **changes: Any) -> DeviceProfile:
        """A copy with some fields changed, validated again.

        Changing ``g_min``, ``g_max``, ``levels`` or ``spacing`` regenerates a ``levels`` table
        (``levels=None`` makes the device continuous); giving ``states`` derives ``levels``,
        ``g_min`` and ``g_max`` from the new table unless they are given too.

        Args:
            **changes: field names and new values, SI units.

        Returns:
            A new, validated :class:`DeviceProfile` (``path`` None unless given).
        """
        if "states" not in changes and changes.keys() & {"g_min", "g_max", "levels", "spacing"}:
            changes["states"] = None
        elif changes.get("states") is not None:
            table = changes["states"]
            if isinstance(table, (list, tuple)) and table:
                changes.update(states=tuple(table))
                changes.setdefault("g_min", table[0])
                changes.setdefault("g_max", table[-1])
            changes.setdefault("levels", None)
        elif "states" in changes:
            changes.setdefault("levels", None)
        changes.setdefault("path", None)  # the result is no longer what the file says
        return dataclasses.replace(self, **changes)


# The conductance-dependent models ideal devices drop.
_NO_MODELS = dict.fromkeys(("programming_sigma_poly", "programming_sigma_states", "drift_nu_ln", "drift_nu_range",
                            "drift_nu_sigma_ln", "drift_nu_sigma_range", "drift_nu_states", "drift_nu_sigma_states"))


# ---------------------------------------------------------------------------------------------
# Parsing

def _section(doc: Mapping[Any, Any], key: str, allowed: tuple[str, ...], errs: _Errors,
             required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``doc[key]`` (absent or null = empty) as a mapping of its known keys; unknown and missing
    required keys, or a section that is not a mapping, are errors (kept in ``errs``)."""
    value = doc.get(key)
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        errs.add(key, f"must be a mapping, got {_describe(value)}")
        return {}
    _check_keys(value, allowed, required, errs, f"{key}.")
    return {k: v for k, v in value.items() if k in allowed}


def _check_keys(value: Mapping[Any, Any], allowed: tuple[str, ...], required: tuple[str, ...],
                errs: _Errors, prefix: str) -> None:
    for k in value:
        if k not in allowed:
            hint = difflib.get_close_matches(str(k), allowed, n=1)
            extra = f"did you mean {hint[0]!r}?" if hint else f"allowed: {', '.join(allowed)}"
            errs.add(f"{prefix}{k}", f"unknown key; {extra}")
    for k in required:
        if k not in value:
            errs.add(f"{prefix}{k}", "missing required key")


def _parse_table(sec: dict[str, Any], levels: Any, errs: _Errors) -> dict[str, Any]:
    """DeviceProfile keyword arguments from an explicit ``conductance.states_us`` table."""
    here, states_us = "conductance.", sec["states_us"]
    if not isinstance(states_us, list):
        errs.add(here + "states_us", f"must be a list of uS values, got {_describe(states_us)}")
        return {}
    if "spacing" in sec:
        errs.add(here + "spacing", "only applies to levels, not to an explicit states_us table")
    table = [errs.check(_positive, g, f"{here}states_us[{i}]") for i, g in enumerate(states_us)]
    if BAD in table:
        return {}
    if len(table) < 2:
        errs.add(here + "states_us", f"needs at least 2 states, got {len(table)}")
        return {}
    for i, g in enumerate(table):
        if warn_implausible(g, errs.path, f"{here}states_us[{i}]"):
            break
    for i in (i for i in range(1, len(table)) if not table[i] > table[i - 1]):
        errs.add(f"{here}states_us[{i}]", f"must be strictly ascending, got {table[i - 1]!r} then {table[i]!r}")
    span = table[-1] / table[0]
    if sec.get("g_max_us") is not None:
        g_max_us = errs.check(_positive, sec["g_max_us"], here + "g_max_us")
        if g_max_us is not BAD and abs(g_max_us - table[-1]) > _AGREE_RTOL * table[-1]:
            errs.add(here + "g_max_us", f"is {g_max_us!r} but states_us ends at {table[-1]!r}")
    if sec.get("on_off_ratio") is not None:
        ratio = errs.check(_number, sec["on_off_ratio"], here + "on_off_ratio")
        if ratio is not BAD and not abs(ratio - span) <= _AGREE_RTOL * span:
            errs.add(here + "on_off_ratio", f"is {ratio!r} but states_us spans {span!r}")
    if levels not in (None, BAD) and levels != len(table):
        errs.add(here + "levels", f"is {levels!r} but the state table has {len(table)} states")
    states = tuple(_canon(g * 1e-6) for g in table)
    return {"states": states, "g_min": states[0], "g_max": states[-1], "levels": levels}


def _parse_conductance(doc: Mapping[Any, Any], errs: _Errors) -> dict[str, Any]:
    """DeviceProfile keyword arguments (siemens) from the ``conductance`` section; errors go to ``errs``."""
    sec = _section(doc, "conductance", _CONDUCTANCE_KEYS, errs)
    here = "conductance."
    levels = sec.get("levels")
    if levels is not None:
        levels = errs.check(_integer, levels, here + "levels", 2, MAX_LEVELS)
    if sec.get("states_us") is not None:
        return _parse_table(sec, levels, errs)
    for key in ("g_max_us", "on_off_ratio"):
        if sec.get(key) is None:
            errs.add(here + key, "missing required key (give g_max_us and on_off_ratio, or states_us)")
    out: dict[str, Any] = {"levels": levels}
    if "spacing" in sec:
        if levels is None:
            errs.add(here + "spacing", "only applies together with levels")
        elif sec["spacing"] not in _SPACINGS:
            errs.add(here + "spacing", f"must be 'linear' or 'log', got {_describe(sec['spacing'])}")
        else:
            out["spacing"] = sec["spacing"]
    g_max_us = errs.check(_positive, sec["g_max_us"], here + "g_max_us") if "g_max_us" in sec else BAD
    ratio = errs.check(_number, sec["on_off_ratio"], here + "on_off_ratio") if "on_off_ratio" in sec else BAD
    if g_max_us is not BAD:
        warn_implausible(g_max_us, errs.path, here + "g_max_us")
    if ratio is not BAD and ratio <= 1:
        errs.add(here + "on_off_ratio", f"must be > 1, got {ratio!r}")
    elif ratio is not BAD and g_max_us is not BAD:
        out["g_max"] = _canon(g_max_us * 1e-6)
        out["g_min"] = _canon(out["g_max"] / ratio)
        if not 0 < out["g_min"] < out["g_max"]:
            errs.add(here + "on_off_ratio", f"g_max_us / {ratio!r} leaves no usable range")
    return out


def parse_device(mapping: Any, path: str = "<dict>") -> DeviceProfile:
    """Validate an already-parsed schema-1 mapping and build its profile.

    Args:
        mapping: the YAML document as Python data (e.g. from ``yaml.safe_load``).
        path: file name or label used in error messages and stored as ``DeviceProfile.path``.

    Returns:
        The validated :class:`DeviceProfile`, SI units.

    Raises:
        DeviceProfileError: listing every missing, unknown, mistyped or out-of-range field.

    Warns:
        DeviceProfileWarning: for a conductance outside 1 nS to 10 mS (a unit mistake?).
    """
    path = str(path)
    if not isinstance(mapping, Mapping):
        raise DeviceProfileError(path, "<document>", f"must be a mapping, got {type(mapping).__name__}")
    errs = _Errors(path)
    _check_keys(mapping, _REQUIRED_TOP + _OPTIONAL_TOP, _REQUIRED_TOP, errs, "")
    schema = mapping.get("schema", SCHEMA_VERSION)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema != SCHEMA_VERSION:
        errs.add("schema", f"must be {SCHEMA_VERSION} (the schema this xbar reads), got {_describe(schema)}")
    name = mapping.get("name", "-")
    if not isinstance(name, str) or not name:
        errs.add("name", f"must be a non-empty string, got {_describe(name)}")
    kwargs: dict[str, Any] = {"name": name}
    for key in ("description", "source"):
        kwargs[key] = errs.check(_text, mapping.get(key), key)
    if "conductance" in mapping:
        kwargs.update(_parse_conductance(mapping, errs))
    for sec_name, keys in _SECTIONS.items():
        if sec_name not in mapping and sec_name in _REQUIRED_TOP:
            continue  # reported as missing; its keys are not missing too
        required = tuple(keys) if sec_name == "read" else ()
        for key, value in _section(mapping, sec_name, tuple(keys), errs, required).items():
            attr, check, scale = keys[key]
            checked = errs.check(check, value, f"{sec_name}.{key}")
            kwargs[attr] = checked if checked is BAD else to_si(checked, scale)
    if kwargs.get("stuck_off", 0.0) is not BAD and kwargs.get("stuck_on", 0.0) is not BAD:
        _check_faults(kwargs.get("stuck_off", 0.0), kwargs.get("stuck_on", 0.0), errs)
    errs.raise_any()
    return DeviceProfile(path=path, **kwargs)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e-6`` / ``2E5`` (no dot; YAML 1.2) as floats."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc)


def _parse_text(text: str, path: str) -> DeviceProfile:
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python object tags
    except yaml.YAMLError as exc:
        raise DeviceProfileError(path, "<yaml>", f"not valid YAML: {_yaml_reason(exc)}") from None
    return parse_device(doc, path)


def load_device_file(path: str | os.PathLike[str]) -> DeviceProfile:
    """Read and validate one YAML profile file.

    Args:
        path: file system path of a schema-1 YAML file.

    Returns:
        The validated :class:`DeviceProfile`, with ``path`` set to the file.

    Raises:
        DeviceProfileError: if the file cannot be read (missing, a directory, not UTF-8) or
            is not a valid profile.
    """
    label = os.fspath(path)
    try:
        text = Path(label).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeviceProfileError(label, "<file>", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceProfileError(label, "<file>", f"cannot read: {type(exc).__name__}: {exc}") from None
    return _parse_text(text, label)


def _shipped() -> dict[str, Any]:
    """Shipped profile name -> importlib.resources Traversable of its YAML file."""
    root = resources.files(_PACKAGE)
    return {entry.name[: -len(".yaml")]: entry for entry in root.iterdir()
            if entry.name.endswith(".yaml") and entry.is_file()}


def list_devices() -> list[str]:
    """Names of the shipped device profiles.

    Returns:
        Sorted profile names, each loadable with :func:`load_device`.
    """
    return sorted(_shipped())


def load_device(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """Load a shipped profile by name, or a YAML profile file by path.

    An argument ending in ``.yaml``/``.yml`` or containing a path separator (or a
    ``PathLike``) is a file path; otherwise it is a shipped name, falling back to a file of
    that name if one exists.

    Args:
        name_or_path: e.g. ``"seed-4bit"`` or ``"my_devices/pcm.yaml"``.

    Returns:
        The validated :class:`DeviceProfile`.

    Raises:
        DeviceProfileError: unknown name (the message lists close names), missing file, or an
            invalid profile.
    """
    arg = name_or_path
    if not isinstance(arg, str) or arg.endswith((".yaml", ".yml")) or "/" in arg or os.sep in arg:
        return load_device_file(arg)
    shipped = _shipped()
    if arg in shipped:
        return _parse_text(shipped[arg].read_text(encoding="utf-8"), str(shipped[arg]))
    if os.path.isfile(arg):
        return load_device_file(arg)
    close = difflib.get_close_matches(arg, list(shipped), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise DeviceProfileError(arg, "<name>", f"unknown device profile; {hint}"
                             f"shipped profiles: {', '.join(sorted(shipped))}")
