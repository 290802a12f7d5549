"""Side-by-side speed benchmarks: xbar against spikingjelly and a plain torch loop.

Used by ``xbar bench`` and by the pytest-benchmark suites in ``benchmarks/``. Everything runs
in one process, so the ratios compare runs made under the same conditions.

Workload: a model of the zoo (``model``, a name of :data:`xbar.models.MODELS`, built by
:func:`xbar.models.build_model`; default ``"mlp"``, the EE 518 784-100-10 bias-free MLP; also
``"lenet"`` and the zoo's other CNNs), trained for one epoch (Adam, lr 1e-3, batch 64, seed 0;
cached under ``<cache>/bench/<model>-e1-s0.pt``, the MLP's as ``mlp-784-100-10-e1-s0.pt``),
converted with 99.9th-percentile normalisation on 5000 training images
(``norm="percentile-all"``: the percentile of all activations of every ReLU, as spikingjelly's
recipe computes it on one calibration batch, layer-wise for convolutions too, so that both
sides run the same network; xbar takes the percentile of a random 16M of them where a layer has
more, as a LeNet's first convolution does), run on the MNIST test images
(``XBAR_BENCH_SAMPLES``, default 10000) in batches of 1000 with Poisson input at max rate 1.
Models with BatchNorm: xbar's ``to_snn`` folds it into the preceding layer, spikingjelly's
converter fuses Conv-BN pairs itself; both start from the same trained ANN.

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
  Both are left out, with spikingjelly's reason, for a model its converter refuses (such as
  ``res-cnn``, whose blocks call ``F.relu``).
* ``torch loop`` (the MLP only: :func:`skipped_configs` says why for other models): a
  hand-written loop over ``T`` (``torch.rand`` per step, one matrix product per layer per step,
  IF with reset by subtraction) at xbar float's thresholds.

BPTT (the MLP only): one training step (surrogate sigmoid, alpha 4, soft reset, Adam) at
``T = 8``, batch 128, on the same spikes: xbar's :class:`~xbar.SpikingNetwork` against a
spikingjelly multi-step network (``SeqToANNContainer(Linear)``, ``IFNode(v_reset=None)``), from
the same initial weights; and the same spikingjelly network fed by spikingjelly's own
``encoding.PoissonEncoder`` (one ``torch.rand_like(x) <= x`` per step, as spikingjelly is
usually trained; other random numbers).

Measuring and the printed table: :mod:`xbar.bench_report` (re-exported here).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .bench_report import BenchResult, format_result, measure, peak_memory

__all__ = ["CONFIGS", "DEFAULT_MODEL", "BenchResult", "Setup", "bench_samples", "bptt_runners",
           "bptt_skip_reason", "cache_path", "configs_for", "format_result", "inference_runner",
           "load_setup", "measure", "model_info", "peak_memory", "run_bench", "run_setup",
           "sj_network", "sj_refusal", "skipped_configs", "xbar_network"]

CONFIGS = ("xbar crossbar+meter", "xbar crossbar", "xbar float", "spikingjelly", "spikingjelly own enc",
           "torch loop")
DEFAULT_MODEL = "mlp"
_BATCH = 1000
_CALIB = 5000
_SEED = 0
_MLP_CACHE = "mlp-784-100-10-e1-s0.pt"  # the MLP's cache file name before other models came
_TOLERANCE = {"mlp": 0.2}  # accuracy points xbar float and spikingjelly may differ by
_TOLERANCE_DEFAULT = 0.3   # (same input); CNNs: a little more (xbar's 16M-value percentile)


def bench_samples(default: int = 10000) -> int:
    """Number of test images: ``$XBAR_BENCH_SAMPLES`` when set, else ``default``."""
    value = os.environ.get("XBAR_BENCH_SAMPLES")
    return int(value) if value else default


def cache_path(model: str = DEFAULT_MODEL) -> Path:
    """Where the trained benchmark model is cached: ``<xbar cache>/bench/<model>-e1-s0.pt``
    (the MLP's keeps its first name, ``mlp-784-100-10-e1-s0.pt``)."""
    from .data import default_cache_dir

    name = _MLP_CACHE if model == "mlp" else f"{model}-e1-s0.pt"
    return default_cache_dir() / "bench" / name


@dataclass
class Setup:
    """Data and models shared by every configuration.

    Attributes:
        ann: the trained float model (eval mode), on ``device``.
        images, labels: test batches (lists of ``[1000, 1, 28, 28]`` float / int64 tensors).
        calib: calibration images ``[5000, 1, 28, 28]``.
        device: torch device.
        ann_acc: the ANN's test accuracy on the benchmark images (fraction).
        model: the zoo name of ``ann`` (``"mlp"``, ``"lenet"``, ...).
    """

    ann: nn.Module
    images: list[torch.Tensor]
    labels: list[torch.Tensor]
    calib: torch.Tensor
    device: torch.device
    ann_acc: float = 0.0
    model: str = DEFAULT_MODEL
    _nets: dict[Any, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        """Number of benchmark images."""
        return sum(int(y.shape[0]) for y in self.labels)


def _trained(model: str, train_set: Any, progress: bool) -> nn.Module:
    """The zoo model ``model`` after one epoch (seed 0), from the cache or trained and cached."""
    from .models import build_model
    from .train import train

    torch.manual_seed(_SEED)
    ann = build_model(model)
    path = cache_path(model)
    if path.exists():
        try:
            ann.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return ann
        except (RuntimeError, KeyError) as exc:  # the zoo's model changed since it was cached
            if progress:
                print(f"the cached {model} does not fit the model ({str(exc).splitlines()[0]}); retraining")
            torch.manual_seed(_SEED)
            ann = build_model(model)
    if progress:
        print(f"training the benchmark model {model} (one epoch), caching it at {path}")
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(_SEED))
    train(ann, loader, epochs=1, lr=1e-3, seed=_SEED, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ann.state_dict(), path)
    return ann


def load_setup(samples: int | None = None, device: str | torch.device = "cpu",
               progress: bool = False, model: str = DEFAULT_MODEL) -> Setup:
    """Load MNIST and the (cached or freshly trained) benchmark model.

    Args:
        samples: test images to use (default :func:`bench_samples`).
        device: ``"cpu"`` or ``"cuda"``.
        progress: print what is happening (training takes a minute or more on two cores).
        model: a name of :data:`xbar.models.MODELS` (default ``"mlp"``).

    Raises:
        ValueError: ``model`` is not a zoo model.
    """
    from .data import mnist_datasets
    from .models import MODELS
    from .train import evaluate

    if model not in MODELS:
        raise ValueError(f"model: unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
    dev = torch.device(device)
    n = bench_samples() if samples is None else int(samples)
    train_set, _, test = mnist_datasets()
    ann = _trained(model, train_set, progress).to(dev).eval()
    x, y = test.images[:n].to(dev), test.labels[:n].to(dev)
    setup = Setup(ann, list(x.split(_BATCH)), list(y.split(_BATCH)),
                  train_set.images[:_CALIB].to(dev), dev, model=model)
    setup.ann_acc = evaluate(ann, list(zip(setup.images, setup.labels)))
    return setup


def model_info(ann: nn.Module, model: str = "") -> str:
    """The model in words: its weight layers by type and its parameter count, e.g.
    ``"2 Conv2d + 3 Linear, 61,470 parameters"`` (the MLP: ``"784-100-10 MLP, ..."``)."""
    kinds: dict[str, int] = {}
    for m in ann.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)):
            kinds[type(m).__name__] = kinds.get(type(m).__name__, 0) + 1
    params = sum(p.numel() for p in ann.parameters())
    text = " + ".join(f"{n} {k}" for k, n in kinds.items()) + f", {params:,} parameters"
    if model == "mlp" and _is_plain_mlp(ann):
        widths = [ann[1].in_features, ann[1].out_features, ann[3].out_features]
        text = "-".join(map(str, widths)) + " MLP, " + text
    return text


def _is_plain_mlp(ann: nn.Module) -> bool:
    """Flatten, Linear, ReLU, Linear without biases: the network the torch loop hand-writes."""
    types = (nn.Flatten, nn.Linear, nn.ReLU, nn.Linear)
    return (isinstance(ann, nn.Sequential) and len(ann) == 4
            and all(type(m) is t for m, t in zip(ann, types))
            and ann[1].bias is None and ann[3].bias is None)


def skipped_configs(setup: Setup) -> dict[str, str]:
    """``{config: why}`` for the configurations of :data:`CONFIGS` not run on ``setup``'s model:
    the torch loop for any model but the bias-free two-layer MLP; both spikingjelly
    configurations where spikingjelly's converter refuses the model."""
    why: dict[str, str] = {}
    if not _is_plain_mlp(setup.ann):
        why["torch loop"] = (f"it is a hand-written loop of the bias-free two-layer MLP (Flatten, Linear, "
                             f"ReLU, Linear); {setup.model} is not one")
    refusal = sj_refusal(setup)
    if refusal is not None:
        why["spikingjelly"] = why["spikingjelly own enc"] = refusal
    return {c: why[c] for c in CONFIGS if c in why}


def configs_for(setup: Setup) -> tuple[str, ...]:
    """The configurations of :data:`CONFIGS` that run on ``setup``'s model."""
    skipped = skipped_configs(setup)
    return tuple(c for c in CONFIGS if c not in skipped)


def bptt_skip_reason(setup: Setup) -> str | None:
    """Why the BPTT comparison does not run on ``setup``'s model (None: it runs)."""
    if setup.model == "mlp" and _is_plain_mlp(setup.ann):
        return None
    return (f"the BPTT comparison is for the 784-100-10 MLP only (a hand-built spikingjelly MLP "
            f"against xbar's, from the same weights); not run for {setup.model}")


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
    """spikingjelly 2.0's rate-coding conversion of the ANN (99.9%), single-step mode.

    Raises:
        ValueError: spikingjelly's converter refuses the model (:func:`sj_refusal` says why).
    """
    from spikingjelly.activation_based import ann2snn

    if "sj" not in setup._nets:
        recipe = ann2snn.RateCodingRecipe([(setup.calib, None)], mode="99.9%")
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                setup._nets["sj"] = ann2snn.Converter(recipe).convert(copy.deepcopy(setup.ann)).eval()
        except Exception as exc:  # another library's refusal may take any form; it is reported
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            setup._nets["sj"] = (f"spikingjelly's converter refuses {setup.model}: {type(exc).__name__}: "
                                 + re.sub(r" at 0x[0-9a-f]+", "", first))
    if isinstance(setup._nets["sj"], str):
        raise ValueError(setup._nets["sj"])
    return setup._nets["sj"]


def sj_refusal(setup: Setup) -> str | None:
    """Why spikingjelly's converter cannot convert ``setup``'s model (None: it can)."""
    try:
        sj_network(setup)
    except ValueError as exc:
        return str(exc)
    return None


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
        if not _is_plain_mlp(setup.ann):
            raise ValueError(f"config {config!r}: not run for model {setup.model!r}: "
                             f"{skipped_configs(setup)[config]}")
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

    why = bptt_skip_reason(setup)
    if why is not None:
        raise ValueError(f"bptt_runners: {why}")

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


def run_setup(setup: Setup, timesteps: tuple[int, ...] = (8, 32, 128), repeats: int = 3,
              bptt_steps: int = 10, bptt: bool = True, progress: bool = False) -> BenchResult:
    """Run every configuration that fits ``setup``'s model at every ``T``, and the BPTT
    comparison (the MLP only; none with ``bptt=False``).

    Args:
        setup: data and model (:func:`load_setup`).
        timesteps: simulation lengths.
        repeats: timed rounds per configuration, interleaved; the best is kept.
        bptt_steps: BPTT steps per round.
        bptt: run the BPTT comparison (where the model allows).
        progress: print what is happening.
    """
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for t in timesteps:
        if progress:
            print(f"{setup.model} T={t} ...", flush=True)
        fns = {c: inference_runner(setup, c, t) for c in configs_for(setup)}
        results[t] = measure(fns, setup.device, repeats)
    why = bptt_skip_reason(setup) or (None if bptt else "switched off by --skip-bptt")
    bptt_res = None
    if why is None:
        if progress:
            print("BPTT ...", flush=True)
        bptt_res = measure(bptt_runners(setup, 8, 128, bptt_steps), setup.device, repeats)
    return BenchResult(setup.samples, str(setup.device), torch.get_num_threads(), repeats,
                       setup.ann_acc, results, bptt_res, (8, 128, bptt_steps), model=setup.model,
                       model_info=model_info(setup.ann, setup.model), skipped=skipped_configs(setup),
                       bptt_note=why or "", batch=_BATCH,
                       tolerance=_TOLERANCE.get(setup.model, _TOLERANCE_DEFAULT))


def run_bench(samples: int | None = None, timesteps: tuple[int, ...] = (8, 32, 128),
              device: str = "cpu", repeats: int = 3, bptt_steps: int = 10,
              progress: bool = False, model: str = DEFAULT_MODEL, bptt: bool = True) -> BenchResult:
    """Load ``model``'s setup (:func:`load_setup`) and run :func:`run_setup` on it.

    Args:
        samples: test images (default :func:`bench_samples`).
        timesteps, repeats, bptt_steps, bptt, progress: as :func:`run_setup`.
        device: ``"cpu"`` or ``"cuda"``.
        model: a name of :data:`xbar.models.MODELS` (default ``"mlp"``).
    """
    setup = load_setup(samples, device, progress, model=model)
    return run_setup(setup, timesteps, repeats, bptt_steps, bptt, progress)
