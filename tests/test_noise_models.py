"""Conductance-dependent device physics: programming sigma per target (polynomial, state table),
nu(G) per device, drift time origin, 1/f read noise held per sample, white noise fresh per read,
ADC-input noise, per-column drift compensation, programming floor, and the fields' errors.

Statistical tolerances are stated beside each check (n draws: the relative standard error of a
sample standard deviation is ~1/sqrt(2n)).
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from torch import nn

import xbar
from xbar import execute as executor
from xbar.chip import hold_read_noise
from xbar.device import DeviceProfile, DeviceProfileError, parse_device
from xbar.noise_models import flicker_time_factor, log_fit, polynomial, programming_sigma_of
from xbar.nonideal import program_devices

US = 1e-6
PROG = (0.26348, 1.9650, -1.1731)  # aihwkit PCMLikeNoiseModel prog_coeff, uS, g_max 25 uS


def _pcm(**kw) -> DeviceProfile:
    base = dict(name="pcm-like", g_min=0.25 * US, g_max=25 * US, read_time=250e-9,
                programming_sigma_poly=tuple(c * US for c in PROG), programming_floor="zero")
    base.update(kw)
    return DeviceProfile(**base)


@pytest.mark.parametrize("x", [0.1, 0.3, 0.5, 0.7])
def test_programmed_spread_per_target_matches_the_polynomial(x):
    dev = _pcm()
    target = torch.full((200, 200), x * dev.g_max, dtype=torch.float64)
    sigma = programming_sigma_of(dev, target)
    g = program_devices(target, dev.g_min, dev.g_max, generator=torch.Generator().manual_seed(1),
                        sigma=sigma, floor=0.0)
    expect = (PROG[0] + PROG[1] * x + PROG[2] * x * x) * US
    # 40k draws: std error of the std 0.35%, of the mean 0.5% of sigma; tolerance 2% / 2.5%
    assert (g - target).std().item() == pytest.approx(expect, rel=0.02)
    assert abs((g - target).mean().item()) < 0.025 * expect


def test_layer_programming_spread_depends_on_conductance_as_the_polynomial():
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(400, 400, bias=False, profile=_pcm().replace(programming_floor="g_min"))
    ideal = xbar.CrossbarLinear(400, 400, bias=False, profile=_pcm().ideal_devices())
    ideal.weight.data.copy_(layer.weight.data)
    ideal.program()
    layer.program(torch.Generator().manual_seed(2))
    target, got = ideal.g_pos.flatten(), layer.g_pos.flatten()
    x = target / 25e-6
    for lo, hi in ((0.3, 0.45), (0.6, 0.8)):
        sel = (x > lo) & (x < hi)
        expect = polynomial(x[sel], PROG).pow(2).mean().sqrt().item() * US
        # >= 5k devices per bin: std error ~1%; tolerance 4%
        assert (got[sel] - target[sel]).std().item() == pytest.approx(expect, rel=0.04)


def test_programmed_spread_per_state_table():
    states = (1 * US, 2 * US, 5 * US, 10 * US)
    dev = DeviceProfile(name="t", g_min=states[0], g_max=states[-1], states=states,
                        programming_sigma_states=(0.05 * US, 0.1 * US, 0.2 * US, 0.3 * US))
    for g0, s in zip(states[1:3], (0.1 * US, 0.2 * US)):
        target = torch.full((40000,), g0, dtype=torch.float64)
        g = program_devices(target, dev.g_min, dev.g_max, generator=torch.Generator().manual_seed(3),
                            sigma=programming_sigma_of(dev, target))
        assert (g - target).std().item() == pytest.approx(s, rel=0.02)  # 40k draws: 0.35%
    mid = programming_sigma_of(dev, torch.tensor([3.5 * US], dtype=torch.float64))
    assert mid.item() == pytest.approx(0.15 * US, rel=1e-9), "linear between states"


def test_floor_zero_lands_below_g_min_and_g_min_clips():
    target = torch.full((10000,), 0.25 * US, dtype=torch.float64)
    dev = _pcm()
    sigma = programming_sigma_of(dev, target)
    low = program_devices(target, dev.g_min, dev.g_max, generator=torch.Generator().manual_seed(0), sigma=sigma,
                          floor=0.0)
    clipped = program_devices(target, dev.g_min, dev.g_max, generator=torch.Generator().manual_seed(0), sigma=sigma)
    assert (low < dev.g_min).float().mean().item() > 0.3 and low.min().item() == 0.0
    assert clipped.min().item() == pytest.approx(dev.g_min)


NU = dict(drift_nu_ln=(0.0244, -0.0155), drift_nu_range=(0.049, 0.1),
          drift_nu_sigma_ln=(-0.0059, -0.0125), drift_nu_sigma_range=(0.008, 0.045))


def test_nu_per_device_matches_nu_of_g():
    torch.manual_seed(0)
    dev = _pcm(programming_sigma_poly=None, **NU)
    layer = xbar.CrossbarLinear(300, 300, bias=False, profile=dev)
    layer.program(torch.Generator().manual_seed(5))
    nu = layer._nu[0].flatten().double()
    x = (layer.g_pos.flatten() / dev.g_max).double()
    for lo, hi in ((0.02, 0.06), (0.2, 0.4), (0.6, 1.0)):
        sel = (x > lo) & (x < hi)
        mean = log_fit(x[sel] * dev.g_max, dev.g_max, NU["drift_nu_ln"], NU["drift_nu_range"])
        spread = log_fit(x[sel] * dev.g_max, dev.g_max, NU["drift_nu_sigma_ln"], NU["drift_nu_sigma_range"])
        n = int(sel.sum())
        # mean within 4 standard errors; std of the standardised residual 1 within 5% (n >= 2k)
        assert abs((nu[sel] - mean).mean().item()) < 4 * spread.max().item() / math.sqrt(n)
        assert ((nu[sel] - mean) / spread).std().item() == pytest.approx(1.0, rel=0.05)
    # and the layer drifts each device with its own exponent
    g_pos, _ = layer.drift(86400.0)
    assert torch.allclose(g_pos, layer.g_pos * (86400.0 / 20.0) ** -layer._nu[0], rtol=1e-5)


def test_aihwkit_pcm_nu_clips():
    g = torch.tensor([1.0, 0.5, 1e-3]) * 25 * US
    nu = log_fit(g, 25 * US, NU["drift_nu_ln"], NU["drift_nu_range"])
    assert nu.tolist() == pytest.approx([0.049, 0.049, 0.1])  # -0.0155 ln(x) + 0.0244 clipped


def test_time_origin_t0_is_aihwkits():
    dev = _pcm(programming_sigma_poly=None, drift_nu=0.05, drift_time_origin="t0")
    layer = xbar.CrossbarLinear(4, 3, bias=False, profile=dev)
    g0 = layer.g_pos.clone()
    for t in (0.0, 10.0, 3600.0):
        g, _ = layer.drift(t)
        assert torch.allclose(g, g0 * ((t + 20.0) / 20.0) ** -0.05, rtol=1e-6)
    plain = xbar.CrossbarLinear(4, 3, bias=False, profile=dev.replace(drift_time_origin="programming"))
    plain.weight.data.copy_(layer.weight.data)
    plain.program()
    assert torch.equal(plain.drift(10.0)[0], plain.g_pos), "programming origin: no drift before t0"


def _flicker(**kw) -> DeviceProfile:
    return _pcm(programming_sigma_poly=None, flicker_q=0.0088, flicker_exponent=0.65, flicker_q_max=0.2, **kw)


def test_flicker_sigma_is_aihwkits_q_s_form():
    dev = _flicker()
    layer = xbar.CrossbarLinear(1, 1, bias=False, profile=dev)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.program()
    layer.drift(3600.0)
    time = math.sqrt(math.log((3600 + 250e-9) / 500e-9))
    expect = math.sqrt(sum((g * min(0.0088 / (g / dev.g_max) ** 0.65, 0.2) * time) ** 2
                           for g in (layer.g_pos.item(), layer.g_neg.item())))  # both devices of the pair
    assert layer._flicker_std.item() * layer.scale.item() == pytest.approx(expect, rel=1e-5)
    assert flicker_time_factor(20.0, 250e-9) == pytest.approx(4.18, abs=0.01)


def _reads(layer, samples, steps, x_row):
    x = x_row.expand(steps * samples, -1).clone()
    with torch.no_grad():
        return layer(x).view(steps, samples, -1)


def test_flicker_is_constant_within_a_sample_and_fresh_across_samples_and_calls():
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(64, 8, bias=False, profile=_flicker())
    ideal = layer(torch.ones(1, 64)).detach()
    x = torch.ones(1, 64)
    with hold_read_noise(layer, 5):
        a = _reads(layer, 5, 7, x)
    with hold_read_noise(layer, 5):
        b = _reads(layer, 5, 7, x)
    assert torch.allclose(a, a[:1].expand_as(a), atol=1e-6), "held over the steps of a sample"
    assert not torch.allclose(a[0, 0], a[0, 1], atol=1e-5), "each sample its own draw"
    assert not torch.allclose(a[0], b[0], atol=1e-5), "fresh at the next inference"
    assert not torch.allclose(a[0, 0], ideal[0], atol=1e-5)


def test_white_read_noise_is_fresh_per_read_even_when_held():
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(64, 8, bias=False, profile=_pcm(programming_sigma_poly=None, read_sigma=0.02))
    with hold_read_noise(layer, 5):
        a = _reads(layer, 5, 7, torch.ones(1, 64))
    assert not torch.allclose(a[0], a[1], atol=1e-5)


def test_held_flicker_variance_matches_the_devices():
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(32, 4, bias=False, profile=_flicker())
    clean = layer.effective_weight()
    x = torch.rand(1, 32)
    with hold_read_noise(layer, 4000):
        out = _reads(layer, 4000, 2, x)
    noise = out[0] - x @ clean.t()
    expect = (x * x) @ (layer._flicker_std ** 2).t()
    assert torch.allclose(out[0], out[1], atol=1e-6)
    # 4000 samples per column: std error of the std 1.1%; tolerance 5%
    assert torch.allclose(noise.std(0), expect.sqrt()[0], rtol=0.05)


def test_unheld_flicker_draws_each_read_with_the_same_variance():
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(32, 4, bias=False, profile=_flicker())
    x = torch.rand(1, 32)
    out = layer(x.expand(4000, -1)).detach()
    expect = ((x * x) @ (layer._flicker_std ** 2).t()).sqrt()[0]
    assert torch.allclose(out.std(0), expect, rtol=0.05)


def _snn(dev, monkeypatch, seen):
    torch.manual_seed(0)
    ann = xbar.to_crossbar(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), dev)
    net = xbar.to_snn(ann, calibration=torch.rand(8, 1, 4, 4), timesteps=6, norm="percentile",
                      encoder=xbar.PoissonEncoder(0.7, torch.Generator().manual_seed(3)))
    layer = [m for m in net.modules() if isinstance(m, xbar.CrossbarLinear)][0]
    real = layer._held_flicker

    def spy(x, parts, tiled, steps, samples, seed):
        seen.append((steps, samples, seed))
        return real(x, parts, tiled, steps, samples, seed)
    monkeypatch.setattr(layer, "_held_flicker", spy)
    return net


def test_snn_holds_flicker_per_sample_over_time_tiles(monkeypatch):
    seen: list = []
    net = _snn(_flicker(), monkeypatch, seen)
    monkeypatch.setattr(executor, "TILE_ELEMENTS", 6 * 16 * 2)  # the whole batch, tiles of 2 steps
    with torch.no_grad():
        net(torch.rand(6, 1, 4, 4))
    assert [(t, b) for t, b, _ in seen] == [(2, 6)] * 3
    assert len({s for _, _, s in seen}) == 1, "one draw per sample, the same at every time tile"
    first = seen[0][2]
    seen.clear()
    with torch.no_grad():
        net(torch.rand(6, 1, 4, 4))
    assert seen[0][2] != first, "a new call draws afresh"
    assert [m._held for m in net.modules() if isinstance(m, xbar.CrossbarLinear)] == [None, None]


def test_snn_draws_flicker_afresh_per_tile_of_samples(monkeypatch):
    seen: list = []
    net = _snn(_flicker(), monkeypatch, seen)
    monkeypatch.setattr(executor, "TILE_ELEMENTS", 3 * 16 * 6)  # 24 samples: tiles of 3 x all 6 steps
    with torch.no_grad():
        net(torch.rand(24, 1, 4, 4))
    assert [(t, b) for t, b, _ in seen] == [(6, 3)] * 8
    assert len({s for _, _, s in seen}) == 8


def test_a_held_single_step_read_uses_the_samples_draw():
    torch.manual_seed(0)
    layer = xbar.CrossbarLinear(16, 4, bias=False, profile=_flicker())
    x = torch.rand(1, 16)
    layer.hold_read_noise(3, seed=11)
    with torch.no_grad():
        one = layer(x.expand(3, -1))          # one step of 3 samples (the last tile of steps)
        two = layer(x.expand(6, -1)).view(2, 3, -1)
    layer.hold_read_noise(None)
    assert torch.allclose(one, two[0], atol=1e-6) and torch.allclose(one, two[1], atol=1e-6)


def test_out_noise_at_the_adc_input():
    torch.manual_seed(0)
    dev = _pcm(programming_sigma_poly=None, out_noise=0.04)
    layer = xbar.CrossbarLinear(16, 4, bias=False, profile=dev)
    x = torch.rand(1, 16)
    out = layer(x.expand(8000, -1)).detach()
    expect = 0.04 * dev.g_max / layer.scale.item()
    assert out.std(0).tolist() == pytest.approx([expect] * 4, rel=0.04)  # 8000 draws: 0.8%


def test_column_compensation_restores_columns_with_their_own_nu():
    torch.manual_seed(0)
    dev = _pcm(programming_sigma_poly=None, drift_nu=0.05)
    layer = xbar.CrossbarLinear(6, 4, bias=False, profile=dev)
    nu = torch.tensor([0.02, 0.05, 0.08, 0.11]).view(4, 1).expand(4, 6).clone()
    layer._nu = (nu, nu.clone())
    x = torch.rand(5, 6)
    with torch.no_grad():
        before = layer(x)
        layer.drift(86400.0, compensate="column")
        col = layer(x)
        layer.drift(86400.0, compensate=True)
        glob = layer(x)
    assert torch.allclose(col, before, atol=1e-5)
    assert not torch.allclose(glob, before, atol=1e-3)
    with pytest.raises(ValueError, match="compensate"):
        layer.drift(10.0, compensate="per-row")


def test_column_compensation_through_the_adc_and_checkpoint():
    torch.manual_seed(0)
    dev = _pcm(programming_sigma_poly=None, **NU)
    plain = xbar.CrossbarLinear(8, 4, bias=False, profile=dev)
    adc = xbar.CrossbarLinear(8, 4, bias=False, profile=dev.replace(adc_bits=16, tile_rows=4, tile_cols=2))
    adc.weight.data.copy_(plain.weight.data)
    adc.program()
    adc._nu = plain._nu
    x = torch.rand(3, 8)
    with torch.no_grad():
        for layer in (plain, adc):
            layer.drift(3.15e7, compensate="column")
        step = adc.adc_full_scale().max().item() * adc.column_compensation.max().item() / (2 ** 15 - 1)
        assert torch.allclose(adc(x), plain(x), atol=2 * step)
    copy = xbar.CrossbarLinear(8, 4, bias=False, profile=dev)
    copy.load_state_dict(plain.state_dict())
    assert torch.allclose(copy.column_compensation, plain.column_compensation)


def test_ir_drop_outside_validity_warns():
    dev = _pcm(programming_sigma_poly=None, wire_ohm=100.0)  # 100 * 25e-6 * 32 * 16 = 1.28
    with pytest.warns(xbar.DeviceProfileWarning, match="wire_ohm.*outside its validity"):
        xbar.CrossbarLinear(32, 16, profile=dev)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xbar.CrossbarLinear(4, 4, profile=dev.replace(wire_ohm=1.0))  # 4e-4


# -- the YAML fields ---------------------------------------------------------------------------

OLD = """schema: 1
name: old
conductance: {g_max_us: 100.0, on_off_ratio: 10.0, levels: 16, spacing: linear}
read: {voltage_v: 0.2, pulse_ns: 10.0}
noise: {programming_sigma: 0.02, read_sigma: 0.01, d2d_sigma: 0.0}
drift: {nu: 0.05, nu_sigma: 0.01, t0_s: 20.0}
periphery: {adc_bits: 8, dac_bits: null, tile_rows: 256, tile_cols: 256, wire_ohm: 0.0}
energy: {adc_pj: 1.67, neuron_update_pj: 0.0, spike_pj: 0.0, digital_ac_pj: 0.9, digital_mac_pj: 4.6}
"""


def test_old_schema_1_file_loads_unchanged(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(OLD)
    dev = xbar.load_device(str(path))
    assert (dev.programming_sigma, dev.read_sigma, dev.drift_nu, dev.drift_nu_sigma) == (0.02, 0.01, 0.05, 0.01)
    assert dev.programming_sigma_poly is None and dev.flicker_q == 0 and dev.programming_floor == "g_min"
    assert dev.drift_time_origin == "programming" and dev.out_noise == 0 and dev.dac_pj == 0
    assert parse_device(dev.to_dict()) == dev
    torch.manual_seed(0)
    a = xbar.CrossbarLinear(8, 4, profile=dev)
    a.program(torch.Generator().manual_seed(1))
    g = program_devices(a.weight.new_zeros(1), 0, 1)  # noqa: F841 - the module still imports
    assert a.g_pos.min().item() >= dev.g_min * (1 - 1e-6), "clipped at g_min as before"


def test_new_fields_round_trip_through_yaml():
    dev = _flicker(flicker_t_read=1e-6, out_noise=0.01, dac_pj=0.1, drift_time_origin="t0", **NU).replace(
        programming_sigma_poly=tuple(c * US for c in PROG))
    doc = yaml.safe_load(dev.to_yaml())
    assert doc["noise"]["programming_sigma_poly_us"] == pytest.approx(list(PROG))
    assert doc["noise"]["flicker_t_read_ns"] == pytest.approx(1000.0)
    assert parse_device(doc) == dev


BASE = yaml.safe_load(OLD)


def _with(section, key, value, drop=()):
    doc = yaml.safe_load(OLD)
    doc[section][key] = value
    for sec, k in drop:
        doc[sec].pop(k)
    return doc


@pytest.mark.parametrize("doc, field", [
    (_with("noise", "programming_sigma_poly_us", "0.2"), "noise.programming_sigma_poly_us"),
    (_with("noise", "programming_sigma_poly_us", [0.1, "x"]), "noise.programming_sigma_poly_us[1]"),
    (_with("noise", "programming_sigma_poly_us", list(range(9))), "noise.programming_sigma_poly_us"),
    (_with("noise", "programming_sigma_poly_us", [0.1, 0.2]), "noise.programming_sigma_poly_us"),  # + sigma
    (_with("noise", "programming_sigma_states_us", [0.1, 0.2]), "noise.programming_sigma_states_us"),  # 16 states
    (_with("noise", "programming_sigma_states_us", [0.1] * 15 + [-1.0], drop=[("noise", "programming_sigma")]),
     "noise.programming_sigma_states_us[15]"),
    (_with("noise", "programming_floor", "below"), "noise.programming_floor"),
    (_with("noise", "programming_floor", True), "noise.programming_floor"),
    (_with("noise", "flicker_q", -0.1), "noise.flicker_q"),
    (_with("noise", "flicker_exponent", "0.65"), "noise.flicker_exponent"),
    (_with("noise", "flicker_q_max", 0.0), "noise.flicker_q_max"),
    (_with("noise", "flicker_t_read_ns", -250.0), "noise.flicker_t_read_ns"),
    (_with("drift", "time_origin", "zero"), "drift.time_origin"),
    (_with("drift", "nu_ln_coeffs", [0.1]), "drift.nu_ln_coeffs"),
    (_with("drift", "nu_ln_coeffs", [0.02, -0.01]), "drift.nu_ln_coeffs"),  # beside nu
    (_with("drift", "nu_range", [0.1, 0.05]), "drift.nu_range"),
    (_with("drift", "nu_range", [0.01, 0.05]), "drift.nu_range"),  # without nu_ln_coeffs
    (_with("drift", "nu_sigma_ln_coeffs", {"a": 1}), "drift.nu_sigma_ln_coeffs"),
    (_with("drift", "nu_sigma_range", [-0.1, 0.05]), "drift.nu_sigma_range"),
    (_with("drift", "nu_states", [0.05] * 3, drop=[("drift", "nu")]), "drift.nu_states"),
    (_with("drift", "nu_sigma_states", "0.01", drop=[("drift", "nu_sigma")]), "drift.nu_sigma_states"),
    (_with("periphery", "out_noise", -0.04), "periphery.out_noise"),
    (_with("energy", "dac_pj", "1"), "energy.dac_pj"),
])
def test_every_new_field_is_rejected_naming_it(doc, field):
    with pytest.raises(DeviceProfileError) as info:
        parse_device(doc, "bad.yaml")
    assert field in [f for f, _ in info.value.errors], info.value
    assert field in str(info.value)


def test_per_state_tables_need_a_state_table():
    doc = _with("drift", "nu_states", [0.05, 0.06], drop=[("drift", "nu")])
    doc["conductance"] = {"g_max_us": 100.0, "on_off_ratio": 10.0}
    with pytest.raises(DeviceProfileError, match="drift.nu_states: needs a state table"):
        parse_device(doc)


def test_shipped_pcm_is_aihwkits_pcm_model():
    dev = xbar.load_device("pcm")
    assert dev.programming_sigma_poly == pytest.approx(tuple(c * US for c in PROG), rel=1e-9)
    assert dev.programming_sigma == 0 and dev.programming_floor == "zero" and dev.g_max == pytest.approx(25 * US)
    assert (dev.drift_nu_ln, dev.drift_nu_range) == (NU["drift_nu_ln"], NU["drift_nu_range"])
    assert (dev.drift_nu_sigma_ln, dev.drift_nu_sigma_range) == (NU["drift_nu_sigma_ln"], NU["drift_nu_sigma_range"])
    assert (dev.flicker_q, dev.flicker_exponent, dev.flicker_q_max) == (0.0088, 0.65, 0.2)
    assert dev.flicker_t_read == pytest.approx(250e-9) and dev.drift_time_origin == "t0" and dev.drift_t0 == 20.0
    cmo = xbar.load_device("cmo-reram")
    assert cmo.read_time <= 100e-9 and cmo.flicker_t_read == pytest.approx(1e-6)
