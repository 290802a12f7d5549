"""docs/devices.md documents exactly the keys the device validator accepts, with its defaults
and units, and its examples load."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import pytest
import yaml

from xbar import device, device_fields
from xbar.device import DeviceProfile, load_device_file

DOC = Path(__file__).resolve().parents[1] / "docs" / "devices.md"
UNITS = {"_us": "µS", "_v": "V", "_ns": "ns", "_s": "s", "_ohm": "Ω", "_pj": "pJ"}


def _rows() -> dict[str, dict[str, str]]:
    """Every table row of the document whose first cell is a backticked key: key -> cells."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
        elif not set(cells[0]) <= set("-"):
            key = cells[0].strip("`")
            assert key not in rows, f"{key} documented twice"
            rows[key] = dict(zip(header, cells))
    return rows


def _known() -> set[str]:
    """Every key the validator accepts, dotted."""
    known = set(device._REQUIRED_TOP + device._OPTIONAL_TOP)
    known |= {f"conductance.{k}" for k in device._CONDUCTANCE_KEYS}
    known |= {f"{sec}.{k}" for sec, keys in device._SECTIONS.items() for k in keys}
    return known


def _required() -> set[str]:
    return set(device._REQUIRED_TOP) | {f"read.{k}" for k in device._SECTIONS["read"]} | {
        "conductance.g_max_us", "conductance.on_off_ratio"}


def _default(key: str) -> object:
    """The code's default of a key, in its YAML unit."""
    defaults = {f.name: f.default for f in dataclasses.fields(DeviceProfile)}
    if key in ("description", "source"):
        return defaults[key]
    if key in device._OPTIONAL_TOP:
        return {}
    sec, name = key.split(".")
    if sec == "conductance":
        return {"levels": defaults["levels"], "spacing": defaults["spacing"], "states_us": defaults["states"]}[name]
    attr, _check, scale = device._SECTIONS[sec][name]
    value = defaults[attr]
    return value if value is None or scale == 1.0 else float(f"{value / scale:.12g}")


def test_every_key_the_validator_knows_is_documented_and_no_other() -> None:
    documented, known = set(_rows()), _known()
    assert known - documented == set(), "keys missing from docs/devices.md"
    assert documented - known == set(), "docs/devices.md documents keys the validator does not accept"


@pytest.mark.parametrize("key", sorted(_known()))
def test_default_required_and_unit_match_the_code(key: str) -> None:
    row = _rows()[key]
    if key in _required():
        assert row["default"].startswith("required"), row
    else:
        assert not row["default"].startswith("required"), row
        assert yaml.safe_load(row["default"].strip("`")) == _default(key), row
    suffix = next((s for s in UNITS if key.endswith(s)), None)
    if suffix is not None:
        assert row["unit"] == UNITS[suffix], row
    assert row["type"] and row["allowed"] and row["meaning"], row


def test_bounds_in_the_doc_are_the_code_s() -> None:
    rows = _rows()
    assert f"2 to {device.MAX_LEVELS}" in rows["conductance.levels"]["allowed"]
    assert f"2 to {device_fields.MAX_BITS}" in rows["periphery.adc_bits"]["allowed"]
    assert f"1 to {device_fields.MAX_BITS}" in rows["periphery.dac_bits"]["allowed"]
    low, high = (g * 1e6 for g in device_fields.PLAUSIBLE_G)
    assert f"{low:g}–{high:g}" in rows["conductance.g_max_us"]["allowed"]


@pytest.mark.parametrize("index", [0, 1])
def test_the_examples_load_without_warnings(tmp_path: Path, index: int) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    path = tmp_path / "example.yaml"
    path.write_text(blocks[index])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dev = load_device_file(path)
    assert dev.name == yaml.safe_load(blocks[index])["name"]
    if index == 0:  # the full example: every key but the alternative states_us
        doc = yaml.safe_load(blocks[0])
        keys = set(doc) | {f"{sec}.{k}" for sec, v in doc.items() if isinstance(v, dict) for k in v}
        assert _known() - keys == {"conductance.states_us"}
    else:
        assert dev.levels == 4 and dev.g_max == 30e-6
