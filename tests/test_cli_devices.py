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


def test_validate_reports_every_error_of_a_file(files: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    three = tmp_path / "three.yaml"
    three.write_text(GOOD.replace("voltage_v: 0.1", "voltage_v: -0.1").replace("levels: 4", "levels: 1")
                     + "noise: {programming_sigma: -0.05}\n")
    rc = main(["devices", "validate", str(three), str(files["good"]), str(files["bad"])])
    out, err = capsys.readouterr()
    assert rc == 1 and out.splitlines() == [f"ok: {files['good']} (my-device)"]
    errors = err.splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    assert [line.split(": ")[1:3] for line in errors[:3]] == [
        [str(three), "conductance.levels"], [str(three), "read.voltage_v"], [str(three), "noise.programming_sigma"]]
    assert str(files["bad"]) in errors[3] and "conductance.on_off_ratio" in errors[3]


def test_validate_refuses_a_quoted_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quoted = tmp_path / "quoted.yaml"
    quoted.write_text(GOOD.replace("g_max_us: 50.0", 'g_max_us: "50"'))
    assert main(["devices", "validate", str(quoted)]) == 1
    err = capsys.readouterr().err
    assert f"{quoted}: conductance.g_max_us: must be a number, got a YAML string '50'" in err


def test_validate_warns_about_siemens_and_still_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    siemens = tmp_path / "siemens.yaml"
    siemens.write_text(GOOD.replace("g_max_us: 50.0", "g_max_us: 1e-6"))
    assert main(["devices", "validate", str(siemens)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"ok: {siemens} (my-device)"]
    (line,) = err.splitlines()
    assert line.startswith(f"warning: {siemens}: conductance.g_max_us: 1e-06 uS (1 pS) is outside")
    assert "microsiemens" in line


def test_subprocess_all_errors_and_warnings(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(GOOD.replace("g_max_us: 50.0", "g_max_us: 2e5").replace("pulse_ns: 20.0", "pulse_ns: -1")
                    + "faults: {stuck_on: 2}\n")
    proc = _run("devices", "validate", str(both))
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 3, proc.stderr
    assert lines[0].startswith(f"warning: {both}: conductance.g_max_us: 200000 uS (200 mS)")
    assert lines[1].startswith(f"error: {both}: read.pulse_ns: ")
    assert lines[2].startswith(f"error: {both}: faults.stuck_on: ")
