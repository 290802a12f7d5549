"""One surrogate-gradient BPTT step (T=8, batch 128, Adam): xbar's SpikingNetwork against a
spikingjelly IFNode network from the same weights on the same spikes, and fed by spikingjelly's
own Poisson encoder (10 steps per round)."""

from __future__ import annotations

import pytest

from xbar.bench import Setup, bptt_runners, peak_memory

_STEPS = 10


@pytest.fixture(scope="module")
def runners(setup: Setup):
    return bptt_runners(setup, timesteps=8, batch=128, steps=_STEPS)


@pytest.mark.parametrize("name", ["xbar", "spikingjelly", "spikingjelly own enc"])
def test_bptt(benchmark, runners, setup: Setup, name: str) -> None:
    run = runners[name]
    loss, mem = peak_memory(run, setup.device)
    benchmark.group = f"bptt T=8 batch=128 x{_STEPS} steps"
    benchmark.extra_info.update(final_loss=loss, peak_mib=mem)
    assert benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=0) == pytest.approx(loss)
