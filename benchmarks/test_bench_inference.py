"""Inference side by side: xbar (seed-4bit crossbars + EnergyMeter, and float) against
spikingjelly's converted network and a plain torch loop, at T in {8, 32, 128}.

Each benchmark classifies every benchmark image once per round; ``extra_info`` holds the
accuracy and the peak tensor memory of the run. Compare within a group (one group per T).
"""

from __future__ import annotations

import pytest

from xbar.bench import CONFIGS, Setup, inference_runner, peak_memory


@pytest.mark.parametrize("timesteps", [8, 32, 128])
@pytest.mark.parametrize("config", CONFIGS)
def test_inference(benchmark, setup: Setup, config: str, timesteps: int) -> None:
    run = inference_runner(setup, config, timesteps)
    correct, mem = peak_memory(run, setup.device)
    benchmark.group = f"inference T={timesteps}"
    benchmark.extra_info.update(accuracy=correct / setup.samples, peak_mib=mem, samples=setup.samples)
    assert benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0) == correct
