"""Device profiles: shipped files, validation, round trips (xbar.device)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbar.device import (
    DeviceProfile,
    DeviceProfileError,
    list_devices,
    load_device,
    load_device_file,
    parse_device,
)

SHIPPED = list_devices()
LITERATURE = [n for n in SHIPPED if n not in ("ideal", "seed-4bit")]

BASE: dict[str, Any] = {
    "schema": 1,
    "name": "test-device",
    "description": "a valid profile the rejection cases start from",
    "source": "tests",
    "conductance": {"g_max_us": 100.0, "on_off_ratio": 10.0, "levels": 16, "spacing": "linear"},
    "read": {"voltage_v": 0.2, "pulse_ns": 10.0},
    "noise": {"programming_sigma": 0.0, "read_sigma": 0.0, "d2d_sigma": 0.0},
    "faults": {"stuck_off": 0.0, "stuck_on": 0.0},
    "drift": {"nu": 0.0, "t0_s": 20.0},
    "periphery": {"adc_bits": None, "dac_bits": None, "tile_rows": None, "tile_cols": None},
    "energy": {"adc_pj": 0.0, "neuron_update_pj": 0.0, "spike_pj": 0.0,
               "digital_ac_pj": 0.9, "digital_mac_pj": 4.6},
}


# --- shipped profiles -------------------------------------------------------------------------

def test_at_least_six_profiles_are_shipped_and_sorted() -> None:
    assert SHIPPED == sorted(SHIPPED)
    assert {"ideal", "seed-4bit"} <= set(SHIPPED)
    assert len(LITERATURE) >= 4


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name: str) -> None:
    dev = load_device(name)
    assert isinstance(dev, DeviceProfile)
    assert dev.name == name
    assert 0 < dev.g_min < dev.g_max
    assert dev.on_off_ratio == pytest.approx(dev.g_max / dev.g_min)
    assert dev.read_voltage > 0 and dev.read_time > 0
    assert dev.path is not None and Path(dev.path).name == f"{name}.yaml"
    if dev.states is not None:
        assert len(dev.states) == dev.levels
        assert all(b > a for a, b in zip(dev.states, dev.states[1:]))
        assert dev.states[0] == dev.g_min and dev.states[-1] == dev.g_max


@pytest.mark.parametrize("name", LITERATURE)
def test_literature_profiles_cite_their_source(name: str) -> None:
    dev = load_device(name)
    assert len(dev.source) > 40
    assert any(ch.isdigit() for ch in dev.source)  # a year or a figure


def test_seed_4bit_is_the_design_example() -> None:
    dev = load_device("seed-4bit")
    expected = np.linspace(10e-6, 100e-6, 16)
    assert dev.levels == 16 and dev.spacing == "linear"
    assert len(dev.states) == 16
    assert dev.states == pytest.approx(expected.tolist(), rel=1e-12, abs=0)
    assert dev.g_min == 10e-6 and dev.g_max == 100e-6
    assert dev.on_off_ratio == pytest.approx(10.0, rel=1e-12)
    assert (dev.read_voltage, dev.read_time) == (0.2, 10e-9)
    assert dev.programming_sigma == dev.read_sigma == dev.d2d_sigma == 0.0


def test_ideal_is_continuous_and_noiseless() -> None:
    dev = load_device("ideal")
    assert dev.is_continuous and dev.states is None and dev.levels is None
    assert dev.state_tensor() is None
    assert dev.programming_sigma == dev.read_sigma == dev.d2d_sigma == 0.0
    assert dev.stuck_off == dev.stuck_on == dev.drift_nu == 0.0
    assert dev.adc_bits is None and dev.dac_bits is None and dev.tile_rows is None
    assert "float" in dev.description


@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_through_yaml(name: str) -> None:
    dev = load_device(name)
    again = parse_device(yaml.safe_load(dev.to_yaml()))
    assert again == dev
    assert parse_device(dev.to_dict()) == dev


def test_state_tensor_dtype_and_values() -> None:
    dev = load_device("seed-4bit")
    t = dev.state_tensor(dtype=torch.float64)
    assert t.dtype == torch.float64 and t.shape == (16,)
    assert torch.equal(t, torch.tensor(dev.states, dtype=torch.float64))
    assert dev.state_tensor().dtype == torch.float32


# --- construction, tables, replace --------------------------------------------------------------

def test_explicit_table_round_trips_and_derives_range() -> None:
    doc = copy.deepcopy(BASE)
    doc["conductance"] = {"states_us": [1.0, 2.5, 7.0, 30.0]}
    dev = parse_device(doc, path="table.yaml")
    assert dev.levels == 4 and dev.g_min == 1e-6 and dev.g_max == 30e-6
    assert dev.states == pytest.approx((1e-6, 2.5e-6, 7e-6, 30e-6), rel=1e-12)
    assert dev.to_dict()["conductance"] == {"states_us": [1.0, 2.5, 7.0, 30.0]}
    assert parse_device(yaml.safe_load(dev.to_yaml())) == dev


def test_table_with_agreeing_range_and_levels_is_accepted() -> None:
    doc = copy.deepcopy(BASE)
    doc["conductance"] = {"states_us": [1.0, 2.0, 4.0], "g_max_us": 4.0, "on_off_ratio": 4.0, "levels": 3}
    assert parse_device(doc).levels == 3


def test_log_spacing_is_geometric() -> None:
    doc = copy.deepcopy(BASE)
    doc["conductance"] = {"g_max_us": 100.0, "on_off_ratio": 100.0, "levels": 5, "spacing": "log"}
    dev = parse_device(doc)
    assert dev.states == pytest.approx(np.geomspace(1e-6, 100e-6, 5).tolist(), rel=1e-11)
    assert parse_device(dev.to_dict()) == dev


def test_direct_construction_is_validated() -> None:
    dev = DeviceProfile(name="d", g_min=1e-6, g_max=4e-6, levels=4)
    assert dev.states == pytest.approx((1e-6, 2e-6, 3e-6, 4e-6), rel=1e-12)
    with pytest.raises(DeviceProfileError, match="conductance.levels"):
        DeviceProfile(name="d", g_min=1e-6, g_max=4e-6, levels=1)
    with pytest.raises(DeviceProfileError, match="noise.read_sigma"):
        DeviceProfile(name="d", g_min=1e-6, g_max=4e-6, read_sigma=-0.1)


def test_replace_revalidates_and_regenerates_the_table() -> None:
    dev = load_device("seed-4bit")
    four = dev.replace(levels=4)
    assert four.states == pytest.approx((10e-6, 40e-6, 70e-6, 100e-6), rel=1e-12)
    assert dev.replace(levels=None).is_continuous
    table = dev.replace(states=(1e-6, 2e-6, 5e-6))
    assert (table.levels, table.g_min, table.g_max) == (3, 1e-6, 5e-6)
    assert dev.replace(read_sigma=0.01).read_sigma == 0.01
    with pytest.raises(DeviceProfileError, match="noise.programming_sigma"):
        dev.replace(programming_sigma=-1.0)
    with pytest.raises(DeviceProfileError):
        dev.replace(states=(2e-6, 1e-6))


def test_path_is_not_compared_and_profiles_hash() -> None:
    a = load_device("seed-4bit")
    b = parse_device(a.to_dict(), path="elsewhere.yaml")
    assert a == b and hash(a) == hash(b) and a.path != b.path


# --- loading by name / path -----------------------------------------------------------------------

def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(DeviceProfileError) as info:
        load_device("seed4bit")
    assert "seed-4bit" in str(info.value) and info.value.field == "<name>"


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DeviceProfileError) as info:
        load_device(str(missing))
    assert str(missing) in str(info.value) and info.value.field == "<file>"
    with pytest.raises(DeviceProfileError):
        load_device_file(tmp_path)  # a directory


def test_load_by_path_and_pathlike(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(BASE))
    assert load_device(str(f)).name == "test-device"
    assert load_device(f) == load_device(str(f))
    assert load_device(f).path == str(f)


def test_yaml_1_1_exponent_strings_are_numbers(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE).replace("g_max_us: 100.0", "g_max_us: 1e2").replace(
        "pulse_ns: 10.0", "pulse_ns: 1e1")
    assert isinstance(yaml.safe_load(text)["conductance"]["g_max_us"], str)  # what YAML 1.1 does
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    dev = load_device_file(f)
    assert dev.g_max == 100e-6 and dev.read_time == 10e-9
    assert dev == parse_device(BASE)


def test_python_object_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.yaml"
    f.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(DeviceProfileError) as info:
        load_device_file(f)
    assert info.value.field == "<yaml>" and str(f) in str(info.value)
    assert not marker.exists()


def test_error_pickles() -> None:
    import pickle

    err = DeviceProfileError("f.yaml", "read.voltage_v", "must be > 0")
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.field, str(again)) == (err.path, err.field, str(err))


# --- one case per rejection category ---------------------------------------------------------------

def _edit(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    fn(doc)
    return doc


def _set(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d[section].__setitem__(key, value)


def _table(**cond: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__("conductance", dict(cond))


REJECTED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing-top-key", lambda d: d.pop("conductance"), "conductance"),
    ("missing-read", lambda d: d.pop("read"), "read"),
    ("missing-nested-key", lambda d: d["read"].pop("voltage_v"), "read.voltage_v"),
    ("missing-g-max", lambda d: d["conductance"].pop("g_max_us"), "conductance.g_max_us"),
    ("missing-ratio", lambda d: d["conductance"].pop("on_off_ratio"), "conductance.on_off_ratio"),
    ("unknown-top-key", lambda d: d.__setitem__("colour", "red"), "colour"),
    ("unknown-nested-key", _set("noise", "programing_sigma", 0.1), "noise.programing_sigma"),
    ("unknown-conductance-key", _set("conductance", "g_min_us", 1.0), "conductance.g_min_us"),
    ("bool-is-not-a-number", _set("conductance", "g_max_us", True), "conductance.g_max_us"),
    ("list-is-not-a-number", _set("read", "voltage_v", [0.2]), "read.voltage_v"),
    ("word-is-not-a-number", _set("noise", "read_sigma", "small"), "noise.read_sigma"),
    ("zero-conductance", _set("conductance", "g_max_us", 0.0), "conductance.g_max_us"),
    ("negative-conductance", _set("conductance", "g_max_us", -5.0), "conductance.g_max_us"),
    ("ratio-below-one", _set("conductance", "on_off_ratio", 0.5), "conductance.on_off_ratio"),
    ("ratio-of-one", _set("conductance", "on_off_ratio", 1), "conductance.on_off_ratio"),
    ("one-level", _set("conductance", "levels", 1), "conductance.levels"),
    ("fractional-levels", _set("conductance", "levels", 2.5), "conductance.levels"),
    ("bool-levels", _set("conductance", "levels", True), "conductance.levels"),
    ("states-descending", _table(states_us=[1.0, 3.0, 2.0]), "conductance.states_us[2]"),
    ("states-repeated", _table(states_us=[1.0, 1.0, 2.0]), "conductance.states_us[1]"),
    ("states-non-positive", _table(states_us=[0.0, 1.0, 2.0]), "conductance.states_us[0]"),
    ("states-single", _table(states_us=[1.0]), "conductance.states_us"),
    ("states-not-a-list", _table(states_us=5.0), "conductance.states_us"),
    ("states-levels-mismatch", _table(states_us=[1.0, 2.0, 3.0], levels=4), "conductance.levels"),
    ("states-g-max-disagrees", _table(states_us=[1.0, 2.0], g_max_us=3.0), "conductance.g_max_us"),
    ("states-ratio-disagrees", _table(states_us=[1.0, 2.0], on_off_ratio=3.0), "conductance.on_off_ratio"),
    ("states-with-spacing", _table(states_us=[1.0, 2.0], spacing="log"), "conductance.spacing"),
    ("spacing-without-levels", _table(g_max_us=1.0, on_off_ratio=2.0, spacing="log"), "conductance.spacing"),
    ("unknown-spacing", _set("conductance", "spacing", "cubic"), "conductance.spacing"),
    ("negative-programming-sigma", _set("noise", "programming_sigma", -0.1), "noise.programming_sigma"),
    ("negative-d2d-sigma", _set("noise", "d2d_sigma", -1), "noise.d2d_sigma"),
    ("negative-fault-fraction", _set("faults", "stuck_off", -0.01), "faults.stuck_off"),
    ("fault-fraction-above-one", _set("faults", "stuck_on", 1.5), "faults.stuck_on"),
    ("faults-sum-above-one", lambda d: d.__setitem__("faults", {"stuck_off": 0.6, "stuck_on": 0.6}), "faults"),
    ("zero-read-voltage", _set("read", "voltage_v", 0.0), "read.voltage_v"),
    ("negative-read-pulse", _set("read", "pulse_ns", -1.0), "read.pulse_ns"),
    ("negative-drift-t0", _set("drift", "t0_s", -20.0), "drift.t0_s"),
    ("negative-energy", _set("energy", "adc_pj", -1.0), "energy.adc_pj"),
    ("zero-adc-bits", _set("periphery", "adc_bits", 0), "periphery.adc_bits"),
    ("one-adc-bit", _set("periphery", "adc_bits", 1), "periphery.adc_bits"),
    ("fractional-dac-bits", _set("periphery", "dac_bits", 2.5), "periphery.dac_bits"),
    ("string-adc-bits", _set("periphery", "adc_bits", "8"), "periphery.adc_bits"),
    ("zero-tile-rows", _set("periphery", "tile_rows", 0), "periphery.tile_rows"),
    ("negative-tile-cols", _set("periphery", "tile_cols", -128), "periphery.tile_cols"),
    ("schema-2", lambda d: d.__setitem__("schema", 2), "schema"),
    ("schema-string", lambda d: d.__setitem__("schema", "1"), "schema"),
    ("nan", _set("noise", "read_sigma", float("nan")), "noise.read_sigma"),
    ("inf", _set("conductance", "g_max_us", float("inf")), "conductance.g_max_us"),
    ("nan-string", _set("drift", "nu", "nan"), "drift.nu"),
    ("overflowing-string", _set("energy", "spike_pj", "1e999"), "energy.spike_pj"),
    ("name-not-a-string", lambda d: d.__setitem__("name", 42), "name"),
    ("empty-name", lambda d: d.__setitem__("name", ""), "name"),
    ("description-not-a-string", lambda d: d.__setitem__("description", ["a"]), "description"),
    ("section-not-a-mapping", lambda d: d.__setitem__("noise", 5), "noise"),
]


@pytest.mark.parametrize(("case", "fn", "field"), REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected(tmp_path: Path, case: str, fn: Callable[[dict[str, Any]], None], field: str) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(_edit(fn), sort_keys=False))
    with pytest.raises(DeviceProfileError) as info:
        load_device_file(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(path) and err.field == field
    assert str(err).startswith(f"{path}: {field}: ")
    assert "\n" not in str(err)


RAW_REJECTED = [
    ("syntax-error", "schema: 1\nname: [unclosed\n", "<yaml>"),
    ("tab-indent", "schema: 1\nread:\n\tvoltage_v: 0.2\n", "<yaml>"),
    ("python-tag", "!!python/object/apply:os.system ['true']\n", "<yaml>"),
    ("python-name", "schema: !!python/name:os.system\n", "<yaml>"),
    ("list-document", "- schema\n- 1\n", "<document>"),
    ("scalar-document", "just words\n", "<document>"),
    ("empty-document", "", "<document>"),
]


@pytest.mark.parametrize(("case", "text", "field"), RAW_REJECTED, ids=[c[0] for c in RAW_REJECTED])
def test_rejected_documents(tmp_path: Path, case: str, text: str, field: str) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(DeviceProfileError) as info:
        load_device_file(path)
    assert info.value.field == field
    assert str(info.value).startswith(f"{path}: {field}: ")
    assert "\n" not in str(info.value)


# --- properties ----------------------------------------------------------------------------------

_KEYS = sorted({"schema", "name", "description", "source", "conductance", "read", "noise", "faults",
                "drift", "periphery", "energy", "g_max_us", "on_off_ratio", "levels", "spacing",
                "states_us", "voltage_v", "pulse_ns", "programming_sigma", "read_sigma",
                "d2d_sigma", "stuck_off", "stuck_on", "nu", "t0_s", "adc_bits", "dac_bits",
                "tile_rows", "tile_cols", "adc_pj", "neuron_update_pj", "spike_pj"})
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["1e-6", "-1", "0", "nan", "inf", "1e999", "linear", "log", "16"]),
)
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=4),
                    st.dictionaries(st.sampled_from(_KEYS), _SCALARS, max_size=3))
_TABLE_DOC = _edit(_table(states_us=[1.0, 2.0, 4.0, 8.0]))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    target = data.draw(st.sampled_from(_paths(doc)))
    op = data.draw(st.sampled_from(["delete", "replace", "insert"]))
    if not target:
        return data.draw(_VALUES) if op == "replace" else doc
    parent = doc
    for step in target[:-1]:
        parent = parent[step]
    last = target[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = data.draw(_VALUES)
    elif isinstance(parent, dict):
        parent[data.draw(st.one_of(st.sampled_from(_KEYS), st.text(max_size=5), st.integers()))] = data.draw(_VALUES)
    else:
        parent.insert(last, data.draw(_VALUES))
    return doc


@pytest.mark.filterwarnings("ignore::xbar.device_fields.DeviceProfileWarning")  # mutants may be implausible
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), start=st.sampled_from(SHIPPED + ["<table>"]), n=st.integers(1, 4))
def test_mutated_profiles_only_raise_profile_errors(data: st.DataObject, start: str, n: int) -> None:
    doc = copy.deepcopy(_TABLE_DOC) if start == "<table>" else load_device(start).to_dict()
    for _ in range(n):
        doc = _mutate(doc, data)
    try:
        parse_device(doc, path="mutant.yaml")
    except DeviceProfileError as err:
        assert err.path == "mutant.yaml" and "\n" not in str(err)


@settings(max_examples=200, deadline=None)
@given(g_max_us=st.floats(1e-3, 1e4), ratio=st.floats(1.01, 1e5), levels=st.none() | st.integers(2, 300),
       spacing=st.sampled_from(["linear", "log"]), pulse_ns=st.floats(1e-2, 1e6),
       sigma=st.floats(0, 1), bits=st.none() | st.integers(2, 16))
def test_valid_profiles_round_trip(g_max_us: float, ratio: float, levels: int | None, spacing: str,
                                   pulse_ns: float, sigma: float, bits: int | None) -> None:
    doc = copy.deepcopy(BASE)
    doc["conductance"] = {"g_max_us": g_max_us, "on_off_ratio": ratio}
    if levels is not None:
        doc["conductance"].update(levels=levels, spacing=spacing)
    doc["read"]["pulse_ns"] = pulse_ns
    doc["noise"]["read_sigma"] = sigma
    doc["periphery"]["adc_bits"] = bits
    dev = parse_device(doc)
    assert parse_device(yaml.safe_load(dev.to_yaml())) == dev
    assert dev.g_max == pytest.approx(g_max_us * 1e-6, rel=1e-11)
    assert dev.on_off_ratio == pytest.approx(ratio, rel=1e-10)


def test_error_messages_stay_on_one_line() -> None:
    doc = _edit(lambda d: d.__setitem__("bad\nkey", 1))
    with pytest.raises(DeviceProfileError) as info:
        parse_device(doc, path="two\nlines.yaml")
    assert info.value.field == "bad\nkey" and info.value.path == "two\nlines.yaml"
    assert "\n" not in str(info.value) and "bad\\nkey" in str(info.value)


# --- every error at once, strings are not numbers, implausible conductances ----------------------

def test_every_error_of_a_profile_is_reported_at_once(tmp_path: Path) -> None:
    doc = _edit(lambda d: (d["noise"].__setitem__("programming_sigma", -0.1), d["read"].__setitem__("voltage_v", 0),
                           d["periphery"].__setitem__("adc_bits", 1)))
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DeviceProfileError) as info:
        load_device_file(path)
    err = info.value
    assert [field for field, _reason in err.errors] == ["read.voltage_v", "noise.programming_sigma",
                                                        "periphery.adc_bits"]
    assert (err.path, err.field) == (str(path), "read.voltage_v")
    assert str(err).startswith(f"{path}: 3 errors: read.voltage_v: must be > 0") and "\n" not in str(err)
    assert "noise.programming_sigma: must be >= 0, got -0.1" in str(err)
    assert "periphery.adc_bits: must be between 2 and 32, got 1" in str(err)
    import pickle

    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.field, again.errors, str(again)) == (err.path, err.field, err.errors, str(err))


def test_errors_in_different_sections_and_keys_are_all_listed() -> None:
    doc = _edit(lambda d: (d.__setitem__("colour", "red"), d["conductance"].__setitem__("g_max_us", "big"),
                           d["faults"].__setitem__("stuck_on", 1.5), d["read"].pop("pulse_ns"),
                           d.__setitem__("name", "")))
    with pytest.raises(DeviceProfileError) as info:
        parse_device(doc, path="many.yaml")
    assert sorted(f for f, _ in info.value.errors) == sorted(
        ["colour", "name", "conductance.g_max_us", "faults.stuck_on", "read.pulse_ns"])


def test_a_single_error_keeps_the_one_error_message() -> None:
    with pytest.raises(DeviceProfileError) as info:
        parse_device(_edit(_set("read", "voltage_v", -1.0)), path="one.yaml")
    assert str(info.value) == "one.yaml: read.voltage_v: must be > 0, got -1.0"
    assert info.value.errors == (("read.voltage_v", "must be > 0, got -1.0"),)


def test_direct_construction_reports_every_error() -> None:
    with pytest.raises(DeviceProfileError) as info:
        DeviceProfile(name="d", g_min=1e-6, g_max=4e-6, read_sigma=-0.1, stuck_on=2.0, adc_bits=1)
    assert [f for f, _ in info.value.errors] == ["noise.read_sigma", "faults.stuck_on", "periphery.adc_bits"]


QUOTED = [('g_max_us: 100.0', 'g_max_us: "100"', "conductance.g_max_us"),
          ('g_max_us: 100.0', "g_max_us: '1e2'", "conductance.g_max_us"),
          ('pulse_ns: 10.0', 'pulse_ns: "10"', "read.pulse_ns"),
          ('levels: 16', 'levels: "16"', "conductance.levels"),
          ('g_max_us: 100.0', 'g_max_us: yes', "conductance.g_max_us"),
          ('voltage_v: 0.2', 'voltage_v: true', "read.voltage_v")]


@pytest.mark.parametrize("old, new, field", QUOTED, ids=[q[1] for q in QUOTED])
def test_quoted_numbers_and_booleans_are_refused(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False)
    assert old in text
    path = tmp_path / "quoted.yaml"
    path.write_text(text.replace(old, new))
    with pytest.raises(DeviceProfileError) as info:
        load_device_file(path)
    assert info.value.field == field
    kind = "boolean" if new.endswith(("yes", "true")) else "a YAML string"
    assert kind in info.value.reason
    assert "must be a number" in info.value.reason or "must be an integer" in info.value.reason


def test_python_strings_are_not_numbers() -> None:
    with pytest.raises(DeviceProfileError, match=r"conductance.g_max_us: must be a number, got a YAML string '1e2'"):
        parse_device(_edit(_set("conductance", "g_max_us", "1e2")))


def _warnings_of(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    return out, [str(w.message) for w in caught]


def test_conductance_in_siemens_warns_but_loads(tmp_path: Path) -> None:
    from xbar.device import DeviceProfileWarning

    path = tmp_path / "siemens.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False).replace("g_max_us: 100.0", "g_max_us: 1e-6"))
    with pytest.warns(DeviceProfileWarning) as record:
        dev = load_device_file(path)
    assert dev.g_max == 1e-12
    (message,) = [str(w.message) for w in record]
    assert message.startswith(f"{path}: conductance.g_max_us: 1e-06 uS (1 pS) is outside")
    assert "1 nS to 10 mS" in message and "microsiemens" in message and "g_max_us: 1" in message


@pytest.mark.parametrize("cond, field", [
    ({"g_max_us": 1e5, "on_off_ratio": 10.0}, "conductance.g_max_us"),
    ({"g_max_us": 5e-4, "on_off_ratio": 10.0}, "conductance.g_max_us"),
    ({"states_us": [1e-7, 2e-7, 4e-7]}, "conductance.states_us[0]"),
    ({"states_us": [1.0, 2.0, 2e4]}, "conductance.states_us[2]"),
])
def test_implausible_conductances_warn(cond: dict[str, Any], field: str) -> None:
    _dev, messages = _warnings_of(lambda: parse_device(_edit(_table(**cond)), path="p.yaml"))
    assert len(messages) == 1 and messages[0].startswith(f"p.yaml: {field}: ")


@pytest.mark.parametrize("cond", [{"g_max_us": 1e-3, "on_off_ratio": 1.5}, {"g_max_us": 1e4, "on_off_ratio": 10.0},
                                  {"states_us": [0.001, 10000.0]}])
def test_plausible_edges_do_not_warn(cond: dict[str, Any]) -> None:
    assert _warnings_of(lambda: parse_device(_edit(_table(**cond))))[1] == []


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_without_warnings(name: str) -> None:
    dev, messages = _warnings_of(lambda: load_device(name))
    assert messages == [] and dev.name == name
    assert _warnings_of(lambda: parse_device(yaml.safe_load(dev.to_yaml())))[1] == []


def test_exponent_forms_are_numbers(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False).replace("g_max_us: 100.0", "g_max_us: 1.0E2").replace(
        "pulse_ns: 10.0", "pulse_ns: 1.0e1").replace("adc_pj: 0.0", "adc_pj: -0e0")
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    assert load_device_file(path) == parse_device(BASE)
