"""Side-by-side speed benchmarks: xbar against spikingjelly and a plain torch loop.

Used by ``xbar bench`` and by the pytest-benchmark suites in ``benchmarks/``. Everything runs
in one process, so the ratios compare runs made under the same conditions.

Workload: the EE 518 784-100-10 bias-free MLP, trained for one epoch (Adam, lr 1e-3, batch 64,
seed 0; cached under ``<cache>/bench/``), converted with 99.9th-percentile normalisation on
5000 training images (``norm="percentile-all"``: the percentile of all activations, as
spikingjelly's recipe computes it, so that both sides run the same network), run on the MNIST test images (``XBAR_BENCH_SAMPLES``, default 10000) in
batches of 1000 with Poisson input at max rate 1.

Configurations, per ``T``:

* ``xbar crossbar+meter``: ``to_crossbar(ann, "seed-4bit")`` -> ``to_snn``, inside an
  :class:`~xbar.EnergyMeter`.
* ``xbar crossbar``: the same network without the meter (the meter's cost is the ratio).
* ``xbar float``: ``to_snn(ann)``, no meter.
* ``spikingjelly``: ``ann2snn.Converter(ann2snn.RateCodingRecipe(loader, mode="99.9%"))``,
  run step by step on the same Poisson spikes (xbar's encoder, same seed, handed over one step
  at a time; its time includes drawing them).
* ``spikingjelly own enc``: the same converted network fed by spikingjelly's own
  ``encoding.PoissonEncoder`` (``torch.rand_like(x) <= x`` every step), as spikingjelly is
  usually run (other random numbers, so its accuracy differs slightly).
* ``torch loop``: a hand-written loop over ``T`` (``torch.rand`` per step, one matrix product
  per layer per step, IF with reset by subtraction) at xbar float's thresholds.

BPTT: one training step (surrogate sigmoid, alpha 4, soft reset, Adam) at ``T = 8``, batch 128,
on the same spikes: xbar's :class:`~xbar.SpikingNetwork` against a spikingjelly multi-step
network (``SeqToANNContainer(Linear)``, ``IFNode(v_reset=None)``), from the same initial weights;
and the same spikingjelly network fed by spikingjelly's own ``encoding.PoissonEncoder`` (one
``torch.rand_like(x) <= x`` per step, as spikingjelly is usually trained; other random numbers).

Times are the best of ``repeats`` interleaved rounds (robust to other load on the machine).
Peak memory (measured on the warm-up run): on CUDA ``torch.cuda.max_memory_allocated`` above
the allocation before the run; on the CPU the peak of live tensor memory reconstructed from the
profiler's allocation events (``torch.profiler``, ``profile_memory=True``): tensors only, not
the process's resident set (allocator caches, libraries).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS = ("xbar crossbar+meter", "xbar crossbar", "xbar float", "spikingjelly", "spikingjelly own enc",
           "torch loop")
_BATCH = 1000
_CALIB = 5000
_SEED = 0


def bench_samples(default: int = 10000) -> int:
    """Number of test images: ``$XBAR_BENCH_SAMPLES`` when set, else ``default``."""
    value = os.environ.get("XBAR_BENCH_SAMPLES")
    return int(value) if value else default


def cache_path() -> Path:
    """Where the trained benchmark MLP is cached: ``<xbar cache>/bench/mlp-784-100-10-e1-s0.pt``."""
    from .data import default_cache_dir

    return default_cache_dir() / "bench" / "mlp-784-100-10-e1-s0.pt"


@dataclass
class Setup:
    """Data and models shared by every configuration.

    Attributes:
        ann: the trained float MLP (eval mode), on ``device``.
        images, labels: test batches (lists of ``[1000, 1, 28, 28]`` float / int64 tensors).
        calib: calibration images ``[5000, 1, 28, 28]``.
        device: torch device.
        ann_acc: the ANN's test accuracy on the benchmark images (fraction).
    """

    ann: nn.Module
    images: list[torch.Tensor]
    labels: list[torch.Tensor]
    calib: torch.Tensor
    device: torch.device
    ann_acc: float = 0.0
    _nets: dict[Any, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        """Number of benchmark images."""
        return sum(int(y.shape[0]) for y in self.labels)


def load_setup(samples: int | None = None, device: str | torch.device = "cpu",
               progress: bool = False) -> Setup:
    """Load MNIST and the (cached or freshly trained) MLP.

    Args:
        samples: test images to use (default :func:`bench_samples`).
        device: ``"cpu"`` or ``"cuda"``.
        progress: print what is happening (training takes a minute on two cores).
    """
    from .data import mnist_datasets
    from .models import mlp
    from .train import evaluate, train

    dev = torch.device(device)
    n = bench_samples() if samples is None else int(samples)
    train_set, _, test = mnist_datasets()
    torch.manual_seed(_SEED)
    ann = mlp()
    path = cache_path()
    if path.exists():
        ann.load_state_dict(torch.load(path, map_location="cpu"))
    else:
        if progress:
            print(f"training the benchmark MLP (one epoch), caching it at {path}")
        loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True,
                                             generator=torch.Generator().manual_seed(_SEED))
        train(ann, loader, epochs=1, lr=1e-3, seed=_SEED, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ann.state_dict(), path)
    ann = ann.to(dev).eval()
    x, y = test.images[:n].to(dev), test.labels[:n].to(dev)
    setup = Setup(ann, list(x.split(_BATCH)), list(y.split(_BATCH)),
                  train_set.images[:_CALIB].to(dev), dev)
    setup.ann_acc = evaluate(ann, list(zip(setup.images, setup.labels)))
    return setup


def _generator(device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_SEED)


def xbar_network(setup: Setup, timesteps: int, crossbar: bool) -> Any:
    """The converted xbar network (cached per ``T``), seed-4bit crossbars or float."""
    import xbar

    key = ("xbar", crossbar, timesteps)
    if key not in setup._nets:
        ann = xbar.to_crossbar(setup.ann, "seed-4bit") if crossbar else setup.ann
        enc = xbar.PoissonEncoder(1.0, _generator(setup.device))
        setup._nets[key] = xbar.to_snn(ann, calibration=setup.calib, timesteps=timesteps,
                                       norm="percentile-all", percentile=99.9, encoder=enc).eval()
    return setup._nets[key]


def sj_network(setup: Setup) -> nn.Module:
    """spikingjelly 2.0's rate-coding conversion of the ANN (99.9%), single-step mode."""
    from spikingjelly.activation_based import ann2snn

    if "sj" not in setup._nets:
        recipe = ann2snn.RateCodingRecipe([(setup.calib, None)], mode="99.9%")
        with contextlib.redirect_stderr(io.StringIO()):
            setup._nets["sj"] = ann2snn.Converter(recipe).convert(copy.deepcopy(setup.ann)).eval()
    return setup._nets["sj"]


@torch.no_grad()
def inference_runner(setup: Setup, config: str, timesteps: int) -> Callable[[], int]:
    """A function that classifies every benchmark image with ``config``; returns #correct."""
    import xbar

    if config in ("xbar crossbar+meter", "xbar crossbar", "xbar float"):
        snn = xbar_network(setup, timesteps, crossbar=config != "xbar float")

        def run_xbar() -> int:
            snn.encoder.generator.manual_seed(_SEED)
            correct = 0
            with torch.no_grad(), (xbar.EnergyMeter(snn) if "meter" in config else contextlib.nullcontext()):
                for x, y in zip(setup.images, setup.labels):
                    correct += (snn(x).argmax(1) == y).sum()
            return int(correct)
        return run_xbar
    if config == "spikingjelly":
        from spikingjelly.activation_based import functional

        model = sj_network(setup)
        enc = xbar.PoissonEncoder(1.0, _generator(setup.device))

        def run_sj() -> int:
            enc.generator.manual_seed(_SEED)
            correct = 0
            with torch.no_grad():
                for x, y in zip(setup.images, setup.labels):
                    functional.reset_net(model)
                    out = 0.0
                    if x.device.type == "cpu":  # one step at a time, no [T, B, ...] tensor
                        events, step = enc.events(x, timesteps), torch.empty_like(x)
                        for t in range(timesteps):
                            out = out + model(events.step(t, step))
                    else:
                        spikes = enc(x, timesteps)
                        for t in range(timesteps):
                            out = out + model(spikes[t])
                    correct += ((out / timesteps).argmax(1) == y).sum()
            functional.reset_net(model)
            return int(correct)
        return run_sj
    if config == "spikingjelly own enc":
        from spikingjelly.activation_based import encoding, functional

        model, poisson = sj_network(setup), encoding.PoissonEncoder()

        def run_sj_own() -> int:
            torch.manual_seed(_SEED)
            correct = 0
            with torch.no_grad():
                for x, y in zip(setup.images, setup.labels):
                    functional.reset_net(model)
                    out = 0.0
                    for _ in range(timesteps):
                        out = out + model(poisson(x))
                    correct += ((out / timesteps).argmax(1) == y).sum()
            functional.reset_net(model)
            return int(correct)
        return run_sj_own
    if config == "torch loop":
        return _torch_loop(setup, timesteps)
    raise ValueError(f"config: expected one of {CONFIGS}, got {config!r}")


def _torch_loop(setup: Setup, timesteps: int) -> Callable[[], int]:
    """The plain loop: per step, draw, multiply, integrate, fire, reset; at xbar's thresholds."""
    snn = xbar_network(setup, timesteps, crossbar=False)
    th = snn.neurons()[0].threshold.item()
    w1, w2 = setup.ann[1].weight.detach(), setup.ann[3].weight.detach()
    gen = _generator(setup.device)

    def run_loop() -> int:
        gen.manual_seed(_SEED)
        correct = 0
        with torch.no_grad():
            for x, y in zip(setup.images, setup.labels):
                x = x.flatten(1)
                v = torch.zeros(x.shape[0], w1.shape[0], device=x.device)
                out = torch.zeros(x.shape[0], w2.shape[0], device=x.device)
                for _ in range(timesteps):
                    s = (torch.rand(x.shape, generator=gen, device=x.device) < x).float()
                    v += s @ w1.t()
                    spike = (v >= th).float()
                    v -= spike * th
                    out += spike @ w2.t()
                correct += ((out / timesteps).argmax(1) == y).sum()
        return int(correct)
    return run_loop


def bptt_runners(setup: Setup, timesteps: int = 8, batch: int = 128, steps: int = 10,
                 ) -> dict[str, Callable[[], float]]:
    """``{"xbar": fn, "spikingjelly": fn, "spikingjelly own enc": fn}``; each fn runs ``steps``
    BPTT steps from images (Poisson encoding included), returns the last loss. All start from
    the same weights; the first two see the same spikes."""
    import xbar
    from spikingjelly.activation_based import encoding, functional, layer, neuron, surrogate

    from .models import mlp
    from .train import set_surrogate

    dev = setup.device
    torch.manual_seed(_SEED)
    init = mlp().to(dev)
    images = list(torch.cat(setup.images)[: batch * steps].split(batch))
    targets = list(torch.cat(setup.labels)[: batch * steps].split(batch))
    enc = xbar.PoissonEncoder(1.0, _generator(dev))
    snn = set_surrogate(xbar.to_snn(copy.deepcopy(init), timesteps=timesteps, norm="none",
                                    encoder=xbar.PoissonEncoder(1.0, _generator(dev))))
    sj = nn.Sequential(
        layer.SeqToANNContainer(nn.Flatten(), copy.deepcopy(init[1])),
        neuron.IFNode(v_reset=None, surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m"),
        layer.SeqToANNContainer(copy.deepcopy(init[3]))).to(dev)

    def make(model: nn.Module, gen: torch.Generator,
             forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], float]:
        state = copy.deepcopy(model.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        opt_state = copy.deepcopy(opt.state_dict())

        def run() -> float:
            model.load_state_dict(state)
            opt.load_state_dict(opt_state)
            gen.manual_seed(_SEED)
            model.train()
            loss = torch.zeros(())
            for x, y in zip(images, targets):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(forward(x), y)
                loss.backward()
                opt.step()
            return float(loss.detach())
        return run

    def sj_forward(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(sj)
        return sj(enc(x, timesteps)).mean(0)

    sj_own = copy.deepcopy(sj)
    poisson = encoding.PoissonEncoder()
    own_gen = torch.default_generator if dev.type == "cpu" else torch.cuda.default_generators[dev.index or 0]

    def sj_own_forward(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(sj_own)
        return sj_own(torch.stack([poisson(x) for _ in range(timesteps)])).mean(0)

    return {"xbar": make(snn, snn.encoder.generator, snn),
            "spikingjelly": make(sj, enc.generator, sj_forward),
            "spikingjelly own enc": make(sj_own, own_gen, sj_own_forward)}


# -- measuring --------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_stderr() -> Any:
    """Silence file descriptor 2 (the profiler's C++ start/stop messages)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float | None]:
    """Run ``fn``; return its result and its peak tensor memory above the start, MiB.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the profiler's allocation events
    (``profile_memory=True``), summed in time order; this is the tensor memory the run held
    at its peak, not the process's resident set (None when the profiler is unavailable).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    try:
        from torch.profiler import ProfilerActivity, profile

        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
        events = sorted((e for e in prof.events() if e.self_cpu_memory_usage),
                        key=lambda e: e.time_range.start)
    except (RuntimeError, AttributeError):
        return fn(), None
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return out, peak / 2 ** 20


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure(fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int = 3,
            ) -> dict[str, dict[str, Any]]:
    """Warm up (measuring peak memory and keeping the result), then time ``repeats``
    interleaved rounds; returns ``{name: {"result", "mem_mib", "times"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        result, mem = peak_memory(fn, device)
        out[name] = {"result": result, "mem_mib": mem, "times": []}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name]["times"].append(_timed(fn, device))
    return out


@dataclass
class BenchResult:
    """Everything ``xbar bench`` prints."""

    samples: int
    device: str
    threads: int
    repeats: int
    ann_acc: float
    inference: dict[int, dict[str, dict[str, Any]]]
    bptt: dict[str, dict[str, Any]]
    bptt_shape: tuple[int, int, int]


def run_bench(samples: int | None = None, timesteps: tuple[int, ...] = (8, 32, 128),
              device: str = "cpu", repeats: int = 3, bptt_steps: int = 10,
              progress: bool = False) -> BenchResult:
    """Run every configuration at every ``T`` and the BPTT comparison."""
    setup = load_setup(samples, device, progress)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for t in timesteps:
        if progress:
            print(f"T={t} ...", flush=True)
        fns = {c: inference_runner(setup, c, t) for c in CONFIGS}
        results[t] = measure(fns, setup.device, repeats)
    if progress:
        print("BPTT ...", flush=True)
    bptt = measure(bptt_runners(setup, 8, 128, bptt_steps), setup.device, repeats)
    return BenchResult(setup.samples, str(setup.device), torch.get_num_threads(), repeats,
                       setup.ann_acc, results, bptt, (8, 128, bptt_steps))


def format_result(res: BenchResult) -> str:
    """The table ``xbar bench`` prints: times, accuracies, peak memory, ratios, warnings."""
    lines = [f"xbar bench: MNIST 784-100-10 MLP (ANN test accuracy {100 * res.ann_acc:.2f}%), "
             f"{res.samples} test images in batches of {_BATCH}, device {res.device}, "
             f"{res.threads} threads, best of {res.repeats}",
             "",
             f"{'T':>4}  {'configuration':<22}{'time s':>9}{'ms/batch':>10}{'acc %':>8}{'peak MiB':>10}"]
    batches = -(-res.samples // _BATCH)
    warnings = []
    for t, rows in res.inference.items():
        for name, r in rows.items():
            best = min(r["times"])
            mem = "n/a" if r["mem_mib"] is None else f"{r['mem_mib']:.0f}"
            acc = 100 * r["result"] / res.samples
            lines.append(f"{t:>4}  {name:<22}{best:>9.3f}{1000 * best / batches:>10.1f}{acc:>8.2f}{mem:>10}")
        a_float = 100 * rows["xbar float"]["result"] / res.samples
        a_sj = 100 * rows["spikingjelly"]["result"] / res.samples
        if abs(a_float - a_sj) > 0.2:
            warnings.append(f"WARNING: T={t}: xbar float {a_float:.2f}% and spikingjelly {a_sj:.2f}% "
                            f"differ by {abs(a_float - a_sj):.2f} points (> 0.2) on the same input")
    lines += ["", "ratios of best times (x+m = xbar crossbar+meter):",
              f"{'T':>4}{'sj / x+m':>12}{'sj own enc / x+m':>19}{'x+m / xbar float':>19}"
              f"{'x+m / crossbar':>17}{'torch loop / x+m':>19}"]
    for t, rows in res.inference.items():
        best = {k: min(v["times"]) for k, v in rows.items()}
        xm = best["xbar crossbar+meter"]
        lines.append(f"{t:>4}{best['spikingjelly'] / xm:>11.2f}x{best['spikingjelly own enc'] / xm:>18.2f}x"
                     f"{xm / best['xbar float']:>18.2f}x{xm / best['xbar crossbar']:>16.2f}x"
                     f"{best['torch loop'] / xm:>18.2f}x")
    tb, bb, steps = res.bptt_shape
    bx, bs = min(res.bptt["xbar"]["times"]), min(res.bptt["spikingjelly"]["times"])
    mem = {k: ("n/a" if v["mem_mib"] is None else f"{v['mem_mib']:.0f} MiB") for k, v in res.bptt.items()}
    lines += ["", f"BPTT step (T={tb}, batch {bb}, {steps} steps, Adam): xbar {1000 * bx / steps:.1f} ms/step "
                  f"(peak {mem['xbar']}), spikingjelly {1000 * bs / steps:.1f} ms/step (peak {mem['spikingjelly']}); "
                  f"spikingjelly / xbar = {bs / bx:.2f}x; final losses {res.bptt['xbar']['result']:.4f} / "
                  f"{res.bptt['spikingjelly']['result']:.4f}"]
    own = res.bptt.get("spikingjelly own enc")
    if own is not None:
        bo = min(own["times"])
        lines.append(f"  spikingjelly with its own Poisson encoder: {1000 * bo / steps:.1f} ms/step; "
                     f"spikingjelly own enc / xbar = {bo / bx:.2f}x (other random spikes: final loss "
                     f"{own['result']:.4f})")
    return "\n".join(lines + ([""] + warnings if warnings else []))
