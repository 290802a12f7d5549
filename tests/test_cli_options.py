"""Command-line options of the study, robustness and bench commands (xbar.cli): what each
option means, that README's claims about them hold, and that bad values name the argument."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xbar.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
STUDY = [["reproduce"], ["train"], ["sweep", "timesteps"], ["sweep", "rates"], ["constrain"], ["energy"]]


# --- README: "Each takes --config ..., --quick, --device ..., --out DIR and --seeds N" -------------

def _study_table_commands() -> list[list[str]]:
    text = README.read_text()
    section = text[text.index("## The study commands"):]
    section = section[: section.index("\n## ", 1)]
    return [cmd.split()[1:] for cmd in re.findall(r"^\| `(xbar [^`]+)` \|", section, re.M)]


def _options_each_takes() -> list[list[str]]:
    text = README.read_text()
    sentence = text[text.index("Each takes"):]
    sentence = sentence[: sentence.index(";")]
    values = {"NAME_OR_PATH": "x", "DIR": "out", "N": "2"}
    return [[word if word not in values else values[word] for word in opt.split()]
            for opt in re.findall(r"`(--[a-z-]+(?: [A-Z_]+)?)`", sentence)]


def test_readme_names_the_commands_and_options_it_claims() -> None:
    commands = _study_table_commands()
    assert ["robustness"] in commands and ["reproduce"] in commands and len(commands) == 7
    assert ["--seeds", "2"] in _options_each_takes() and len(_options_each_takes()) == 5


@pytest.mark.parametrize("command", _study_table_commands(), ids=" ".join)
def test_every_command_in_the_table_takes_every_option_readme_names(command: list[str]) -> None:
    parser = build_parser()
    for option in _options_each_takes():
        args = parser.parse_args([*command, *option])
        assert callable(args.func)


def test_robustness_seeds_is_an_alias_of_chips() -> None:
    parser = build_parser()
    assert parser.parse_args(["robustness", "--seeds", "3"]).chips == 3
    assert parser.parse_args(["robustness", "--chips", "2"]).chips == 2
    assert parser.parse_args(["robustness"]).chips is None


def test_robustness_seeds_reaches_the_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import xbar.experiments.robustness as robustness
    from xbar.experiments.config import ConfigError

    seen: dict[str, object] = {}

    def fake_load(name: str, overrides: dict) -> dict:
        seen.update(name=name, overrides=overrides)
        raise ConfigError("stop here")

    monkeypatch.setattr(robustness, "load_robustness_config", fake_load)
    assert main(["robustness", "--quick", "--seeds", "4", "--out", str(tmp_path)]) == 1
    assert seen == {"name": "robustness-quick", "overrides": {"chips": 4}}
    assert "stop here" in capsys.readouterr().err


def test_robustness_help_says_what_seeds_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robustness", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--seeds N" in text and "the same as --chips" in text and "a seed is a chip" in text


def test_study_seeds_reaches_the_configuration() -> None:
    for command in STUDY:
        assert build_parser().parse_args([*command, "--seeds", "3"]).seeds == 3


# --- positive integers are checked by the parser, naming the argument -------------------------------

BAD_COUNTS = [
    (["reproduce", "--quick", "--seeds", "0"], "--seeds"),
    (["train", "--seeds", "-2"], "--seeds"),
    (["sweep", "rates", "--seeds", "0"], "--seeds"),
    (["robustness", "--chips", "0"], "--chips"),
    (["robustness", "--seeds", "0"], "--seeds"),
    (["bench", "--samples", "0"], "--samples"),
    (["bench", "--repeats", "-1"], "--repeats"),
    (["bench", "--timesteps", "8", "0"], "--timesteps"),
    (["bench", "--bptt-steps", "0"], "--bptt-steps"),
]


@pytest.mark.parametrize("argv, option", BAD_COUNTS, ids=[" ".join(a) for a, _ in BAD_COUNTS])
def test_counts_below_one_name_the_argument(argv: list[str], option: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be >= 1, got {argv[-1]}" in err
    assert "config" not in err.splitlines()[-1] and "Traceback" not in err


def test_a_count_that_is_not_an_integer_names_the_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--seeds", "two"]) == 2
    assert "argument --seeds: must be an integer >= 1, got 'two'" in capsys.readouterr().err


# --- bench: --torch-device, and the old --device spelling -------------------------------------------

@pytest.fixture()
def fake_bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    import xbar.bench as bench

    seen: dict[str, object] = {}
    monkeypatch.setattr(bench, "run_bench", lambda **kw: seen.update(kw) or "result")
    monkeypatch.setattr(bench, "format_result", lambda result: f"table of {result}")
    return seen


def test_bench_torch_device(fake_bench: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--torch-device", "cpu", "--samples", "4", "--timesteps", "2"]) == 0
    out, err = capsys.readouterr()
    assert fake_bench["device"] == "cpu" and fake_bench["samples"] == 4 and fake_bench["timesteps"] == (2,)
    assert out.strip() == "table of result" and err == ""
    assert main(["bench"]) == 0 and fake_bench["device"] == "cpu"


def test_bench_old_device_spelling_works_and_warns(fake_bench: dict[str, object],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--device", "cpu", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert fake_bench["device"] == "cpu" and out.strip() == "table of result"
    assert "deprecated: use --torch-device" in err and err.count("\n") == 1


def test_bench_two_spellings_that_disagree_are_refused(fake_bench: dict[str, object],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--device", "cuda", "--torch-device", "cpu"]) == 2
    assert "--torch-device" in capsys.readouterr().err and not fake_bench


def test_bench_cuda_without_cuda_names_the_option(fake_bench: dict[str, object], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--torch-device", "cuda"]) == 1
    assert "--torch-device cuda: no CUDA device is available" in capsys.readouterr().err
    assert not fake_bench


def test_bench_help_says_what_the_device_options_are(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--torch-device {cpu,cuda}" in text and "torch device" in text
    assert "deprecated" in text and "not a device profile" in text
    assert main(["bench", "--torch-device", "tpu"]) == 2  # choices still apply
    assert "invalid choice" in capsys.readouterr().err


def test_study_device_is_a_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--help"]) == 0
    assert "device profile" in " ".join(capsys.readouterr().out.split())


def test_gpu_check_script_uses_the_new_spelling() -> None:
    script = (README.parent / "benchmarks" / "gpu_check.sh").read_text()
    assert "bench --torch-device" in script and "bench --device" not in script
    assert "bench --device" not in README.read_text()
