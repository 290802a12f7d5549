"""``xbar bench`` without MNIST: tiny synthetic setups (random images, untrained zoo models,
T=2), every configuration run once, the printed table checked for the model's name and for
the configurations a model leaves out."""

from __future__ import annotations

import functools

import pytest
import torch

pytest.importorskip("spikingjelly")

from xbar import bench  # noqa: E402
from xbar.bench import (  # noqa: E402
    CONFIGS, BenchResult, Setup, configs_for, format_result, inference_runner, run_setup)
from xbar.cli import build_parser, main  # noqa: E402
from xbar.models import MODELS, build_model  # noqa: E402


@functools.cache
def _setup(model: str, samples: int = 6) -> Setup:
    """A synthetic setup (shared between tests: its converted networks are cached in it)."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    ann = build_model(model).eval()
    images = torch.rand(samples, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (samples,), generator=gen)
    calib = torch.rand(16, 1, 28, 28, generator=gen)
    return Setup(ann, list(images.split(4)), list(labels.split(4)), calib, torch.device("cpu"),
                 ann_acc=0.1, model=model)


@pytest.fixture(params=["mlp", "lenet"])
def setup(request) -> Setup:
    return _setup(request.param)


def test_configs_per_model():
    assert configs_for(_setup("mlp")) == CONFIGS
    lenet = _setup("lenet")
    assert configs_for(lenet) == tuple(c for c in CONFIGS if c != "torch loop")
    assert "torch loop" in bench.skipped_configs(lenet)
    assert bench.bptt_skip_reason(_setup("mlp")) is None
    assert "lenet" in bench.bptt_skip_reason(lenet)


def test_every_config_runs(setup: Setup):
    for config in configs_for(setup):
        correct = inference_runner(setup, config, 2)()
        assert isinstance(correct, int) and 0 <= correct <= setup.samples, config


def test_same_input_same_result(setup: Setup):
    """A runner reseeds its encoder: two runs classify the same images the same way."""
    for config in ("xbar float", "spikingjelly"):
        run = inference_runner(setup, config, 2)
        assert run() == run(), config


@pytest.mark.parametrize("model", sorted(set(MODELS) - {"mlp", "lenet"}))
def test_every_zoo_model_runs(model: str):
    """Any zoo model: the configurations that fit it run, the others are left out with a reason."""
    setup = _setup(model, samples=2)
    skipped = bench.skipped_configs(setup)
    assert "torch loop" in skipped and all(skipped.values())
    assert set(configs_for(setup)) | set(skipped) == set(CONFIGS)
    for config in configs_for(setup):
        assert 0 <= inference_runner(setup, config, 2)() <= 2, config
    for config in skipped:
        with pytest.raises(ValueError):
            inference_runner(setup, config, 2)


def test_a_model_spikingjelly_refuses_is_reported():
    class FunctionalRelu(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(784, 8, bias=False), torch.nn.Linear(8, 10, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.nn.functional.relu(self.fc1(x.flatten(1))))

    base = _setup("mlp")
    setup = Setup(FunctionalRelu().eval(), base.images, base.labels, base.calib, base.device, model="own")
    skipped = bench.skipped_configs(setup)
    assert set(skipped) == {"torch loop", "spikingjelly", "spikingjelly own enc"}
    assert skipped["spikingjelly"].startswith("spikingjelly's converter refuses own: ")
    res = run_setup(setup, timesteps=(2,), repeats=1)
    text = format_result(res)
    assert "spikingjelly, spikingjelly own enc: not run: spikingjelly's converter refuses own" in text
    assert set(res.inference[2]) == {"xbar crossbar+meter", "xbar crossbar", "xbar float"}


def test_torch_loop_refused_for_lenet():
    with pytest.raises(ValueError, match="torch loop.*lenet"):
        inference_runner(_setup("lenet"), "torch loop", 2)
    with pytest.raises(ValueError, match="BPTT.*lenet"):
        bench.bptt_runners(_setup("lenet"))


@functools.cache
def _lenet_result() -> BenchResult:
    return run_setup(_setup("lenet"), timesteps=(2,), repeats=1)


def test_format_names_the_model_and_skips_the_torch_loop():
    res = _lenet_result()
    text = format_result(res)
    header = text.splitlines()[0]
    assert "model lenet" in header and "Conv2d" in header and "6 test images" in header
    assert "best of 1" in header and "threads" in header and "ANN test accuracy 10.00%" in header
    assert res.skipped.keys() == {"torch loop"} and "torch loop" not in res.inference[2]
    rows = [ln for ln in text.splitlines() if "torch loop" in ln]
    assert any("not run" in ln for ln in rows)
    assert "BPTT step: not run" in text and res.bptt is None
    ratios = text.splitlines()[text.splitlines().index("ratios of best times (x+m = xbar crossbar+meter):") + 2]
    assert ratios.split()[0] == "2" and ratios.split()[-1] == "n/a"


def test_format_mlp_keeps_the_torch_loop_and_bptt():
    res = run_setup(_setup("mlp", samples=8), timesteps=(2,), repeats=1, bptt_steps=1)
    text = format_result(res)
    assert "model mlp (784-100-10 MLP" in text.splitlines()[0]
    assert not res.skipped and "torch loop" in res.inference[2]
    assert res.bptt is not None and set(res.bptt) == {"xbar", "spikingjelly", "spikingjelly own enc"}
    assert "BPTT step (T=8, batch 128, 1 steps" in text
    res = run_setup(_setup("mlp", samples=4), timesteps=(2,), repeats=1, bptt=False)
    assert res.bptt is None and "--skip-bptt" in format_result(res)


def _fake_result(float_correct: int, sj_correct: int, model: str = "lenet", tolerance: float = 0.3):
    row = {"result": 0, "mem_mib": 1.0, "times": [1.0]}
    rows = {c: dict(row) for c in CONFIGS if c != "torch loop"}
    rows["xbar float"]["result"], rows["spikingjelly"]["result"] = float_correct, sj_correct
    return BenchResult(1000, "cpu", 2, 1, 0.9, {8: rows}, None, (8, 128, 10), model=model,
                       model_info="a test", skipped={"torch loop": "why"}, bptt_note="because",
                       tolerance=tolerance)


def test_accuracy_warning():
    """xbar float and spikingjelly on the same input: a difference past the tolerance warns."""
    text = format_result(_fake_result(900, 896))  # 0.4 points
    assert "WARNING: T=8: xbar float 90.00% and spikingjelly 89.60% differ by 0.40 points (> 0.3)" in text
    assert "WARNING" not in format_result(_fake_result(900, 897))  # 0.3 points
    assert "WARNING" in format_result(_fake_result(900, 897, "mlp", tolerance=0.2))
    assert _lenet_result().tolerance == 0.3
    assert "BPTT step: not run: because" in format_result(_fake_result(1, 1))


def test_run_bench_passes_the_model(monkeypatch):
    seen = {}

    def fake_load(samples, device, progress, model="mlp"):
        seen.update(samples=samples, device=device, model=model)
        return _setup(model)

    def fake_run(setup, timesteps, repeats, bptt_steps, bptt, progress):
        seen.update(timesteps=timesteps, bptt=bptt, setup_model=setup.model)
        return "result"

    monkeypatch.setattr(bench, "load_setup", fake_load)
    monkeypatch.setattr(bench, "run_setup", fake_run)
    assert bench.run_bench(samples=6, timesteps=(2,), repeats=1, model="lenet", bptt=False) == "result"
    assert seen == {"samples": 6, "device": "cpu", "model": "lenet", "timesteps": (2,), "bptt": False,
                    "setup_model": "lenet"}


def test_cache_paths():
    assert bench.cache_path().name == "mlp-784-100-10-e1-s0.pt"
    assert bench.cache_path("mlp") == bench.cache_path()
    assert bench.cache_path("lenet").name == "lenet-e1-s0.pt"
    assert bench.cache_path("lenet").parent.name == "bench"


def test_cli_options(capsys):
    args = build_parser().parse_args(["bench", "--model", "lenet", "--skip-bptt", "--samples", "5"])
    assert (args.model, args.skip_bptt, args.samples) == ("lenet", True, 5)
    args = build_parser().parse_args(["bench"])
    assert (args.model, args.skip_bptt) == ("mlp", False)
    assert main(["bench", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_unknown_model_refused_by_load_setup():
    with pytest.raises(ValueError, match="unknown model"):
        bench.load_setup(samples=1, model="nope")
