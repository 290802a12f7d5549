"""Mapping weights onto differential pairs: hand-worked case and Hypothesis properties."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import xbar
from xbar.mapping import map_weights, snap, unmap

US = 1e-6
# A 2-row x 3-column crossbar: Linear(in=2, out=3), weight [out, in].
W = torch.tensor([[1.0, -0.4], [0.25, 0.0], [-1.0, 0.6]])


def test_hand_worked_conductances(seed4):
    g = map_weights(W, seed4.g_min, seed4.g_max, seed4.state_tensor(), mapping="differential")
    assert g.scale.item() == pytest.approx(90 * US)
    # G+ = 10 uS + 90 uS * relu(W), snapped to {10, 16, ..., 100} uS: 32.5 -> 34.
    assert torch.allclose(g.g_pos / US, torch.tensor([[100.0, 10], [34, 10], [10, 64]]), atol=1e-4)
    assert torch.allclose(g.g_neg / US, torch.tensor([[10.0, 46], [10, 10], [100, 10]]), atol=1e-4)
    w = unmap(g.g_pos, g.g_neg, g.scale)
    assert torch.allclose(w, torch.tensor([[1.0, -0.4], [24 / 90, 0], [-1, 0.6]]), atol=1e-5)


def test_clip_mapping_reproduces_study_constraint(seed4):
    w = torch.tensor([[1.0, -0.01], [0.0, -0.5]])
    g = map_weights(w, seed4.g_min, seed4.g_max, seed4.state_tensor(), seed4.on_off_ratio, mapping="clip")
    # scale = g_max / max|W| = 100 uS; |w| clamped to [0.1, 1] and snapped to 16 states.
    assert g.scale.item() == pytest.approx(100 * US)
    assert torch.allclose(g.g_pos / US, torch.tensor([[100.0, 0], [0, 0]]), atol=1e-4)
    assert torch.allclose(g.g_neg / US, torch.tensor([[0.0, 10], [0, 52]]), atol=1e-4)
    assert torch.allclose(unmap(g.g_pos, g.g_neg, g.scale), torch.tensor([[1.0, -0.1], [0, -0.52]]), atol=1e-5)


def test_unknown_mapping_names_argument():
    with pytest.raises(ValueError, match="mapping"):
        map_weights(W, 1e-6, 1e-5, mapping="unipolar")


def test_snap_is_straight_through(seed4):
    g = torch.tensor([12e-6, 33e-6, 99e-6], requires_grad=True)
    out = snap(g, seed4.state_tensor())
    out.sum().backward()
    assert torch.equal(g.grad, torch.ones(3))


weights = st.integers(1, 6).flatmap(lambda n: st.lists(
    st.floats(-3, 3, allow_nan=False, width=32), min_size=n * 3, max_size=n * 3).map(
        lambda v: torch.tensor(v).reshape(3, -1)))


@settings(max_examples=60, deadline=None)
@given(w=weights, profile=st.sampled_from(["seed-4bit", "ideal"]))
def test_snapped_values_lie_in_table_and_one_device_at_gmin(w, profile):
    dev = xbar.load_device(profile)
    g = map_weights(w, dev.g_min, dev.g_max, dev.state_tensor())
    if dev.states is not None:
        table = dev.state_tensor()
        for t in (g.g_pos, g.g_neg):
            assert torch.isclose(t.reshape(-1, 1), table.reshape(1, -1), rtol=1e-6, atol=0).any(1).all()
    at_min = torch.isclose(torch.minimum(g.g_pos, g.g_neg), torch.tensor(dev.g_min), rtol=1e-5, atol=0)
    assert at_min.all()


@settings(max_examples=60, deadline=None)
@given(w=weights)
def test_map_unmap_within_half_a_state_step(w, seed4):
    g = map_weights(w, seed4.g_min, seed4.g_max, seed4.state_tensor())
    step = (seed4.g_max - seed4.g_min) / (seed4.levels - 1)
    err = (unmap(g.g_pos, g.g_neg, g.scale) - w).abs()
    assert (err <= step / 2 / g.scale * (1 + 1e-4) + 1e-7).all()


@settings(max_examples=40, deadline=None)
@given(w=weights, batch=st.integers(1, 4))
def test_ideal_profile_equals_f_linear(w, batch, ideal):
    layer = xbar.CrossbarLinear(w.shape[1], w.shape[0], bias=False, profile=ideal)
    with torch.no_grad():
        layer.weight.copy_(w)
    x = torch.rand(batch, w.shape[1])
    with torch.no_grad():
        assert torch.allclose(layer(x), F.linear(x, w), rtol=1e-4, atol=1e-5)
