"""IF neurons: a hand-worked 5-step trace, multi-step = loop of single steps, spikingjelly side by side."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xbar
from xbar.neurons import if_scan, if_step

X = torch.tensor([0.6, 0.6, 0.9, 0.2, 1.5])


@pytest.mark.parametrize("reset, spikes, volts", [
    # v: 0.6 | 1.2 -> fire, 0.2 | 1.1 -> fire, 0.1 | 0.3 | 1.8 -> fire, 0.8
    ("subtract", [0, 1, 1, 0, 1], [0.6, 0.2, 0.1, 0.3, 0.8]),
    # v: 0.6 | 1.2 -> fire, 0 | 0.9 | 1.1 -> fire, 0 | 1.5 -> fire, 0
    ("zero", [0, 1, 0, 1, 1], [0.6, 0.0, 0.9, 0.0, 0.0]),
])
def test_five_step_trace(reset, spikes, volts):
    v = torch.zeros(1)
    got_s, got_v = [], []
    for x in X:
        s, v = if_step(x.view(1), v, 1.0, reset)
        got_s.append(s.item())
        got_v.append(v.item())
    assert got_s == spikes
    assert got_v == pytest.approx(volts, abs=1e-6)


def test_threshold_reached_exactly_fires():
    s, v = if_step(torch.tensor([1.0]), torch.zeros(1), 1.0)
    assert s.item() == 1.0 and v.item() == 0.0


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 12), b=st.integers(1, 4), reset=st.sampled_from(["subtract", "zero"]),
       th=st.floats(0.1, 3.0))
def test_multi_step_equals_loop_of_single_steps(t, b, reset, th):
    x = torch.randn(t, b, 5)
    multi = xbar.IFNeuron(th, reset=reset, surrogate=None, step_mode="m")
    single = xbar.IFNeuron(th, reset=reset, surrogate=None)
    out_m = multi(x)
    out_s = torch.stack([single(x[i]) for i in range(t)])
    assert torch.equal(out_m, out_s)
    assert torch.allclose(multi.v, single.v)


@pytest.mark.parametrize("threshold", [1.0, 0.37])
def test_identical_spikes_to_spikingjelly_ifnode(threshold):
    from spikingjelly.activation_based import neuron

    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 16, 50, generator=g) * 0.8 - 0.1
    ref = neuron.IFNode(v_threshold=threshold, v_reset=None, step_mode="m")
    ours = xbar.IFNeuron(threshold, reset="subtract", step_mode="m")
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_surrogate_gradient_matches_spikingjelly_at_unit_threshold():
    from spikingjelly.activation_based import neuron, surrogate

    x = torch.rand(8, 3, 10) * 0.7
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    ref = neuron.IFNode(v_threshold=1.0, v_reset=None, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                        step_mode="m")
    ours = xbar.IFNeuron(1.0, step_mode="m")  # default surrogate: Sigmoid(alpha=4)
    ref(x1).sum().backward()
    ours(x2).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6)


def test_state_resets():
    n = xbar.IFNeuron(1.0)
    n(torch.full((2,), 0.7))
    assert n.v is not None
    n.reset()
    assert n.v is None


@pytest.mark.parametrize("kwargs, field", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"reset": "hard"}, "reset"), ({"step_mode": "x"}, "step_mode")])
def test_bad_arguments_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        xbar.IFNeuron(**kwargs)


def test_if_scan_returns_final_potential():
    spikes, v = if_scan(X.view(5, 1), 1.0)
    assert spikes.flatten().tolist() == [0, 1, 1, 0, 1]
    assert v.item() == pytest.approx(0.8)
