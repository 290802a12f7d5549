"""Sweep grid files (``xbar sweep grid GRID.yaml``): schema, validation, expansion into points.

A grid file is YAML with these top-level keys (README, "Sweeps")::

    name: devices-sigma-T             # optional label (default: the file's stem)
    model:                            # exactly one of checkpoint / zoo
      checkpoint: ann.pt              # a float ANN saved with xbar.save (relative to the grid file)
      zoo: mlp                        # or a zoo model (xbar.models), trained train_epochs on the
      train_epochs: 1                 #   dataset's train split and cached in the output folder
    data:
      dataset: mnist                  # mnist | synthetic (a small stand-in, for tests)
      split: test                     # test | val: the images every point is evaluated on
      size: 500                       # how many of them (default: all)
      batch_size: 250
      calibration: 500                # training images for threshold balancing / ADC ranges
      train_size: null                # training images for a zoo model (default: all)
    fixed: {max_rate: 1.0}            # point keys held at one value
    axes:                             # point keys swept: the grid is their product
      device: [seed-4bit, pcm]
      noise.programming_sigma: [0.0, 0.02]
      timesteps: [8, 32]
    measure: [accuracy, energy, spikes]
    plots: [[noise.programming_sigma, device]]   # x axis, one line per value of the second

Point keys: ``device`` (a shipped name or a YAML path), ``timesteps``, ``max_rate``, ``seed``
(the chip: defect map, programming and read noise, input spikes), ``drift_time_s``,
``drift_compensation``, ``tile`` (rows and columns per array) and any device field as
``section.key`` of the profile schema (docs/devices.md), e.g. ``noise.programming_sigma`` or
``periphery.adc_bits``. Overriding a scalar that a profile models per conductance
(``noise.programming_sigma``, ``drift.nu``, ``drift.nu_sigma``) drops that model
(:data:`SCALAR_REPLACES`), so the scalar is what the point sweeps.

Every problem is reported (:class:`GridError`, one ``FILE: key: reason`` each), unknown keys with
the list of known ones. :func:`point_key` / :func:`point_seed` are stable hashes of a point's
values (SHA-256 of canonical JSON, not Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from .device import DeviceProfile, DeviceProfileError, load_device, parse_device

TOP_KEYS = ("name", "model", "data", "fixed", "axes", "measure", "plots")
MODEL_KEYS = ("checkpoint", "zoo", "train_epochs", "lr")
DATA_KEYS = ("dataset", "split", "size", "batch_size", "calibration", "train_size")
DATASETS = ("mnist", "synthetic")
SPLITS = ("test", "val")
MEASURES = ("accuracy", "energy", "spikes")
# point keys other than device fields, with their defaults
POINT_DEFAULTS: dict[str, Any] = {"device": "seed-4bit", "timesteps": 32, "max_rate": 1.0, "seed": 0,
                                  "drift_time_s": 0.0, "drift_compensation": True, "tile": None}
DATA_DEFAULTS: dict[str, Any] = {"dataset": "mnist", "split": "test", "size": None, "batch_size": 250,
                                 "calibration": 500, "train_size": None}


# A scalar device field overridden by a grid replaces the conductance-dependent models of it.
SCALAR_REPLACES = {
    "noise.programming_sigma": ("noise.programming_sigma_poly_us", "noise.programming_sigma_states_us"),
    "drift.nu": ("drift.nu_ln_coeffs", "drift.nu_range", "drift.nu_states"),
    "drift.nu_sigma": ("drift.nu_sigma_ln_coeffs", "drift.nu_sigma_range", "drift.nu_sigma_states"),
}


class GridError(ValueError):
    """A grid file that does not validate: ``errors`` holds every ``(key, reason)``."""

    def __init__(self, path: str, errors: list[tuple[str, str]]) -> None:
        self.path, self.errors = str(path), list(errors)
        super().__init__("\n".join(f"{self.path}: {k}: {r}" for k, r in self.errors))


def _device_fields() -> tuple[str, ...]:
    """``section.key`` of every overridable device field (the schema-1 sections, not conductance)."""
    doc = load_device("ideal").to_dict()
    return tuple(f"{sec}.{key}" for sec, body in doc.items() if isinstance(body, dict) for key in body)


def known_point_keys() -> tuple[str, ...]:
    """Every key a grid's ``axes`` / ``fixed`` may name."""
    return tuple(POINT_DEFAULTS) + _device_fields()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and v == v


def _check_value(key: str, v: Any) -> tuple[Any, str | None]:
    """``(canonical value, None)`` or ``(None, reason)`` for one value of point key ``key``."""
    if key == "device":
        return (v, None) if isinstance(v, str) and v else (None, f"{v!r} is not a device name or path")
    if key in ("timesteps", "seed"):
        low = 1 if key == "timesteps" else 0
        return (v, None) if _is_int(v) and v >= low else (None, f"{v!r} is not an integer >= {low}")
    if key == "tile":
        return (v, None) if v is None or (_is_int(v) and v >= 1) else (None, f"{v!r} is not an integer >= 1 or null")
    if key == "max_rate":
        return (float(v), None) if _is_number(v) and 0 < v <= 1 else (None, f"{v!r} is not a number in (0, 1]")
    if key == "drift_time_s":
        return (float(v), None) if _is_number(v) and v >= 0 else (None, f"{v!r} is not a number >= 0")
    if key == "drift_compensation":
        return (v, None) if isinstance(v, bool) else (None, f"{v!r} is not true or false")
    # a device field: its own checks run when the profile is built (see point_profile)
    if v is None or isinstance(v, (str, bool)) or _is_int(v):
        return v, None
    if _is_number(v):
        return float(v), None
    return None, f"{v!r} is not a number, string, boolean or null"


def _kind(key: str) -> str:
    return {"device": "names or paths", "drift_compensation": "booleans"}.get(key, "numbers")


def _check_mapping(doc: Any, where: str, known: tuple[str, ...], errs: list) -> dict:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        errs.append((where, f"must be a mapping, got {type(doc).__name__}"))
        return {}
    for k in doc:
        if k not in known:
            errs.append((f"{where}.{k}" if where else str(k), f"unknown key; known: {', '.join(known)}"))
    return {k: v for k, v in doc.items() if k in known}


def _check_points(section: str, doc: Any, known: tuple[str, ...], errs: list, listed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _check_mapping(doc, section, known, errs).items():
        where = f"{section}.{key}"
        if listed:
            if not isinstance(value, list) or not value:
                errs.append((where, f"must be a non-empty list of {_kind(key)}"))
                continue
            bad = [r for r in (_check_value(key, v)[1] for v in value) if r]
            if bad:
                errs.append((where, f"must be a list of {_kind(key)}: {bad[0]}"))
                continue
            vals = [_check_value(key, v)[0] for v in value]
            if len({json.dumps(v) for v in vals}) != len(vals):
                errs.append((where, "has repeated values"))
                continue
            out[key] = vals
        else:
            val, reason = _check_value(key, value)
            if reason:
                errs.append((where, reason))
            else:
                out[key] = val
    return out


def _check_model(doc: Any, base: Path, errs: list) -> dict:
    m = _check_mapping(doc, "model", MODEL_KEYS, errs)
    if doc is None:
        errs.append(("model", "required: a mapping with checkpoint (an xbar.save file) or zoo (a model name)"))
        return {}
    if ("checkpoint" in m) == ("zoo" in m):
        errs.append(("model", "give exactly one of checkpoint (an xbar.save file) or zoo (a model name)"))
    if "checkpoint" in m:
        if not isinstance(m["checkpoint"], str):
            errs.append(("model.checkpoint", "must be a file path"))
        else:
            path = (base / m["checkpoint"]).resolve()
            if not path.is_file():
                errs.append(("model.checkpoint", f"{m['checkpoint']}: no such file"))
            m["checkpoint"] = str(path)
        for k in ("train_epochs", "lr"):
            if k in m:
                errs.append((f"model.{k}", "only with zoo (a checkpoint is already trained)"))
    if "zoo" in m:
        from xbar.models import MODELS

        if m["zoo"] not in MODELS:
            errs.append(("model.zoo", f"unknown model {m['zoo']!r}; known: {', '.join(sorted(MODELS))}"))
        m.setdefault("train_epochs", 1)
        m.setdefault("lr", 1e-3)
        if not _is_int(m["train_epochs"]) or m["train_epochs"] < 0:
            errs.append(("model.train_epochs", f"must be an integer >= 0, got {m['train_epochs']!r}"))
        if not _is_number(m["lr"]) or m["lr"] <= 0:
            errs.append(("model.lr", f"must be a number > 0, got {m['lr']!r}"))
    return m


def _check_data(doc: Any, errs: list) -> dict:
    d = {**DATA_DEFAULTS, **_check_mapping(doc, "data", DATA_KEYS, errs)}
    if d["dataset"] not in DATASETS:
        errs.append(("data.dataset", f"must be one of {', '.join(DATASETS)}, got {d['dataset']!r}"))
    if d["split"] not in SPLITS:
        errs.append(("data.split", f"must be one of {', '.join(SPLITS)}, got {d['split']!r}"))
    for k in ("size", "batch_size", "calibration", "train_size"):
        optional = k in ("size", "train_size")
        if not ((optional and d[k] is None) or (_is_int(d[k]) and d[k] >= 1)):
            errs.append((f"data.{k}", f"must be an integer >= 1{' or null' if optional else ''}, got {d[k]!r}"))
    return d


def _check_list(doc: Any, key: str, errs: list) -> list:
    if doc is None:
        return []
    if not isinstance(doc, list):
        errs.append((key, "must be a list"))
        return []
    return doc


def validate_grid(doc: Any, path: str | os.PathLike = "<grid>") -> dict:
    """Check a parsed grid file and fill its defaults.

    Args:
        doc: the YAML document as Python data.
        path: the file (errors name it; relative checkpoint / device paths resolve beside it).

    Returns:
        ``{"name", "model", "data", "fixed", "axes", "measure", "plots"}``: ``fixed`` holds every
        point key that is not an axis (defaults included), device paths made absolute.

    Raises:
        GridError: listing every problem, each naming its key.
    """
    errs: list[tuple[str, str]] = []
    base = Path(path).parent if str(path) != "<grid>" else Path.cwd()
    if not isinstance(doc, Mapping):
        raise GridError(str(path), [("<document>", f"must be a mapping, got {type(doc).__name__}")])
    top = _check_mapping(doc, "", TOP_KEYS, errs)
    known = known_point_keys()
    name = top.get("name", Path(path).stem)
    if not isinstance(name, str) or not name:
        errs.append(("name", f"must be a non-empty string, got {name!r}"))
    model = _check_model(top.get("model"), base, errs)
    data = _check_data(top.get("data"), errs)
    axes = _check_points("axes", top.get("axes"), known, errs, listed=True)
    if not axes and not any(k.startswith("axes") for k, _ in errs):
        errs.append(("axes", "must be a non-empty mapping of point keys to lists of values; known keys: "
                     + ", ".join(known)))
    fixed = _check_points("fixed", top.get("fixed"), known, errs, listed=False)
    for key in set(fixed) & set(axes):
        errs.append((f"fixed.{key}", "is also an axis; give it in one place"))
    fixed = {**{k: v for k, v in POINT_DEFAULTS.items() if k not in axes}, **fixed}
    measure = _check_list(top.get("measure", ["accuracy"]), "measure", errs)
    for m in measure:
        if m not in MEASURES:
            errs.append(("measure", f"unknown measure {m!r}; known: {', '.join(MEASURES)}"))
    if not measure and "measure" in top:
        errs.append(("measure", f"must name at least one of {', '.join(MEASURES)}"))
    plots = _check_list(top.get("plots"), "plots", errs)
    for i, pair in enumerate(plots):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(a, str) for a in pair)):
            errs.append((f"plots[{i}]", f"must be a pair [x_axis, series_axis], got {pair!r}"))
            continue
        for a in pair:
            if a not in axes:
                errs.append((f"plots[{i}]", f"{a!r} is not an axis of this grid; axes: {', '.join(axes)}"))
    _resolve_devices(axes, fixed, base)
    grid = {"name": name, "model": model, "data": data, "fixed": fixed, "axes": axes, "measure": measure,
            "plots": plots}
    if not any(k.startswith(("axes", "fixed")) for k, _ in errs):
        _check_profiles(grid, errs)
    if errs:
        raise GridError(str(path), errs)
    return grid


def _resolve_devices(axes: dict, fixed: dict, base: Path) -> None:
    """Device paths (a ``.yaml``/``.yml`` name or one with a slash) made absolute, in place."""
    def one(v: Any) -> Any:
        if isinstance(v, str) and (v.endswith((".yaml", ".yml")) or "/" in v or os.sep in v):
            return str((base / v).resolve())
        return v

    if "device" in axes:
        axes["device"] = [one(v) for v in axes["device"]]
    if "device" in fixed:
        fixed["device"] = one(fixed["device"])


def _check_profiles(grid: dict, errs: list) -> None:
    """Build the profile of every device x value of each device-field axis; errors name the axis."""
    fields = set(_device_fields()) | {"tile"}
    devices = grid["axes"]["device"] if "device" in grid["axes"] else [grid["fixed"]["device"]]
    base_fixed = {k: v for k, v in grid["fixed"].items() if k in fields}
    for dev in devices:
        try:
            load_device(dev)
        except DeviceProfileError as exc:
            errs.append(("axes.device" if "device" in grid["axes"] else "fixed.device", str(exc).splitlines()[0]))
            continue
        for key, values in [(k, v) for k, v in grid["axes"].items() if k in fields] or [("fixed", [None])]:
            for v in values:
                over = dict(base_fixed) if key == "fixed" else {**base_fixed, key: v}
                try:
                    point_profile({"device": dev, **over})
                except DeviceProfileError as exc:
                    where = "fixed" if key == "fixed" else f"axes.{key}"
                    errs.append((where, f"{v!r} on device {Path(dev).stem}: "
                                 + "; ".join(f"{f}: {r}" for f, r in exc.errors)))


def load_grid(path: str | os.PathLike) -> dict:
    """Read and validate a grid file (see :func:`validate_grid`).

    Raises:
        GridError: the file is missing, not YAML, or does not validate.
    """
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GridError(str(p), [("<file>", exc.strerror or str(exc))]) from None
    except yaml.YAMLError as exc:
        raise GridError(str(p), [("<document>", f"not valid YAML: {' '.join(str(exc).split())}")]) from None
    return validate_grid(doc, p)


def expand(grid: dict) -> list[dict]:
    """Every point of the grid: the product of the axes (in file order, the last fastest), each a
    dict of every axis value plus the fixed keys."""
    names = list(grid["axes"])
    return [{**dict(zip(names, combo)), **grid["fixed"]}
            for combo in itertools.product(*(grid["axes"][n] for n in names))]


def canonical(point: Mapping[str, Any]) -> str:
    """The point as canonical JSON (sorted keys, no spaces): what the stable hashes digest."""
    return json.dumps(dict(point), sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_key(point: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit name of a point (its result file is ``points/KEY.json``)."""
    return hashlib.sha256(canonical(point).encode()).hexdigest()[:16]


def point_seed(point: Mapping[str, Any], stream: int = 0) -> int:
    """A stable seed in ``[0, 2**62)`` from a point's values; ``stream`` gives independent seeds."""
    digest = hashlib.sha256(f"{stream}:{canonical(point)}".encode()).hexdigest()
    return int(digest[:16], 16) >> 2


def point_profile(point: Mapping[str, Any]) -> DeviceProfile:
    """The point's device profile: its ``device`` with its device-field overrides and ``tile``.

    Raises:
        DeviceProfileError: an override the profile schema refuses (naming the field).
    """
    prof = load_device(point["device"])
    overrides = {k: v for k, v in point.items() if "." in k}
    if point.get("tile") is not None:
        overrides.setdefault("periphery.tile_rows", point["tile"])
        overrides.setdefault("periphery.tile_cols", point["tile"])
    if not overrides:
        return prof
    doc = prof.to_dict()
    for key, models in SCALAR_REPLACES.items():  # a scalar override replaces the profile's G-dependent model
        if key in overrides:
            for m in models:
                sec, field = m.split(".", 1)
                if m not in overrides and field in doc.get(sec, {}):
                    doc[sec][field] = None
    for key, value in overrides.items():
        sec, field = key.split(".", 1)
        doc[sec][field] = value
    return parse_device(doc, f"{prof.name}+grid")
