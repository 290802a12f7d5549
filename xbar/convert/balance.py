"""Balance: the scale ``lambda`` of every ReLU, measured on calibration data.

Threshold balancing keeps the crossbars' raw weights (every layer uses its device's whole
conductance range) and moves the normalisation into the thresholds: with ``lambda`` the scale of
a ReLU's output and ``g_in`` the scale of the value its IF layer integrates, the IF threshold is
``lambda / g_in`` (weight units; a current ``lambda / g_in * scale * V_read`` behind a crossbar)
and its spike rate approximates ``a / lambda``. Biases are divided by the scale of their layer's
input. This is Rueckauer et al. (2017)'s weight normalisation written as thresholds; the scales
of the whole graph (merges, output) follow from the ``lambda`` s (:mod:`xbar.snn`).

``norm``:
    ``"none"``        threshold 1, raw weights (the EE 518 study's vanilla mode);
    ``"max"``         ``lambda`` = max activation over the calibration data (Diehl et al. 2015);
    ``"percentile"``  ``lambda`` = that percentile of the non-zero activations
                      (Rueckauer et al. 2017; 99.9 by default);
    ``"percentile-all"`` that percentile of all activations, zeros included: what
                      spikingjelly's ``RateCodingRecipe(mode="99.9%")`` computes on one
                      calibration batch (a lower threshold when many units are silent);
    ``"spike-norm"``  Sengupta et al. (2019): IF layer by IF layer in execution order,
                      threshold = max over calibration samples and timesteps of the input it
                      integrates (weight units), with the earlier layers already converted
                      and spiking;
    ``"qcfs"``        ``lambda`` = the learned clip of the QCFS activation at the ReLU's place
                      (Bu et al., ICLR 2022; :mod:`xbar.qcfs`), no calibration data.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import fx, nn

from ..validation import check_finite, check_network_input
from .capture import ConversionError

__all__ = ["CalibrationData", "activation_scales", "entry_stages", "positive", "run_hooked", "spike_norm"]

NORMS = ("none", "max", "percentile", "spike-norm", "percentile-all", "qcfs")
_MAX_PERCENTILE_SAMPLES = 200_000
_MAX_ALL_SAMPLES = 1 << 24  # percentile-all: exact (as torch.quantile) up to 16M values per batch


def positive(x: float) -> float:
    """``x`` when it is a usable scale (finite, > 0), else 1."""
    return x if x > 0 and np.isfinite(x) else 1.0


def entry_stages(gm: fx.GraphModule) -> list[nn.Module]:
    """The modules from the input to the first synaptic layer, when the input feeds a chain of
    them (for the input checks of :func:`xbar.validation.check_network_input`)."""
    node = next(iter(gm.graph.nodes))
    out: list[nn.Module] = []
    while len(node.users) == 1:
        node = next(iter(node.users))
        if node.op != "call_module":
            break
        m = gm.get_submodule(node.target)
        out.append(m)
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            break
    return out


class CalibrationData:
    """Calibration batches, each checked (float, finite, fits the model's first layer).

    Args:
        source: a tensor, a DataLoader of ``(images, labels)`` or an iterable of batches.
        stages: the model's entry stages (:func:`entry_stages`), for the shape check.

    A one-shot iterator is read once; its first batch is kept, so that :meth:`first` and one
    pass over all batches both see it.
    """

    def __init__(self, source: Any, stages: list[nn.Module] | None = None) -> None:
        if isinstance(source, torch.Tensor):
            self._items: Iterable[Any] = [source]
        elif hasattr(source, "__iter__"):
            self._items = source
        else:
            raise TypeError(f"calibration: expected a tensor, a DataLoader or an iterable of batches, "
                            f"got {type(source).__name__}")
        self.stages = stages or []
        self._one_shot = iter(self._items) is self._items
        self._first: list[Any] | None = None
        self._rest: Iterator[Any] | None = None

    def _check(self, item: Any) -> torch.Tensor:
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        check_network_input(self.stages, x, "calibration")
        check_finite(x, "calibration")
        return x

    def first(self) -> torch.Tensor | None:
        """The first batch (checked), or None when there is none."""
        if self._first is None:
            it = iter(self._items)
            head = list(itertools.islice(it, 1))
            self._first = head
            self._rest = it if self._one_shot else None
        return self._check(self._first[0]) if self._first else None

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._one_shot:
            self.first()
            items: Iterable[Any] = itertools.chain(self._first or [], self._rest or [])
            self._first, self._rest = [], iter(())
        else:
            items = self._items
        for item in items:
            yield self._check(item)


def _run(gm: fx.GraphModule, x: torch.Tensor) -> torch.Tensor:
    try:
        return gm(x)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"calibration: a batch of shape {tuple(x.shape)} does not fit the model: "
                         f"{str(exc).splitlines()[0]}") from None


@torch.no_grad()
def run_hooked(gm: fx.GraphModule, hooks: dict[str, Any], batches: Iterable[torch.Tensor],
               device: torch.device) -> int:
    """Run ``gm`` on every batch with the forward hooks ``hooks`` (module path -> hook) in place;
    returns the samples seen. The hooks are removed afterwards, also on an error."""
    handles = [gm.get_submodule(path).register_forward_hook(fn) for path, fn in hooks.items()]
    seen = 0
    try:
        for x in batches:
            seen += x.shape[0]
            _run(gm, x.to(device))
    finally:
        for h in handles:
            h.remove()
    return seen


@torch.no_grad()
def activation_scales(gm: fx.GraphModule, calibration: CalibrationData, percentile: float | None,
                      device: torch.device, zeros: bool = False) -> dict[str, float]:
    """Max or percentile of every ReLU's output over the calibration data (of the non-zero
    outputs, or of all of them with ``zeros``), keyed by the ReLU's module path.

    Raises:
        ValueError: the calibration data yielded no samples or does not fit the model.
    """
    relus = [n.target for n in gm.graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.ReLU)]
    maxima = dict.fromkeys(relus, 0.0)
    samples: dict[str, list[torch.Tensor]] = {r: [] for r in relus}
    gen = torch.Generator().manual_seed(0)

    def hook(path: str):
        def record(_m: nn.Module, _args: tuple, h: torch.Tensor) -> None:
            maxima[path] = max(maxima[path], float(h.max())) if h.numel() else maxima[path]
            if percentile is not None:
                nz = (h.flatten() if zeros else h[h > 0].flatten()).cpu()
                cap = _MAX_ALL_SAMPLES if zeros else _MAX_PERCENTILE_SAMPLES
                if nz.numel() > cap:
                    nz = nz[torch.randperm(nz.numel(), generator=gen)[:cap]]
                samples[path].append(nz)
        return record

    seen = run_hooked(gm, {r: hook(r) for r in relus}, calibration, device)
    if seen == 0:
        raise ValueError("calibration: the loader yielded no samples")
    if percentile is None:
        return {r: positive(v) for r, v in maxima.items()}
    out = {}
    for r, vals in samples.items():
        v = torch.cat(vals).numpy() if vals else np.zeros(0)
        out[r] = positive(float(np.percentile(v, percentile)) if v.size else 0.0)
    return out


@torch.no_grad()
def spike_norm(snn: Any, calibration: CalibrationData, device: torch.device,
               set_threshold: Any) -> None:
    """Sengupta et al. (2019): every IF threshold, in execution order, set to the largest input
    (weight units) it receives over the calibration data and every timestep, with the earlier IF
    layers already set.

    Args:
        snn: the spiking network (thresholds 1 so far).
        calibration: the data.
        device: where to run.
        set_threshold: ``fn(node, weight_threshold)`` that stores the threshold and rescales
            what depends on it (:func:`xbar.convert.spiking.set_neuron`).

    Raises:
        ValueError: the calibration data yielded no samples.
    """
    from ..neurons import IFNeuron
    from ..snn import SpikingNetwork

    assert isinstance(snn, SpikingNetwork)
    for node in snn.graph.module_nodes():
        if not isinstance(snn.get_submodule(node.target), IFNeuron):
            continue
        peak = [0.0]
        seen = 0
        for x in calibration:
            seen += x.shape[0]
            snn.capture(x.to(device), node.inputs[0], lambda h: peak.__setitem__(0, max(peak[0], float(h.max()))))
        if seen == 0:
            raise ValueError("calibration: the loader yielded no samples")
        wiring = snn.sync_thresholds()
        unit = wiring.gains[node.inputs[0]][1]
        set_threshold(node, positive(peak[0] / float(unit)))


def check_norm(norm: str) -> str:
    """``norm`` if known, else a ValueError naming it."""
    if norm not in NORMS:
        raise ValueError(f"norm: unknown normalisation {norm!r}; choose one of {', '.join(NORMS)}")
    return norm


def check_maxpool(maxpool: str) -> str:
    """``maxpool`` if known (``"spike-count"`` or ``"error"``), else a ValueError."""
    if maxpool not in ("spike-count", "error"):
        raise ValueError(f"maxpool: expected 'spike-count' (spiking max-pool by accumulated spike counts) or "
                         f"'error' (refuse max-pooling), got {maxpool!r}")
    return maxpool


__all__ += ["NORMS", "check_maxpool", "check_norm", "ConversionError"]
