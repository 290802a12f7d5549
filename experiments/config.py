"""Study configurations: YAML files under ``experiments/configs/``, validated against the default.

A user's file may leave out any key (the default from ``ee518.yaml`` applies) but may not add
one: an unknown or mistyped key is an error that names the file and the key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT = "ee518"
MODES = ("vanilla", "spike-norm", "percentile", "surrogate", "surrogate-hybrid", "spike-norm+surrogate", "qcfs")
PROCEDURES = ("study", "hardware-aware")


class ConfigError(ValueError):
    """A study configuration that cannot be used; the message names the file and the key."""


def list_configs() -> list[str]:
    """Names of the shipped study configurations."""
    files = resources.files("xbar.experiments.configs").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml") and not f.name.startswith("robustness"))


def _read(name_or_path: str | Path) -> tuple[dict, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: no such study configuration file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    else:
        entry = resources.files("xbar.experiments.configs") / f"{name_or_path}.yaml"
        if not entry.is_file():
            raise ConfigError(f"{name_or_path}: unknown study configuration; shipped: {', '.join(list_configs())}")
        text, where = entry.read_text(encoding="utf-8"), f"configs/{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the document must be a mapping of keys to values")
    return data, where


_REMOVED = {
    "energy": "removed: the energy table is measured in the timestep sweep's test pass (the test "
              "images of data.test_limit, at each mode's best T), so it agrees with timesteps.csv",
}


def _merge(default: dict, user: dict, where: str, prefix: str = "") -> dict:
    out = copy.deepcopy(default)
    for key, value in user.items():
        field = f"{prefix}{key}"
        if field in _REMOVED and key not in default:
            raise ConfigError(f"{where}: {field}: {_REMOVED[field]}; delete the key")
        if key not in default:
            raise ConfigError(f"{where}: {field}: unknown key (expected one of {', '.join(map(str, default))})")
        if isinstance(default[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {field}: must be a mapping")
            out[key] = _merge(default[key], value, where, field + ".")
        else:
            out[key] = value
    return out


def _check(cfg: dict, where: str) -> None:
    def fail(field: str, msg: str) -> None:
        raise ConfigError(f"{where}: {field}: {msg}")

    for mode in cfg["modes"]:
        if mode not in MODES:
            fail("modes", f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    for proc in cfg["constrain"]["procedures"]:
        if proc not in PROCEDURES:
            fail("constrain.procedures", f"unknown procedure {proc!r}; choose from {', '.join(PROCEDURES)}")
    for variant in cfg["constrain"]["snn_variants"]:
        parts = str(variant).split("/")
        if len(parts) != 2 or parts[0] not in ("clip", "differential") or parts[1] not in PROCEDURES:
            fail("constrain.snn_variants", f"{variant!r} is not MAPPING/PROCEDURE (e.g. clip/study)")
    ts = cfg["timesteps"]
    if not ts or any(not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in ts) or sorted(ts) != ts:
        fail("timesteps", "must be a non-empty ascending list of integers >= 1")
    for field in ("seeds",):
        if not isinstance(cfg[field], int) or cfg[field] < 1:
            fail(field, f"must be an integer >= 1, got {cfg[field]!r}")
    for key in ("adc_pj", "neuron_update_pj", "spike_pj"):
        value = cfg["periphery_estimate"][key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            fail(f"periphery_estimate.{key}", f"must be a number of pJ >= 0, got {value!r}")
    r = cfg["rates"]
    if not (0 < float(r["start"]) <= float(r["stop"]) <= 1) or int(r["count"]) < 1:
        fail("rates", "need 0 < start <= stop <= 1 and count >= 1")
    if not 0 < float(cfg["encoder"]["max_rate"]) <= 1:
        fail("encoder.max_rate", "must be in (0, 1]")
    for field, value in (("ann.epochs", cfg["ann"]["epochs"]), ("surrogate.epochs", cfg["surrogate"]["epochs"]),
                         ("constrain.epochs", cfg["constrain"]["epochs"]), ("qcfs.epochs", cfg["qcfs"]["epochs"])):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            fail(field, f"must be an integer >= 0, got {value!r}")
    _check_lowt(cfg, fail)


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value < float("inf")


def _count(value: Any, low: int = 1) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


def _check_lowt(cfg: dict, fail: Any) -> None:
    """The keys of the hybrid fix (``surrogate.finetune_lr``, ``surrogate.v_init``), of the
    ``qcfs`` mode and of the low-T study (``lowt``)."""
    s, q, low = cfg["surrogate"], cfg["qcfs"], cfg["lowt"]
    if not _positive(s["finetune_lr"]):
        fail("surrogate.finetune_lr", f"must be a number > 0, got {s['finetune_lr']!r}")
    v = s["v_init"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        fail("surrogate.v_init", f"must be a fraction of the threshold in [0, 1), got {s['v_init']!r}")
    if not _count(q["levels"]):
        fail("qcfs.levels", f"must be an integer >= 1, got {q['levels']!r}")
    if not _positive(q["clip"]):
        fail("qcfs.clip", f"must be a number > 0 (the initial clip), got {q['clip']!r}")
    if not _positive(q["lr"]):
        fail("qcfs.lr", f"must be a number > 0, got {q['lr']!r}")
    if not _count(q["input_noise"], 0):
        fail("qcfs.input_noise", f"must be an integer >= 0 (Poisson frames; 0: off), got {q['input_noise']!r}")
    if q["init"] not in ("ann", "scratch"):
        fail("qcfs.init", f"must be 'ann' (from the trained ANN) or 'scratch', got {q['init']!r}")
    if not isinstance(low["enabled"], bool):
        fail("lowt.enabled", f"must be true or false, got {low['enabled']!r}")
    for key in ("timesteps", "hybrid_timesteps"):
        ts = low[key]
        if not isinstance(ts, list) or not ts or not all(_count(t) for t in ts) or sorted(set(ts)) != ts:
            fail(f"lowt.{key}", f"must be a non-empty ascending list of distinct integers >= 1, got {ts!r}")
    missing = [t for t in low["hybrid_timesteps"] if t not in low["timesteps"]]
    if missing:
        fail("lowt.hybrid_timesteps", f"{missing} not in lowt.timesteps (each hybrid is compared at its own T)")
    for key in ("finetune_samples", "test_limit"):
        if low[key] is not None and not _count(low[key]):
            fail(f"lowt.{key}", f"must be null or an integer >= 1, got {low[key]!r}")


def load_config(name_or_path: str | Path = DEFAULT, overrides: dict[str, Any] | None = None) -> dict:
    """Load and validate a study configuration.

    Args:
        name_or_path: a shipped configuration name (``ee518``, ``quick``) or a YAML path.
        overrides: dotted keys to replace after loading, e.g. ``{"seeds": 1}``.

    Returns:
        The complete configuration (defaults filled in).

    Raises:
        ConfigError: naming the file and key of the first problem.
    """
    cfg, where = read_merged(DEFAULT, name_or_path, overrides)
    _check(cfg, where)
    return cfg


def read_merged(default_name: str, name_or_path: str | Path,
                overrides: dict[str, Any] | None = None) -> tuple[dict, str]:
    """A configuration merged over the shipped ``default_name`` (unknown keys refused), with
    dotted ``overrides`` applied; returns it and where it came from (for error messages)."""
    default, _ = _read(default_name)
    user, where = _read(name_or_path)
    cfg = _merge(default, user, where)
    for dotted, value in (overrides or {}).items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override: {dotted}: unknown key")
            node = node[p]
        if leaf not in node:
            raise ConfigError(f"override: {dotted}: unknown key")
        node[leaf] = value
    return cfg, where
