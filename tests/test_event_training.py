"""The event-driven first layer under autograd (BPTT on the CPU): same forward and gradients as
the dense multi-step path on the same spikes, and no dense input kept for backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xbar
import xbar.events as events_module
from reference import saved_bytes
from xbar.encoding import SpikeEvents
from xbar.train import set_surrogate


def _dyadic_snn(bias: bool, timesteps: int = 6) -> xbar.SpikingNetwork:
    """A 25-12-3 SNN whose weights are multiples of 1/64: the forward sums are exact in any
    order, so the two paths must give the same spikes bit for bit."""
    torch.manual_seed(3)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(25, 12, bias=bias), nn.ReLU(), nn.Linear(12, 3, bias=bias))
    with torch.no_grad():
        for p in ann.parameters():
            p.copy_(torch.randint(-64, 65, p.shape).float() / 64)
    snn = xbar.to_snn(ann, timesteps=timesteps, norm="none",
                      encoder=xbar.PoissonEncoder(0.9, torch.Generator().manual_seed(5)))
    for neuron in snn.neurons():
        neuron.threshold.fill_(0.75)
    return set_surrogate(snn).train()


def _images(n: int = 7) -> torch.Tensor:
    """5x5 images with a blank border column (never spikes) and random blank pixels."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (n, 1, 5, 5), generator=g).float() / 255
    x = x * (torch.rand(x.shape, generator=g) < 0.7)
    x[..., 0] = 0
    return x


def _loss_and_grads(snn: xbar.SpikingNetwork, fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
    snn.zero_grad(set_to_none=True)
    out = fn()
    loss = nn.functional.cross_entropy(out, torch.arange(out.shape[0]) % 3)
    loss.backward()
    return out.detach(), [p.grad.clone() for p in snn.parameters()]


@pytest.mark.parametrize("bias", [False, True])
def test_training_on_events_equals_the_dense_path(bias, monkeypatch):
    snn, x = _dyadic_snn(bias), _images()
    calls = []
    real = events_module.EventLinearFunction.apply
    monkeypatch.setattr(events_module.EventLinearFunction, "apply", lambda *a: calls.append(1) or real(*a))
    snn.encoder.generator.manual_seed(9)
    fast, fast_grads = _loss_and_grads(snn, lambda: snn(x))
    assert calls, "training did not take the event-driven first layer"
    snn.encoder.generator.manual_seed(9)
    x_seq = snn.encoder(x, 6)
    dense, dense_grads = _loss_and_grads(snn, lambda: snn.run(x_seq))
    assert len(calls) == 1  # the dense input does not take it
    assert torch.equal(fast, dense)
    for a, b in zip(fast_grads, dense_grads):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not fast_grads[0][:, [0, 5, 10, 15, 20]].any()  # the blank column has no gradient


def test_crossbar_first_layer_trains_on_events():
    ann = nn.Sequential(nn.Flatten(), nn.Linear(25, 12), nn.ReLU(), nn.Linear(12, 3))
    torch.manual_seed(0)
    x = _images(9)
    snn = xbar.to_snn(xbar.to_crossbar(ann, "seed-4bit"), calibration=x, timesteps=8, norm="max",
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(1)))
    set_surrogate(snn).train()
    snn.encoder.generator.manual_seed(4)
    fast, fast_grads = _loss_and_grads(snn, lambda: snn(x))
    snn.encoder.generator.manual_seed(4)
    x_seq = snn.encoder(x, 8)
    dense, dense_grads = _loss_and_grads(snn, lambda: snn.run(x_seq))
    assert torch.allclose(fast, dense, rtol=1e-5, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in fast_grads)
    for a, b in zip(fast_grads, dense_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def _events(images: torch.Tensor, steps: int = 5) -> SpikeEvents:
    return xbar.PoissonEncoder(0.8, torch.Generator().manual_seed(7)).events(images, steps)


def test_active_columns_grad_is_the_dense_product():
    ev = _events(_images(6))
    rows = ev.shape[0] * ev.shape[1]
    dense = ev.dense().reshape(rows, ev.pixels)
    g = torch.randn(rows, 4, generator=torch.Generator().manual_seed(1))
    got = events_module.active_columns_grad(g, ev)
    assert got.shape == (4, 25)
    assert torch.allclose(got, g.t() @ dense, rtol=1e-6, atol=1e-6)
    g64 = torch.randint(-64, 65, g.shape, generator=torch.Generator().manual_seed(2)).float() / 64
    assert torch.equal(events_module.active_columns_grad(g64, ev), g64.t() @ dense)  # exact sums
    blank = _events(torch.zeros(3, 1, 5, 5))
    assert torch.equal(events_module.active_columns_grad(torch.ones(15, 4), blank), torch.zeros(4, 25))


def test_event_training_keeps_no_dense_input_for_backward():
    snn, x = _dyadic_snn(True, timesteps=16), _images(32)
    dense_input = 16 * 32 * 25 * 4
    x_seq = snn.encoder(x, 16)
    fast = saved_bytes(lambda: snn(x))
    dense = saved_bytes(lambda: snn.run(x_seq))
    assert dense - fast >= dense_input


@pytest.mark.parametrize("entries", [1, 2, 3])
def test_event_sums_in_chunks_equal_one_call(monkeypatch, entries):
    ev = _events(_images(6), steps=7)
    w, bias = torch.randn(4, 25), torch.randn(4)
    whole = events_module.event_sums(w, bias, ev)
    monkeypatch.setattr(events_module, "EVENT_CHUNK", entries * ev.column.numel())  # chunks of 1-3 steps
    ev.cache.clear()
    chunked = events_module.event_sums(w, bias, ev)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
    dense = ev.dense().reshape(7 * 6, 25)
    assert torch.allclose(whole[0], dense @ w.t() + bias, rtol=1e-5, atol=1e-5)
    assert torch.equal(whole[1], ev.spikes.sum(0).float())
