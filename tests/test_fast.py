"""Fast paths equal the plain ones: Poisson sampler, IF scan and its backward, event-driven first
layer, mean-of-spikes output, and the energy meter's counts under all of them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xbar
import xbar.encoding as encoding
from reference import saved_bytes, step_by_step
from xbar.neurons import if_scan, if_step
from xbar.scan import _IFScanFunction, _scan
from xbar.train import set_surrogate

# -- helpers --------------------------------------------------------------------------------


def _dyadic_mlp(seed: int = 0, bias: bool = False) -> nn.Sequential:
    """A 16-12-8-3 MLP whose weights are multiples of 1/64 in [-1, 1]: every partial sum of
    spikes times weights is exact in float32, so any summation order gives the same bits."""
    torch.manual_seed(seed)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(16, 12, bias=bias), nn.ReLU(), nn.Linear(12, 8, bias=bias),
                        nn.ReLU(), nn.Linear(8, 3, bias=bias))
    with torch.no_grad():
        for p in ann.parameters():
            p.copy_(torch.randint(-64, 65, p.shape).float() / 64)
    return ann


def _dyadic_snn(timesteps: int = 8, seed: int = 0, bias: bool = False) -> xbar.SpikingNetwork:
    snn = xbar.to_snn(_dyadic_mlp(seed, bias), timesteps=timesteps, norm="none",
                      encoder=xbar.PoissonEncoder(0.9, torch.Generator().manual_seed(11)))
    for neuron in snn.neurons():
        neuron.threshold.fill_(0.75)
    return snn


def _images(n: int = 6, side: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, side, side), generator=g).float() / 255
    return x * (torch.rand(x.shape, generator=g) < 0.6)


# -- Poisson sampler ----------------------------------------------------------------------------


def test_dense_and_events_are_the_same_spikes():
    x = _images(7, 5)
    enc = xbar.PoissonEncoder(0.7, torch.Generator().manual_seed(3))
    dense = enc(x, 9)
    enc.generator.manual_seed(3)
    ev = enc.events(x, 9)
    assert dense.shape == (9, 7, 1, 5, 5) and dense.dtype == torch.float32
    assert torch.equal(ev.dense(), dense)
    assert torch.equal(ev.counts(), dense.sum((0, 1)).double())
    assert set(dense.unique().tolist()) <= {0.0, 1.0}
    assert not dense[:, x == 0].any()  # zero pixels never spike (and draw nothing)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_spikes_as_equals_the_plain_conversion(dtype):
    g = torch.Generator().manual_seed(2)
    spikes = torch.rand(6, 11, generator=g) < 0.4
    for s in (spikes, spikes[:, 3:8], spikes.t(), spikes[2]):  # contiguous and strided views
        out = encoding.spikes_as(s, dtype)
        assert out.dtype == dtype and torch.equal(out, s.to(dtype))
    floats = spikes.float()
    assert encoding.spikes_as(floats, dtype).dtype == dtype  # a non-bool input is converted plainly


def test_same_seed_same_spikes_and_chunks_equal_one_draw():
    x = _images(5)
    enc = xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(5))
    whole = enc(x, 12)
    enc.generator.manual_seed(5)
    assert torch.equal(enc(x, 12), whole)
    enc.generator.manual_seed(5)
    assert torch.equal(torch.cat([enc(x, 5), enc(x, 1), enc(x, 6)]), whole)
    enc.generator.manual_seed(6)
    assert not torch.equal(enc(x, 12), whole)


def test_thresholds_equal_the_former_float_comparison():
    # P(u < p) for the CPU's u = k / 2**24 is ceil(p * 2**24) / 2**24: check the identity
    # {k : k / 2**24 < p} = {k : k < c} on the boundary values, and the fused form of c.
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.arange(256) / 255.0, torch.rand(5000, generator=g), torch.tensor([1e-40, 1e-30, 1.0])])
    for rate in (1.0, 0.37, 0.02):
        c = encoding._thresholds(x, rate)
        p = x * rate
        assert torch.equal(c, torch.ceil(p * 2.0 ** 24))
        k = c - 1  # the largest k that spikes, and c itself (the smallest that does not)
        assert bool(((k / 2.0 ** 24 < p) | (c == 0)).all()) and not bool((c / 2.0 ** 24 < p).any())
    u = torch.rand(10 ** 5, generator=g)
    assert torch.equal(u * 2.0 ** 24, torch.round(u * 2.0 ** 24))  # torch.rand's 24-bit grid


@pytest.mark.parametrize("high, low", [(0, 32768), (100, 12345), (255, 65536), (3, 0)])
def test_byte_scheme_probability(high, low):
    g = torch.Generator().manual_seed(1)
    p, steps = 2000, 4000
    spikes = encoding._byte_bernoulli(torch.full((p,), high, dtype=torch.uint8),
                                      torch.full((p,), low, dtype=torch.int32), steps, g).float()
    prob = (65536 * high + low) / 2 ** 24
    sd = (prob * (1 - prob) / (p * steps)) ** 0.5
    assert abs(spikes.mean().item() - prob) <= 5 * sd + 1e-12


def test_reserve_overflow_is_exact_and_deterministic(monkeypatch):
    monkeypatch.setattr(encoding, "_reserve", lambda pixels: 1)  # forces the overflow path
    x = torch.full((50, 1, 8, 8), 0.5)  # every pixel ties with probability 1/256
    enc = xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(2))
    a = enc(x, 64)
    enc.generator.manual_seed(2)
    b = torch.cat([enc(x, 30), enc(x, 34)])
    assert torch.equal(a, b)
    sd = (0.25 / a.numel()) ** 0.5
    assert abs(a.mean().item() - 0.5) < 5 * sd


def test_mnist_like_pixel_rates():
    x = (torch.arange(256) / 255.0).repeat(40).view(40, 256)
    enc = xbar.PoissonEncoder(0.8, torch.Generator().manual_seed(4))
    rate = enc(x, 400).mean((0, 1))
    p = x[0] * 0.8
    sd = (p * (1 - p) / (400 * 40)).sqrt()
    assert bool(((rate - p).abs() <= 5 * sd + 1e-9).all())


def test_float64_images_keep_the_former_sampler():
    x = _images(3).double()
    g = torch.Generator().manual_seed(9)
    out = xbar.PoissonEncoder(0.5, g)(x, 4)
    g.manual_seed(9)
    ref = (torch.rand((4, *x.shape), generator=g, dtype=torch.float64) < x * 0.5).double()
    assert torch.equal(out, ref)


# -- IF scan and its backward ---------------------------------------------------------------------


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("divide", [False, True])
@pytest.mark.parametrize("shape, per_channel", [((7, 5, 6), False), ((5, 3, 4, 2, 2), True), ((3, 2, 40000), False),
                                                ((2, 3, 100000), False)])  # the last: three chunks
def test_scan_is_bitwise_the_loop_of_if_steps(reset, divide, shape, per_channel):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 0.6
    th = (torch.rand(shape[2], generator=g) + 0.3).view(-1, 1, 1) if per_channel else torch.tensor(0.8)
    v0 = torch.randn(shape[1:], generator=g) * 0.1
    sur = (lambda z: (z >= 0).to(z.dtype)) if divide else None
    ref_s, ref_v = if_scan(x, th, reset, sur, v0.clone())
    count = torch.zeros((), dtype=torch.float64)
    s, v, _ = _scan(x, th, v0.clone(), reset == "subtract", divide, count=count)
    assert torch.equal(s, ref_s) and torch.equal(v, ref_v)
    assert count.item() == ref_s.sum().item() > 0  # the spikes counted as they are made


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fused_backward_equals_autograd_of_if_scan(reset):
    from spikingjelly.activation_based import surrogate

    g = torch.Generator().manual_seed(1)
    x = (torch.randn(9, 4, 6, generator=g) * 0.7).requires_grad_()
    th = torch.tensor(0.6)
    w = torch.randn(9, 4, 6, generator=g)
    ref_s, ref_v = if_scan(x, th, reset, surrogate.Sigmoid(alpha=4.0))
    ref_g, = torch.autograd.grad((ref_s * w).sum() + (ref_v ** 2).sum(), x)
    s, v = _IFScanFunction.apply(x, th, 4.0, reset == "subtract")
    got, = torch.autograd.grad((s * w).sum() + (v ** 2).sum(), x)
    assert torch.equal(s, ref_s) and torch.equal(v, ref_v)
    assert torch.equal(got, ref_g)


def test_fused_backward_memory_is_linear_in_t():
    from spikingjelly.activation_based import surrogate

    sur, th, per_step = surrogate.Sigmoid(alpha=4.0), torch.tensor(0.6), 64 * 100 * 4
    fused, ref = {}, {}
    for t in (4, 8, 16, 32):
        x = torch.randn(t, 64, 100).requires_grad_()
        fused[t] = saved_bytes(lambda: _IFScanFunction.apply(x, th, 4.0, True))
        ref[t] = saved_bytes(lambda: if_scan(x, th, "subtract", sur))
    for t in fused:
        assert fused[t] == t * per_step + th.untyped_storage().nbytes()  # one [B, N] per step
        assert ref[t] >= t * per_step  # the autograd graph is linear too, one [B, N] per step


def test_network_gradients_fused_equal_module_path():
    def grads(force_module: bool) -> list[torch.Tensor]:
        snn = set_surrogate(_dyadic_snn(6, seed=2, bias=True))
        snn.train()
        if force_module:  # a hook of its own makes the body call the IF module (if_scan)
            for n in snn.neurons():
                n.register_forward_hook(lambda *a: None)
        x_seq = (torch.rand(6, 5, 1, 4, 4, generator=torch.Generator().manual_seed(3)) < 0.5).float()
        loss = nn.functional.cross_entropy(snn.run(x_seq), torch.tensor([0, 1, 2, 0, 1]))
        loss.backward()
        return [p.grad for p in snn.parameters()]

    for a, b in zip(grads(False), grads(True)):
        assert torch.equal(a, b)


# -- event-driven first layer and mean-of-spikes output --------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_forward_is_bitwise_the_step_by_step_run(bias):
    snn = _dyadic_snn(8, bias=bias)
    x = _images(6)
    snn.encoder.generator.manual_seed(4)
    with torch.no_grad():
        fast = snn(x)
        snn.encoder.generator.manual_seed(4)
        x_seq = snn.encoder(x, 8)
        assert torch.equal(fast, step_by_step(snn, x_seq))
        seq = snn.run(x_seq, return_sequence=True)
        assert seq.shape == (8, 6, 3) and torch.equal(seq.mean(0), fast)


@pytest.mark.parametrize("device", [None, "seed-4bit"])
def test_forward_matches_run_on_trained_style_weights(device):
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(25, 20), nn.ReLU(), nn.Linear(20, 4))
    if device:
        ann = xbar.to_crossbar(ann, device)
    x = _images(9, 5)
    snn = xbar.to_snn(ann, calibration=x, timesteps=16, norm="max",
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(1)))
    with torch.no_grad():
        fast = snn(x)
        snn.encoder.generator.manual_seed(1)
        x_seq = snn.encoder(x, 16)
        assert torch.allclose(fast, step_by_step(snn, x_seq), rtol=1e-5, atol=1e-6)


def test_cnn_forward_and_hooked_first_layer_fall_back_correctly():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 3))
    x = _images(4)
    snn = xbar.to_snn(cnn, calibration=x, timesteps=6, norm="max",
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(2)))
    with torch.no_grad():
        fast = snn(x)
        snn.encoder.generator.manual_seed(2)
        assert torch.allclose(fast, step_by_step(snn, snn.encoder(x, 6)), rtol=1e-5, atol=1e-6)
    mlp = _dyadic_snn(5)
    seen = []
    mlp.stages[1].register_forward_hook(lambda m, a, o: seen.append(a[0].shape))
    with torch.no_grad():
        mlp(_images(3))
    assert seen == [(15, 16)]  # the hook saw every step: the module was called


# -- energy meter under the fast paths ----------------------------------------------------------------


def _totals(snn: xbar.SpikingNetwork, call) -> tuple[dict, list]:
    with torch.no_grad(), xbar.EnergyMeter(snn, "seed-4bit") as meter:
        call()
    report = meter.report()
    return meter.raw_totals(), [(l.name, l.input_events, l.acs, l.macs, l.crossbar_j, l.adc_conversions,
                                 l.neuron_updates, l.spikes) for l in report.layers]


@pytest.mark.parametrize("crossbar", [False, True])
def test_meter_totals_identical_with_and_without_the_fast_paths(crossbar, monkeypatch):
    import xbar.execute as execute

    calls = {"events": 0, "tail": 0}
    event_linear, run_tail = execute.event_linear, execute._run_tail

    def spy_events(*args):
        calls["events"] += 1
        return event_linear(*args)

    def spy_tail(*args):
        calls["tail"] += 1
        return run_tail(*args)

    monkeypatch.setattr(execute, "event_linear", spy_events)
    monkeypatch.setattr(execute, "_run_tail", spy_tail)
    snn = _dyadic_snn(8, bias=True)
    if crossbar:
        snn = xbar.to_crossbar(snn, "seed-4bit")
    x = _images(6)
    snn.encoder.generator.manual_seed(8)
    x_seq = snn.encoder(x, 8)
    per_step = _totals(snn, lambda: snn.run(x_seq, return_sequence=True))  # meter checks binary
    mean_trick = _totals(snn, lambda: snn.run(x_seq, binary=True))
    snn.encoder.generator.manual_seed(8)
    events = _totals(snn, lambda: snn(x))
    hooks = []
    for stage in snn.stages:
        hooks.append(stage.register_forward_hook(lambda *a: None))  # disables every fast path
    plain = _totals(snn, lambda: snn.run(x_seq))
    for h in hooks:
        h.remove()
    assert per_step == mean_trick == events == plain
    assert per_step[0]["acs"] > 0 and per_step[0]["macs"] == 0
    assert calls == {"events": 1, "tail": 2}  # the fast paths did run


def test_meter_counts_analog_tail_per_step():
    # A pool before the output layer makes its input analog: the meter must see every step.
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    snn = xbar.to_snn(cnn, calibration=_images(4), timesteps=5, norm="max")
    x_seq = (torch.rand(5, 4, 1, 4, 4) < 0.5).float()
    fast = _totals(snn, lambda: snn.run(x_seq, binary=True))
    slow = _totals(snn, lambda: snn.run(x_seq, return_sequence=True))
    assert fast == slow and fast[0]["macs"] > 0


# -- optional compile and GPU -------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_scan_gives_identical_results():
    snn = _dyadic_snn(6)
    x_seq = (torch.rand(6, 4, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    with torch.no_grad():
        eager = snn.run(x_seq, return_sequence=True)
        compiled = snn.compile_scan().run(x_seq, return_sequence=True)
    assert torch.equal(eager, compiled)


@pytest.mark.gpu
def test_cuda_sampler_and_network():
    dev = torch.device("cuda")
    x = _images(64, 8).to(dev)
    enc = xbar.PoissonEncoder(0.8, torch.Generator(device=dev).manual_seed(0))
    a = enc(x, 16)
    enc.generator.manual_seed(0)
    assert torch.equal(enc.events(x, 16).dense(), a) and a.device.type == "cuda"
    enc.generator.manual_seed(0)
    assert torch.equal(enc(x, 16), a)
    assert abs(a.mean().item() - 0.8 * x.mean().item()) < 0.02
    snn = xbar.to_crossbar(_dyadic_snn(16), "seed-4bit").to(dev)
    snn.encoder = enc
    with torch.no_grad():
        gpu = snn.run(a)
        cpu = snn.cpu().run(a.cpu())
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_cuda_meter_and_training_match_cpu():
    dev = torch.device("cuda")
    snn = _dyadic_snn(8, bias=True)
    x_seq = (torch.rand(8, 5, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    cpu = _totals(snn, lambda: snn.run(x_seq, binary=True))
    snn = snn.to(dev)
    gpu = _totals(snn, lambda: snn.run(x_seq.to(dev), binary=True))
    assert cpu[0] == pytest.approx(gpu[0], rel=1e-9)
    set_surrogate(snn).train()
    loss = snn.run(x_seq.to(dev)).sum()
    loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in snn.parameters())


def test_time_chunks_equal_one_pass(monkeypatch):
    import xbar.execute as execute

    snn = _dyadic_snn(16, bias=True)
    x = _images(6)

    def run() -> tuple:
        snn.encoder.generator.manual_seed(3)
        with torch.no_grad():
            out = snn(x)
            snn.encoder.generator.manual_seed(3)
            seq = snn.run(snn.encoder(x, 16), return_sequence=True)
        snn.encoder.generator.manual_seed(3)
        return out, seq, _totals(snn, lambda: snn(x))

    whole = run()
    monkeypatch.setattr(execute, "TILE_ELEMENTS", 6 * 12 * 5)  # tiles of 5 steps (widest value: 12 per sample)
    chunked = run()
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
    assert whole[2] == chunked[2] and whole[2][0]["acs"] > 0
