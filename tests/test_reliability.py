"""Determinism (same seed, same bits; batch-size invariance where the maths allows) and edge cases.

What is and is not invariant is written down in the module docstring of :mod:`xbar.validation`.
Edge cases: all-zero weights, T = 1, max rate 0.02, conductances from picosiemens to
millisiemens, a layer larger than a tile, batch size 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import xbar

SEED = 7


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 20), nn.ReLU(), nn.Linear(20, 12), nn.ReLU(),
                         nn.Linear(12, 4))


def _cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 4, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4, 4))


def _images(n: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


def _snn(builder: Callable[[int], nn.Module], device: str | xbar.DeviceProfile | None = "seed-4bit",
         norm: str = "percentile", timesteps: int = 10, encoder: object = None) -> xbar.SpikingNetwork:
    ann = builder(0)
    if device is not None:
        ann = xbar.to_crossbar(ann, device)
    return xbar.to_snn(ann, calibration=_images(16, seed=99), timesteps=timesteps, norm=norm, encoder=encoder)


def _poisson(seed: int = SEED, rate: float = 0.9) -> xbar.PoissonEncoder:
    return xbar.PoissonEncoder(rate, torch.Generator().manual_seed(seed))


def _metered(snn: xbar.SpikingNetwork, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, xbar.EnergyReport]:
    with torch.no_grad(), xbar.EnergyMeter(snn, "seed-4bit") as meter:
        out = run()
    return out, meter.report()


def _spikes(report: xbar.EnergyReport) -> list[float]:
    return [layer.spikes for layer in report.layers if layer.kind == "if"]


@contextmanager
def _deterministic_algorithms() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


# -- determinism -----------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["seed-4bit", "pcm"], ids=["seed-4bit", "pcm-noisy-programming"])
@pytest.mark.parametrize("deterministic", [False, True], ids=["default", "use_deterministic_algorithms"])
@pytest.mark.parametrize("builder", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_same_seed_gives_identical_logits_spikes_and_energy(builder, deterministic: bool, device: str) -> None:
    """Two independent builds and runs (programming and conversion included) are bit-identical."""
    runs = []
    ctx = _deterministic_algorithms() if deterministic else _null()
    with ctx:
        for _ in range(2):
            snn = _snn(builder, device=device, encoder=_poisson())  # builder seeds the global generator
            runs.append(_metered(snn, lambda snn=snn: snn(_images())))
    (a, ra), (b, rb) = runs
    assert torch.equal(a, b)
    assert ra.to_dict() == rb.to_dict(), "EnergyReport bit-identical, every layer and total"
    assert _spikes(ra) == _spikes(rb) and sum(_spikes(ra)) > 0


@contextmanager
def _null() -> Iterator[None]:
    yield


def test_seeded_programming_repeats() -> None:
    """Noisy programming with the same generator seed gives the same conductances."""
    layer = xbar.CrossbarConv2d.from_conv2d(nn.Conv2d(2, 4, 3), "pcm")
    draws = []
    for seed in (3, 3, 4):
        layer.program(generator=torch.Generator().manual_seed(seed))
        draws.append((layer.g_pos.clone(), layer.g_neg.clone()))
    assert all(torch.equal(a, b) for a, b in zip(draws[0], draws[1]))
    assert not torch.equal(draws[0][0], draws[2][0]), "pcm's programming noise depends on the seed"


def test_reseeded_encoder_repeats_and_other_seed_differs() -> None:
    snn = _snn(_mlp, encoder=_poisson())
    x = _images()
    a, ra = _metered(snn, lambda: snn(x))
    snn.encoder = _poisson()
    b, rb = _metered(snn, lambda: snn(x))
    snn.encoder = _poisson(SEED + 1)
    c, rc = _metered(snn, lambda: snn(x))
    assert torch.equal(a, b) and ra.to_dict() == rb.to_dict()
    assert not torch.equal(a, c) or ra.input_events != rc.input_events, "the seed matters"


def _per_sample_runs(snn: xbar.SpikingNetwork, x: torch.Tensor, sizes: list[int],
                     run: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, xbar.EnergyReport]:
    with torch.no_grad(), xbar.EnergyMeter(snn, "seed-4bit") as meter:
        outs, start = [], 0
        for n in sizes:
            outs.append(run(x[start:start + n]))
            start += n
    return torch.cat(outs), meter.report()


def _assert_batch_invariant(full: tuple[torch.Tensor, xbar.EnergyReport],
                            split: tuple[torch.Tensor, xbar.EnergyReport]) -> None:
    (a, ra), (b, rb) = full, split
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)
    assert ra.samples == rb.samples
    assert ra.input_events == rb.input_events and ra.acs == rb.acs and ra.macs == rb.macs
    assert _spikes(ra) == _spikes(rb), "spike counts are integers: exact"
    assert ra.joules == pytest.approx(rb.joules, rel=1e-6)


@pytest.mark.parametrize("builder", [_mlp, _cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("sizes", [[4, 4], [1] * 8, [3, 5]], ids=["2x4", "8x1", "3+5"])
def test_constant_encoder_is_batch_size_invariant(builder, sizes: list[int]) -> None:
    snn = _snn(builder, encoder=xbar.ConstantEncoder())
    x = _images()
    full = _per_sample_runs(snn, x, [8], snn)
    _assert_batch_invariant(full, _per_sample_runs(snn, x, sizes, snn))


@pytest.mark.parametrize("builder", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_pre_encoded_spikes_are_batch_size_invariant(builder) -> None:
    snn = _snn(builder)
    spikes = _poisson()(_images(), snn.timesteps)  # [T, B, ...], drawn once
    full = _per_sample_runs(snn, spikes.transpose(0, 1), [8], lambda s: snn.run(s.transpose(0, 1)))
    split = _per_sample_runs(snn, spikes.transpose(0, 1), [2, 6], lambda s: snn.run(s.transpose(0, 1)))
    _assert_batch_invariant(full, split)


def test_checkpoint_round_trip_keeps_determinism(tmp_path) -> None:
    """A saved and reloaded SNN, re-seeded alike, gives the same logits and energy report."""
    snn = _snn(_cnn, encoder=_poisson())
    path = xbar.save(snn, tmp_path / "snn.pt")
    loaded = xbar.load(path)
    snn.encoder, loaded.encoder = _poisson(), _poisson()
    a, ra = _metered(snn, lambda: snn(_images()))
    b, rb = _metered(loaded, lambda: loaded(_images()))
    assert torch.equal(a, b) and ra.to_dict() == rb.to_dict()


# -- edge cases ------------------------------------------------------------------------------

def _noiseless(name: str) -> xbar.DeviceProfile:
    return xbar.load_device(name).replace(programming_sigma=0.0, d2d_sigma=0.0, read_sigma=0.0,
                                          stuck_off=0.0, stuck_on=0.0, programming_sigma_poly=None,
                                          flicker_q=0.0)


@pytest.mark.parametrize("mapping", ["differential", "clip"])
@pytest.mark.parametrize("device", ["seed-4bit", "ideal", "pcm", "pcm-noisy"])
def test_all_zero_weights_program_convert_and_meter(device: str, mapping: str) -> None:
    ann = _mlp()
    with torch.no_grad():
        for p in ann.parameters():
            p.zero_()
    noisy = device.endswith("-noisy")
    hw = xbar.to_crossbar(ann, xbar.load_device("pcm") if noisy else _noiseless(device), mapping=mapping)
    for layer in (m for m in hw.modules() if isinstance(m, xbar.CrossbarLinear)):
        assert math.isfinite(float(layer.scale)) and float(layer.scale) > 0
        assert torch.isfinite(layer.effective_weight()).all()
        if not noisy:
            assert torch.equal(layer.effective_weight(), torch.zeros_like(layer.weight))
            assert torch.equal(layer.g_pos, layer.g_neg), "a zero weight is a balanced pair"
    snn = xbar.to_snn(hw, calibration=_images(), norm="max", timesteps=4, encoder=_poisson())
    logits, report = _metered(snn, lambda: snn(_images()))
    assert torch.isfinite(logits).all() and report.acs > 0, "input spikes still cost reads"
    assert math.isfinite(report.joules) and report.joules >= 0
    if not noisy:
        assert torch.equal(logits, torch.zeros_like(logits)) and sum(_spikes(report)) == 0
    if mapping == "differential":
        assert report.crossbar_j > 0, "both devices of every pair sit at g_min and conduct"


def test_single_timestep_equals_one_step_of_the_loop() -> None:
    snn = _snn(_mlp, timesteps=1, encoder=xbar.ConstantEncoder())
    x = _images()
    logits, report = _metered(snn, lambda: snn(x))
    with torch.no_grad():
        seq = snn.run(x.unsqueeze(0), return_sequence=True)
    assert logits.shape == (8, 4) and torch.equal(logits, seq[0])
    assert report.samples == 8 and math.isfinite(report.joules)


def test_low_max_rate_spikes_rarely_and_still_runs() -> None:
    x = _images(64)
    low = _snn(_mlp, timesteps=20, encoder=_poisson(rate=0.02))
    high = _snn(_mlp, timesteps=20, encoder=_poisson(rate=1.0))
    logits, r_low = _metered(low, lambda: low(x))
    _, r_high = _metered(high, lambda: high(x))
    expected = 0.02 * 20 * float(x.sum()) / 64  # input spikes per sample at the first layer
    first = r_low.layers[0].input_events
    assert abs(first - expected) < 5 * math.sqrt(expected / 64) + 0.05 * expected
    assert r_low.acs < 0.05 * r_high.acs and torch.isfinite(logits).all()


def _scaled(g_max: float, levels: int | None) -> xbar.DeviceProfile:
    return xbar.load_device("seed-4bit").replace(name=f"g{g_max:g}", g_min=g_max / 10, g_max=g_max, levels=levels)


@pytest.mark.parametrize("g_max", [1e-12, 1e-9, 1e-6, 1e-3], ids=["1pS", "1nS", "1uS", "1mS"])
def test_tiny_and_huge_conductances_keep_ideal_equivalence(g_max: float) -> None:
    """A continuous device of any scale computes F.linear; currents and energy scale with G."""
    torch.manual_seed(0)
    lin = nn.Linear(30, 7)
    layer = xbar.CrossbarLinear.from_linear(lin, _scaled(g_max, None))
    x = torch.rand(5, 30)
    with torch.no_grad():
        assert torch.allclose(layer(x), F.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-6)
        currents = layer.currents(x)
    unit = float(layer.current_scale())
    assert torch.isfinite(currents).all() and 0 < unit < math.inf
    assert unit == pytest.approx(0.2 * (g_max - g_max / 10) / float(lin.weight.detach().abs().max()), rel=1e-5)
    assert float(currents.abs().max()) < 1e3 * g_max, "amperes follow the conductance scale"

    snn_ref = xbar.to_snn(_mlp(), calibration=_images(16), norm="max", timesteps=8, encoder=xbar.ConstantEncoder())
    snn_dev = xbar.to_snn(xbar.to_crossbar(_mlp(), _scaled(g_max, None)), calibration=_images(16), norm="max",
                          timesteps=8, encoder=xbar.ConstantEncoder())
    ref, r_ref = _metered(snn_ref, lambda: snn_ref(_images()))
    got, r_dev = _metered(snn_dev, lambda: snn_dev(_images()))
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5), "thresholds in amperes balance the currents"
    assert _spikes(r_dev) == _spikes(r_ref)
    assert math.isfinite(r_dev.joules) and r_dev.crossbar_j > 0


def test_energy_scales_linearly_from_picosiemens_to_millisiemens() -> None:
    spikes = _poisson()(_images(), 6)
    joules = {}
    for g_max in (1e-12, 1e-3):
        snn = _snn(_mlp, device=_scaled(g_max, 16), norm="none")
        dev = _scaled(g_max, 16)
        with torch.no_grad(), xbar.EnergyMeter(snn, dev) as meter:
            snn.run(spikes)
        joules[g_max] = meter.report().crossbar_j
        assert 0 < joules[g_max] < math.inf
    assert joules[1e-3] / joules[1e-12] == pytest.approx(1e9, rel=1e-4)


@pytest.mark.parametrize("device", ["ideal", "seed-4bit"])
def test_layer_larger_than_a_tile(device: str) -> None:
    """Linear(1500, 700) on a profile with 256 x 256 tiles: exact on ideal, within half a state on seed-4bit."""
    torch.manual_seed(0)
    dev = xbar.load_device(device).replace(tile_rows=256, tile_cols=256, adc_bits=24)
    lin = nn.Linear(1500, 700)
    layer = xbar.CrossbarLinear.from_linear(lin, dev)
    x = (torch.rand(3, 1500) < 0.1).float()
    with torch.no_grad(), xbar.EnergyMeter(layer, dev) as meter:
        out = layer(x)
    w, w_eff = lin.weight.detach(), layer.effective_weight()
    if device == "ideal":
        assert torch.allclose(out, F.linear(x, w, lin.bias), rtol=1e-4, atol=1e-5)
    else:
        half_step = (dev.states[1] - dev.states[0]) / 2 / float(layer.scale)
        assert float((w_eff - w).abs().max()) <= half_step * (1 + 1e-4)
    report = meter.report()
    assert report.acs == pytest.approx(float((x != 0).sum()) * 700 / 3)
    # 1500 rows in 256-row arrays: 6 arrays per column, each with its own ADC.
    assert report.layers[0].adc_conversions == 700 * 6 and math.isfinite(report.joules)


@pytest.mark.parametrize("builder", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_batch_size_one(builder) -> None:
    snn = _snn(builder, encoder=xbar.ConstantEncoder())
    x = _images()
    with torch.no_grad():
        full = snn(x)
    one, report = _metered(snn, lambda: snn(x[3:4]))
    assert one.shape == (1, 4) and torch.allclose(one, full[3:4], rtol=1e-6, atol=1e-7)
    assert report.samples == 1 and math.isfinite(report.joules)
    poisson = _snn(builder, encoder=_poisson())
    with torch.no_grad():
        assert poisson(x[:1]).shape == (1, 4)
