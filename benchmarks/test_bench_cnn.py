"""Inference side by side on the LeNet-style CNN: xbar (seed-4bit crossbars + EnergyMeter, and
float) against spikingjelly's converted network on the same spikes, at T in {8, 32}.

Each benchmark classifies every benchmark image once per round; ``extra_info`` holds the
accuracy and the peak tensor memory of the run. Compare within a group (one group per T).
There is no torch loop here: that one hand-writes the MLP (``xbar bench --model lenet`` says
so too).
"""

from __future__ import annotations

import pytest

from xbar.bench import Setup, inference_runner, peak_memory

CNN_CONFIGS = ("xbar crossbar+meter", "xbar float", "spikingjelly")


@pytest.mark.parametrize("timesteps", [8, 32])
@pytest.mark.parametrize("config", CNN_CONFIGS)
def test_inference_lenet(benchmark, setup_lenet: Setup, config: str, timesteps: int) -> None:
    run = inference_runner(setup_lenet, config, timesteps)
    correct, mem = peak_memory(run, setup_lenet.device)
    benchmark.group = f"lenet inference T={timesteps}"
    benchmark.extra_info.update(model="lenet", accuracy=correct / setup_lenet.samples, peak_mib=mem,
                                samples=setup_lenet.samples)
    assert benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0) == correct
