"""The ``xbar devices`` command line (xbar.cli)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xbar.cli import build_parser, main
from xbar.device import list_devices, load_device, parse_device

REPO = Path(__file__).resolve().parents[1]
GOOD = """\
schema: 1
name: my-device
conductance: {g_max_us: 50.0, on_off_ratio: 5.0, levels: 4}
read: {voltage_v: 0.1, pulse_ns: 20.0}
"""
BAD = GOOD.replace("on_off_ratio: 5.0", "on_off_ratio: 0.5")


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    return {"good": good, "bad": bad, "missing": tmp_path / "missing.yaml"}


def test_list_shows_every_profile_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "list"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    names = list_devices()
    assert [line.split()[0] for line in lines] == names and err == ""
    column = max(len(n) for n in names) + 2  # descriptions start in one column
    for line, name in zip(lines, names):
        assert line[:column] == name.ljust(column)
        assert line[column:] == " ".join(load_device(name).description.split())


def test_show_prints_the_profile_and_derived_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "show", "seed-4bit"]) == 0
    profile_doc, derived_doc = yaml.safe_load_all(capsys.readouterr().out)
    assert parse_device(profile_doc) == load_device("seed-4bit")
    derived = derived_doc["derived"]
    assert derived["g_min_us"] == 10.0 and derived["g_max_us"] == 100.0
    assert derived["on_off_ratio"] == 10.0 and derived["levels"] == 16
    assert derived["states_us"] == [10.0 + 6.0 * i for i in range(16)]


def test_show_continuous_profile_by_path(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "show", str(files["good"])]) == 0
    profile_doc, derived_doc = yaml.safe_load_all(capsys.readouterr().out)
    assert profile_doc["name"] == "my-device"
    assert derived_doc["derived"]["states_us"] == [10.0, 23.3333333333, 36.6666666667, 50.0]
    assert main(["devices", "show", "ideal"]) == 0
    assert list(yaml.safe_load_all(capsys.readouterr().out))[1]["derived"]["levels"] == "continuous"


def test_show_unknown_name_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "show", "seed-4bits"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert "seed-4bits" in err and "seed-4bit'" in err


def test_validate_reports_each_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["devices", "validate", str(files["good"]), str(files["bad"]), str(files["missing"])])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out.splitlines() == [f"ok: {files['good']} (my-device)"]
    errors = err.splitlines()
    assert len(errors) == 2 and "Traceback" not in err
    assert str(files["bad"]) in errors[0] and "conductance.on_off_ratio" in errors[0]
    assert str(files["missing"]) in errors[1] and "no such file" in errors[1]


def test_validate_all_good_and_shipped(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    shipped = [str(REPO / "devices" / f"{name}.yaml") for name in list_devices()]
    assert main(["devices", "validate", str(files["good"]), *shipped]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(out.splitlines()) == 1 + len(shipped)


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["devices"]) == 2
    assert main(["devices", "validate"]) == 2
    assert main(["frobnicate"]) == 2
    capsys.readouterr()
    assert main(["--version"]) == 0
    assert "xbar" in capsys.readouterr().out


def test_parser_is_extensible() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "devices" in subparsers.choices
    for argv in (["devices", "list"], ["devices", "show", "x"], ["devices", "validate", "f"]):
        assert callable(parser.parse_args(argv).func)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "xbar.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO.parent, timeout=300)


def test_subprocess_bad_file_is_one_line_without_traceback(files: dict[str, Path]) -> None:
    proc = _run("devices", "validate", str(files["bad"]))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert str(files["bad"]) in proc.stderr


def test_subprocess_list() -> None:
    proc = _run("devices", "list")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == list_devices()
