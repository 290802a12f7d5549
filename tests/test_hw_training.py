"""Defect maps, chips from seeds, per-device drift and hardware-aware finetuning."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import xbar
from xbar.data import synthetic_dataset
from xbar.experiments.sweeps import TensorLoader
from xbar.nonideal import draw_faults
from xbar.train import evaluate, hardware_aware_finetune, train


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = synthetic_dataset(n, seed=seed, shape=(1, 8, 8), classes=4)
    return ds.images, ds.labels


# -- defect maps -------------------------------------------------------------------------------

def test_fault_maps_are_nested_and_match_their_fractions():
    shape = torch.Size([400, 500])  # 200k devices
    small = draw_faults(shape, 0.01, 0.02, torch.Generator().manual_seed(3))
    big = draw_faults(shape, 0.05, 0.04, torch.Generator().manual_seed(3))
    assert not (small[0] & small[1]).any()
    assert (big[0] | ~small[0]).all() and (big[1] | ~small[1]).all(), "a larger fraction keeps every fault"
    n = shape.numel()
    for mask, p in ((small[0], 0.01), (small[1], 0.02), (big[0], 0.05), (big[1], 0.04)):
        bound = 5 * math.sqrt(n * p * (1 - p))  # five binomial standard deviations
        assert abs(int(mask.sum()) - n * p) < bound


def test_fixed_fault_map_survives_reprogramming_and_training(seed4):
    dev = seed4.replace(stuck_off=0.1, stuck_on=0.1, programming_sigma=0.02)
    layer = xbar.CrossbarLinear.from_linear(nn.Linear(20, 10), dev)
    xbar.fix_faults(layer, 5)
    (off_p, on_p), (off_n, on_n) = layer.fault_map
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(3):  # each step changes the weight, so every forward re-programs
        opt.zero_grad()
        layer(torch.rand(4, 20)).sum().backward()
        opt.step()
        layer.effective_weight()
        assert (layer.g_pos[off_p] == dev.g_min).all() and (layer.g_pos[on_p] == dev.g_max).all()
        assert (layer.g_neg[off_n] == dev.g_min).all() and (layer.g_neg[on_n] == dev.g_max).all()
    xbar.fix_faults(layer, None)
    assert layer.fault_map is None


def test_program_model_same_seed_same_chip_and_reads(seed4):
    dev = seed4.replace(programming_sigma=0.05, read_sigma=0.02, stuck_on=0.01)
    a, b = (xbar.to_crossbar(_mlp(), dev) for _ in range(2))
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        outs = []
        for m in (a, b):
            xbar.program_model(m, 11)
            outs.append(m(x))
        assert torch.equal(a[1].g_pos, b[1].g_pos) and torch.equal(a[3].g_neg, b[3].g_neg)
        assert torch.equal(outs[0], outs[1]), "read noise comes from per-layer seeded generators"
        xbar.program_model(b, 12)
        assert not torch.equal(a[1].g_pos, b[1].g_pos)


# -- drift with a spread of exponents ----------------------------------------------------------

def test_per_device_nu_drift_and_partial_compensation(seed4):
    shared = seed4.replace(drift_nu=0.06)
    spread = shared.replace(drift_nu_sigma=0.03)
    x = torch.rand(6, 1, 8, 8)
    outs = {}
    for name, dev in (("shared", shared), ("spread", spread)):
        model = xbar.to_crossbar(_mlp(), dev)
        xbar.program_model(model, 0)
        with torch.no_grad():
            before = model(x)
            g0 = model[1].g_pos.clone()
            xbar.drift(model, 1e6, compensate=True)
            outs[name] = (before, model(x))
            nu = model[1]._nu[0] if model[1]._nu is not None else torch.full_like(g0, 0.06)
            g_t, _ = model[1].read_conductances()
            assert torch.allclose(g_t, g0 * (1e6 / 20.0) ** -nu, rtol=1e-5)  # each device its own power law
    before, after = outs["shared"]
    assert torch.allclose(before, after, atol=1e-5), "one shared nu: compensation is exact"
    before, after = outs["spread"]
    assert not torch.allclose(before, after, atol=1e-3), "a spread of nu: compensation restores only the mean"


def test_nu_spread_round_trips_through_state_dict(seed4, tmp_path):
    dev = seed4.replace(drift_nu=0.05, drift_nu_sigma=0.02)
    model = xbar.to_crossbar(_mlp(), dev)
    xbar.program_model(model, 3)
    xbar.drift(model, 3600.0, compensate=True)
    xbar.save(model, tmp_path / "m.pt")
    back = xbar.load(tmp_path / "m.pt")
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), back(x))


# -- hardware-aware finetuning -----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, TensorLoader, TensorLoader]:
    (xtr, ytr), (xte, yte) = _data(1200, 0), _data(400, 1)
    ann = _mlp()
    loader = TensorLoader(xtr, ytr, 64, shuffle=True, seed=0)
    train(ann, loader, epochs=3, lr=3e-3, seed=0, progress=False)
    return ann, loader, TensorLoader(xte, yte, 200)


def test_hardware_aware_finetune_recovers_a_faulty_chip(trained):
    ann, loader, test = trained
    # 30% stuck devices: conversion alone loses ~10 points on this easy 4-class task
    dev = xbar.load_device("seed-4bit").replace(stuck_off=0.15, stuck_on=0.15, programming_sigma=0.03,
                                                adc_bits=6, tile_rows=16, tile_cols=16)
    conv = xbar.to_crossbar(ann, dev)
    xbar.fix_faults(conv, 0)
    xbar.program_model(conv, 0)
    calib = loader.images[:200]
    xbar.calibrate_periphery(conv, calib, method="max")
    before = evaluate(conv, test)
    hw = hardware_aware_finetune(ann, dev, loader, epochs=3, lr=3e-3, calibration=calib, seed=0, chip_seed=0,
                                 progress=False)
    after = evaluate(hw, test)
    assert [r["epoch"] for r in hw.history] == [1, 2, 3]
    assert all(m.fault_map is not None and m.profile == dev for m in hw.modules()
               if isinstance(m, xbar.CrossbarLinear))
    assert torch.equal(hw[1].fault_map[0][1], conv[1].fault_map[0][1]), "trained for the chip's own defect map"
    assert before < 0.95 and after > before + 0.05, (before, after)
    assert isinstance(ann[1], nn.Linear) and type(ann[1]) is nn.Linear, "the input model is left alone"


def test_hardware_aware_finetune_trains_a_spiking_network(trained):
    ann, loader, test = trained
    dev = xbar.load_device("seed-4bit").replace(programming_sigma=0.05, read_sigma=0.02)
    snn = xbar.to_snn(xbar.to_crossbar(ann, dev), calibration=loader.images[:200], timesteps=8)
    w0 = next(m for m in snn.modules() if isinstance(m, xbar.CrossbarLinear)).weight.detach().clone()
    hw = hardware_aware_finetune(snn, dev, loader, epochs=1, lr=1e-3, seed=0, progress=False)
    assert isinstance(hw, xbar.SpikingNetwork)
    assert math.isfinite(hw.history[0]["loss"])
    layers = [m for m in hw.modules() if isinstance(m, xbar.CrossbarLinear)]
    assert layers and all(m.profile == dev for m in layers)
    assert not torch.equal(w0, layers[0].weight.detach()), "BPTT moved the master weights"
    assert torch.equal(w0, next(m for m in snn.modules() if isinstance(m, xbar.CrossbarLinear)).weight), \
        "the input network is left alone"
    assert evaluate(hw, test) > 0.5


@pytest.mark.parametrize("kwargs, name", [({"epochs": -1}, "epochs"), ({"lr": 0.0}, "lr"),
                                          ({"noise_scale": -1.0}, "noise_scale"), ({"faults": "maybe"}, "faults")])
def test_hardware_aware_finetune_bad_arguments(trained, kwargs, name):
    ann, loader, _ = trained
    with pytest.raises((TypeError, ValueError), match=name):
        hardware_aware_finetune(ann, "seed-4bit", loader, progress=False, **kwargs)


def test_copies_stay_programmed_so_conversion_sees_the_chip(seed4):
    """A deep copy (``to_snn`` and ``to_crossbar`` copy) keeps the programmed conductances: no
    fresh programming noise, so thresholds calibrated on a noisy chip repeat exactly."""
    import copy

    dev = seed4.replace(programming_sigma=0.08, stuck_on=0.02)
    ann = xbar.to_crossbar(_mlp(), dev)
    xbar.program_model(ann, 4)
    twin = copy.deepcopy(ann)
    assert twin[1].is_programmed and torch.equal(twin[1].g_pos, ann[1].g_pos)
    calib = torch.rand(64, 1, 8, 8)
    a = [float(n.threshold) for n in xbar.to_snn(ann, calibration=calib, timesteps=4).neurons()]
    torch.manual_seed(123)  # a different global generator state must not matter
    b = [float(n.threshold) for n in xbar.to_snn(ann, calibration=calib, timesteps=4).neurons()]
    assert a == b
