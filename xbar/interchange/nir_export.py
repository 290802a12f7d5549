"""A converted network as a NIR graph (Neuromorphic Intermediate Representation, ``nir`` 1.0).

:func:`export_nir` walks a :class:`~xbar.SpikingNetwork`'s graph (:mod:`xbar.graph`) and writes
one NIR node per step. Everything is exported in **weight units**: a crossbar read as column
currents (amperes) is exported as the affine map in weight units that the currents stand for,
and every IF threshold is divided by the same amperes per weight unit, so the spikes are those
of the network (:mod:`xbar.snn` says where every scale lives).

==========================  =================================================================
xbar                        NIR
==========================  =================================================================
Linear (crossbar or float)  ``Affine`` (with bias) or ``Linear``: the effective weight
                            ``(G+ - G-) / scale`` read back from the programmed conductances
                            (programming noise, snapping, stuck devices, drift included;
                            ``weights="float"``: the master weights)
Conv2d / Conv1d             ``Conv2d`` / ``Conv1d`` (a bias-free layer gets a zero bias)
IF layer                    ``IF`` with ``r = 1``, ``v_reset = 0``, ``v_threshold`` below
average pooling             ``SumPool2d`` (default; its ``1/k^2`` is folded into the weights
                            of the next synaptic layer, or into the next IF threshold), or
                            ``AvgPool2d`` with ``avgpool="avg"``; a global mean is a sum pool
                            over the whole map (and a ``Flatten`` when it drops dimensions)
Flatten / flat reshape      ``Flatten`` over the sample (``start_dim=0``: NIR shapes have no
                            batch dimension)
add (residual merge)        edges into the consumer (NIR sums a node's inputs), a ``Scale`` on
                            every input whose merge factor is not 1
cat (channels / features)   the consumer's weight split into one synaptic node per part
scale by -1                 ``Scale``
output                      the output layer, then ``I`` (an integrator, ``r = 1``) with
                            ``readout="integrator"`` (default) or nothing (``"none"``)
==========================  =================================================================

Time: one xbar step is one time unit, ``dt = 1`` and ``r = 1``: ``v[t] = v[t-1] + I[t]``, the
discrete IF of :mod:`xbar.neurons`. (A simulator that integrates ``dv/dt = R I`` with its own
``dt`` must use ``dt = 1``.) Thresholds: xbar fires on ``v >= theta``, NIR on ``v > v_threshold``;
``v_threshold`` is the float32 number just below ``theta`` (``nextafter``), which makes the two
identical in float32 arithmetic; ``theta`` itself is in the node's metadata. Reset: NIR's IF
resets to ``v_reset``; a zero-reset network is exported exactly. NIR cannot say "reset by
subtraction": a subtract-reset layer is exported with ``v_reset = 0``, its reset mode in the
node's metadata (``xbar_reset``) and a warning naming it; so is an initial potential
(``v_init``), which NIR's IF does not have.

The output: xbar's output layer is not spiking; the network returns the time-mean of its
output in the ANN's units. With ``readout="integrator"`` the ``I`` node's state after ``T`` steps
is the sum over time of the output layer, and ``snn.run(spikes) == I.v[T] / T * output_scale``
(``output_scale`` in the graph's metadata); with ``readout="none"`` the graph's output at each
step is the output layer's value and the same formula holds for its sum over steps.

Not exported (:class:`NIRExportError`, naming the node): a spiking max-pool (NIR 1.0 has no
max-pool), 1-d pooling, ``permute``, reshapes other than a flatten, a concatenation that feeds
anything but Linear / Conv layers, padding modes other than zeros, average pools with
``ceil_mode`` or ``count_include_pad=False`` over a padding. Per-read effects (read noise, the
DAC and ADC) cannot be expressed either: a warning names the layers that have them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..graph import Node
from ..neurons import IFNeuron
from ..pooling import SpikingMaxPool
from ..shapes import node_shapes
from .twin import _inner, check_weights, layer_weights

__all__ = ["NIRExportError", "export_nir"]

AVGPOOL = ("sum", "avg")
READOUTS = ("integrator", "none")


class NIRExportError(ValueError):
    """A part of the network NIR cannot express; the message names the node."""


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise ImportError("export_nir needs the 'nir' package: pip install \"xbar[nir]\"") from None
    return nir


@dataclass
class _Value:
    """How the exported graph carries one xbar value: the sum of the outputs of ``sources`` is
    ``pending`` times the value in weight units (a sum pool leaves ``k^2`` pending)."""

    sources: list[str]
    pending: float = 1.0
    parts: list[tuple[_Value, float, int]] | None = None  # a cat: (part, factor, size) along dim 0
    shape: tuple = field(default_factory=tuple)


def _f32(a: Any) -> np.ndarray:
    return np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float32)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _Exporter:
    def __init__(self, nir: Any, snn: Any, sample_shape: tuple, weights: str, avgpool: str, readout: str) -> None:
        self.nir, self.snn, self.weights, self.avgpool, self.readout = nir, snn, weights, avgpool, readout
        self.modules = snn.graph_modules()
        try:
            self.shapes = {k: tuple(v[1:]) for k, v in node_shapes(snn.graph, self.modules, sample_shape).items()}
        except ValueError as exc:
            raise ValueError(f"input_shape: {tuple(sample_shape)} does not fit the network: {exc}") from None
        self.wiring = snn.sync_thresholds()
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.values: dict[str, _Value] = {}
        self.reset_warned: list[str] = []

    # -- helpers -------------------------------------------------------------------------------
    def amps(self, name: str) -> float:
        return float(self.wiring.gains[name][1])

    def add(self, name: str, node: Any, value: _Value | None, xbar_node: Node) -> str:
        node.metadata = {"xbar_node": xbar_node.name, **node.metadata}
        self.nodes[name] = node
        for s in value.sources if value is not None else ():
            self.edges.append((s, name))
        return name

    def plain(self, node: Node) -> _Value:
        v = self.values[node.inputs[0]]
        if v.parts is not None:
            raise NIRExportError(f"graph node {node.name!r}: reads a concatenation ({node.inputs[0]!r}); NIR has no "
                                 "concatenation and only a Linear / Conv layer reading it can be split")
        return v

    # -- nodes --------------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.snn.graph:
            if node.op == "input":
                shape = self.shapes[node.name]
                self.nodes[node.name] = self.nir.Input(input_type=np.array(shape))
                self.values[node.name] = _Value([node.name], shape=shape)
            elif node.op == "output":
                self.output(node)
            elif node.op == "module":
                self.values[node.name] = self.module(node, self.modules[node.target])
            else:
                self.values[node.name] = getattr(self, f"op_{node.op}")(node)

    def module(self, node: Node, m: nn.Module) -> _Value:
        inner = _inner(m)
        if isinstance(inner, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            return self.synaptic(node, inner)
        if isinstance(m, IFNeuron):
            return self.neuron(node, m)
        if isinstance(m, SpikingMaxPool):
            raise NIRExportError(f"graph node {node.name!r}: a spiking max-pool has no NIR node (NIR 1.0 has no "
                                 "max-pooling); convert with average pooling instead")
        if isinstance(m, (nn.Identity, nn.Dropout)):
            return self.values[node.inputs[0]]
        if isinstance(m, nn.Flatten):
            return self.flatten(node, m.start_dim, m.end_dim)
        if isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.pool(node, m)
        raise NIRExportError(f"graph node {node.name!r}: module {type(m).__name__} has no NIR export")

    def synaptic(self, node: Node, m: nn.Module) -> _Value:
        if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.padding_mode != "zeros":
            raise NIRExportError(f"graph node {node.name!r}: padding_mode={m.padding_mode!r}; NIR convolutions pad "
                                 "with zeros")
        w, b = layer_weights(m, self.weights)
        v = self.values[node.inputs[0]]
        parts = v.parts if v.parts is not None else [(v, 1.0, w.shape[1])]
        if len(parts) > 1 and getattr(m, "groups", 1) != 1:
            raise NIRExportError(f"graph node {node.name!r}: a grouped convolution reads a concatenation")
        out, start = [], 0
        for i, (part, factor, size) in enumerate(parts):
            wi = w[:, start:start + size] * (factor / part.pending)
            start += size
            name = node.name if len(parts) == 1 else f"{node.name}__part{i}"
            bi = b if i == 0 else (None if b is None else torch.zeros_like(b))
            self.add(name, self.synaptic_node(node, m, wi, bi, part), part, node)
            out.append(name)
        return _Value(out, shape=self.shapes[node.name])

    def synaptic_node(self, node: Node, m: nn.Module, w: torch.Tensor, b: torch.Tensor | None, v: _Value) -> Any:
        nir = self.nir
        meta = {"xbar_module": type(m).__name__, "weights": self.weights}
        if isinstance(m, nn.Linear):
            if b is None:
                return nir.Linear(weight=_f32(w), metadata=meta)
            return nir.Affine(weight=_f32(w), bias=_f32(b), metadata=meta)
        bias = _f32(b) if b is not None else np.zeros(w.shape[0], dtype=np.float32)
        in_shape = self.shapes[node.inputs[0]]
        padding = m.padding if isinstance(m.padding, str) else tuple(int(p) for p in m.padding)
        if isinstance(m, nn.Conv1d):
            return nir.Conv1d(input_shape=int(in_shape[-1]), weight=_f32(w), stride=int(m.stride[0]),
                              padding=padding if isinstance(padding, str) else padding[0],
                              dilation=int(m.dilation[0]), groups=int(m.groups), bias=bias, metadata=meta)
        return nir.Conv2d(input_shape=tuple(int(s) for s in in_shape[-2:]), weight=_f32(w), stride=_pair(m.stride),
                          padding=padding, dilation=_pair(m.dilation), groups=int(m.groups), bias=bias,
                          metadata=meta)

    def neuron(self, node: Node, m: IFNeuron) -> _Value:
        v = self.plain(node)
        shape = self.shapes[node.name]
        th = m.weight_threshold if m.weight_threshold is not None else m.threshold / self.amps(node.inputs[0])
        th = _f32(th.detach().double() * v.pending)
        if th.ndim == 1 and len(shape) > 1:
            th = th.reshape(-1, *([1] * (len(shape) - 1)))
        th = np.broadcast_to(th, shape).astype(np.float32)
        meta: dict[str, Any] = {"xbar_threshold": th.copy(), "xbar_fires_on": "v >= xbar_threshold",
                                "xbar_reset": m.reset_mode, "xbar_v_init": float(m.v_init)}
        inexact = [f"reset='{m.reset_mode}'"] if m.reset_mode != "zero" else []
        inexact += [f"v_init={m.v_init:g}"] if m.v_init else []
        if inexact:
            self.reset_warned.append(f"{node.name} ({', '.join(inexact)})")
        ifn = self.nir.IF(r=np.ones(shape, dtype=np.float32),
                          v_threshold=np.nextafter(th, np.float32(-np.inf)).astype(np.float32),
                          v_reset=np.zeros(shape, dtype=np.float32), metadata=meta)
        self.add(node.name, ifn, v, node)
        return _Value([node.name], shape=shape)

    def flatten(self, node: Node, start: int, end: int) -> _Value:
        v = self.plain(node)
        in_shape = self.shapes[node.inputs[0]]
        nd = len(in_shape) + 1  # dimensions of the batched value

        def sample_dim(d: int) -> int:
            d = d % nd
            if d == 0:
                raise NIRExportError(f"graph node {node.name!r}: a flatten over the batch dimension")
            return d - 1
        s, e = sample_dim(start), sample_dim(end)
        if s == e:
            return v
        self.add(node.name, self.nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=s, end_dim=e),
                 v, node)
        return _Value([node.name], v.pending, shape=self.shapes[node.name])

    def sum_pool(self, node: Node, v: _Value, kernel: tuple, stride: tuple, padding: tuple, name: str) -> _Value:
        nir = self.nir
        args = {"kernel_size": np.array(kernel), "stride": np.array(stride), "padding": np.array(padding)}
        if self.avgpool == "avg":
            self.add(name, nir.AvgPool2d(**args), v, node)
            return _Value([name], v.pending)
        self.add(name, nir.SumPool2d(**args, metadata={"xbar_folded_divisor": float(kernel[0] * kernel[1])}), v,
                 node)
        return _Value([name], v.pending * kernel[0] * kernel[1])

    def pool(self, node: Node, m: nn.Module) -> _Value:
        v = self.plain(node)
        h, w = self.shapes[node.inputs[0]][-2:]
        if isinstance(m, nn.AdaptiveAvgPool2d):
            oh, ow = self.shapes[node.name][1:]
            if h % oh or w % ow:
                raise NIRExportError(f"graph node {node.name!r}: adaptive average pooling from {h}x{w} to {oh}x{ow} "
                                     "has uneven windows; NIR pools need one kernel size")
            kernel, stride, padding = (h // oh, w // ow), (h // oh, w // ow), (0, 0)
        else:
            kernel, padding = _pair(m.kernel_size), _pair(m.padding)
            stride = _pair(m.stride if m.stride is not None else m.kernel_size)
            if m.ceil_mode or m.divisor_override or (not m.count_include_pad and any(padding)):
                raise NIRExportError(f"graph node {node.name!r}: average pooling with ceil_mode, divisor_override "
                                     "or count_include_pad=False over a padding has no NIR pool")
        out = self.sum_pool(node, v, kernel, stride, padding, node.name)
        out.shape = self.shapes[node.name]
        return out

    def op_mean(self, node: Node) -> _Value:
        v = self.plain(node)
        in_shape = self.shapes[node.inputs[0]]
        dims = sorted(d % (len(in_shape) + 1) for d in node.arg("dims"))
        if len(in_shape) != 3 or dims != [2, 3]:
            raise NIRExportError(f"graph node {node.name!r}: a mean over dims {node.arg('dims')} of [B, "
                                 f"{', '.join(map(str, in_shape))}]; only a global spatial mean has a NIR pool")
        h, w = in_shape[1:]
        out = self.sum_pool(node, v, (h, w), (h, w), (0, 0), node.name if node.arg("keepdim") else f"{node.name}__pool")
        if node.arg("keepdim"):
            return out
        name = self.add(node.name, self.nir.Flatten(input_type={"input": np.array((in_shape[0], 1, 1))},
                                                    start_dim=0, end_dim=-1), out, node)
        return _Value([name], out.pending)

    def op_reshape(self, node: Node) -> _Value:
        if len(node.arg("shape")) != 1:
            raise NIRExportError(f"graph node {node.name!r}: reshape to {node.arg('shape')}; NIR has only Flatten")
        return self.flatten(node, 1, -1)

    def op_permute(self, node: Node) -> _Value:
        raise NIRExportError(f"graph node {node.name!r}: NIR has no permute node")

    def op_scale(self, node: Node) -> _Value:
        v = self.plain(node)
        mult = self.wiring.multiplier.get(node.name, 1.0)
        if mult == 1.0:
            return v
        shape = self.shapes[node.name]
        self.add(node.name, self.nir.Scale(scale=np.full(shape, mult, dtype=np.float32)), v, node)
        return _Value([node.name], v.pending, shape=shape)

    def factors(self, node: Node) -> list[float]:
        """Each input's factor into the merge, for values in weight units."""
        fs = self.wiring.factors.get(node.name, [1.0] * len(node.inputs))
        out_amps = self.amps(node.name)
        return [float(f) * self.amps(i) / out_amps for f, i in zip(fs, node.inputs)]

    def op_add(self, node: Node) -> _Value:
        sources: list[str] = []
        shape = self.shapes[node.name]
        for k, (name, f) in enumerate(zip(node.inputs, self.factors(node))):
            v = self.values[name]
            if v.parts is not None:
                raise NIRExportError(f"graph node {node.name!r}: adds a concatenation ({name!r})")
            c = f / v.pending
            for j, s in enumerate(v.sources):
                if c == 1.0:
                    sources.append(s)
                    continue
                sname = f"{node.name}__scale{k}_{j}"
                self.add(sname, self.nir.Scale(scale=np.full(shape, c, dtype=np.float32),
                                               metadata={"xbar_merge_factor": c}), _Value([s]), node)
                sources.append(sname)
        return _Value(sources, shape=shape)

    def op_cat(self, node: Node) -> _Value:
        shape = self.shapes[node.name]
        if node.arg("dim") % (len(shape) + 1) != 1:
            raise NIRExportError(f"graph node {node.name!r}: a concatenation along dim {node.arg('dim')}; only "
                                 "channels / features (dim 1) can be split into the layer that reads them")
        for u in self.snn.graph.users(node.name):
            un = self.snn.graph.node(u)
            m = _inner(self.modules[un.target]) if un.op == "module" else None
            if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                raise NIRExportError(f"graph node {node.name!r}: NIR has no concatenation; its reader {u!r} is not a "
                                     "Linear / Conv layer whose weight could be split")
        parts = []
        for name, f in zip(node.inputs, self.factors(node)):
            v = self.values[name]
            if v.parts is not None:
                raise NIRExportError(f"graph node {node.name!r}: concatenates a concatenation ({name!r})")
            parts.append((v, f, int(self.shapes[name][0])))
        return _Value([], parts=parts, shape=shape)

    def output(self, node: Node) -> None:
        v = self.plain(node)
        shape = self.shapes[node.name]
        scale = self.wiring.output_scale * self.amps(node.inputs[0]) / v.pending
        self.output_scale = float(scale)
        if self.readout == "integrator":
            self.add(f"{node.name}__integrator", self.nir.I(r=np.ones(shape, dtype=np.float32)), v, node)
            v = _Value([f"{node.name}__integrator"])
        self.add(node.name, self.nir.Output(output_type=np.array(shape)), v, node)


def _input_shape(snn: Any) -> tuple:
    """``(in_features,)`` when the input reaches only Linear layers, through flattens."""
    graph, todo, features = snn.graph, [snn.graph.nodes[0].name], set()
    while todo:
        for u in graph.users(todo.pop()):
            node = graph.node(u)
            m = _inner(snn.get_submodule(node.target)) if node.op == "module" else None
            if isinstance(m, nn.Linear):
                features.add(m.in_features)
            elif isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
                todo.append(u)
            else:
                features.add(None)
    if len(features) != 1 or None in features:
        raise ValueError("input_shape: give the shape of one input sample (the network does not start with Linear "
                         "layers only)")
    return (features.pop(),)


def _read_effects(snn: Any) -> list[str]:
    out = []
    for path, m in snn.graph_modules().items():
        inner = _inner(m)
        if hasattr(inner, "affine_readout") and not inner.affine_readout:
            out.append(path)
    return out


@torch.no_grad()
def export_nir(snn: Any, path: Any = None, weights: str = "programmed", *, input_shape: Any = None,
               avgpool: str = "sum", readout: str = "integrator") -> Any:
    """Export a spiking network as a NIR graph (module docstring: what becomes what, and why).

    Args:
        snn: a :class:`~xbar.SpikingNetwork` (from :func:`xbar.to_snn`, or built by hand).
        path: where to write the graph (``nir.write``, HDF5); None: only return it.
        weights: ``"programmed"`` (default): the effective weights read back from the programmed
            conductances; ``"float"``: the float master weights.
        input_shape: the shape of one input sample (``(1, 28, 28)``); needed unless the input
            reaches a Linear through flattens only (then ``(in_features,)``).
        avgpool: ``"sum"`` (default: ``SumPool2d``, the ``1/k^2`` folded into the next layer;
            importers such as Norse read no ``AvgPool2d``) or ``"avg"`` (``AvgPool2d``).
        readout: ``"integrator"`` (default: the output layer feeds an ``I`` node) or ``"none"``
            (the output layer is the graph's output, for importers without ``I``).

    Returns:
        The ``nir.NIRGraph``. Its metadata (``graph.metadata``) holds ``timesteps``, ``dt``,
        ``output_scale`` (``snn.run(spikes) == sum over t of the output / T * output_scale``),
        ``weights``, ``readout`` and ``units``.

    Raises:
        NIRExportError: naming the node NIR cannot express (module docstring).
        ValueError: a bad ``weights`` / ``avgpool`` / ``readout`` / ``input_shape``.
        ImportError: ``nir`` is not installed (``pip install "xbar[nir]"``).

    Warns:
        UserWarning: naming the IF layers that reset by subtraction or start from ``v_init``
        (exported as zero-reset layers from rest, their mode in the metadata) and the layers
        whose per-read noise / DAC / ADC is not in the graph.
    """
    check_weights(weights)
    if avgpool not in AVGPOOL:
        raise ValueError(f"avgpool: expected one of {AVGPOOL}, got {avgpool!r}")
    if readout not in READOUTS:
        raise ValueError(f"readout: expected one of {READOUTS}, got {readout!r}")
    if not hasattr(snn, "graph") or not hasattr(snn, "sync_thresholds"):
        raise TypeError(f"snn: expected a SpikingNetwork, got {type(snn).__name__}")
    nir = _nir()
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else _input_shape(snn)
    ex = _Exporter(nir, snn, shape, weights, avgpool, readout)
    ex.run()
    if ex.reset_warned:
        warnings.warn("export_nir: NIR's IF resets to v_reset from rest; these IF layers are exported as zero-reset "
                      f"layers from rest, their own mode in the node metadata: {'; '.join(ex.reset_warned)}",
                      stacklevel=2)
    noisy = _read_effects(snn)
    if noisy:
        warnings.warn("export_nir: per-read effects (read noise, DAC, ADC) are not in the graph, only the programmed "
                      f"weights, for: {', '.join(noisy)}", stacklevel=2)
    from .. import __version__

    meta = {"producer": f"xbar {__version__}", "timesteps": int(snn.timesteps), "dt": 1.0,
            "output_scale": ex.output_scale, "weights": weights, "readout": readout,
            "units": "weight units (currents divided by amperes per weight unit)",
            "output": "snn.run(spikes) == (sum over T steps of the graph output) / T * output_scale"}
    graph = nir.NIRGraph(nodes=ex.nodes, edges=ex.edges, metadata=meta)
    if path is not None:
        nir.write(path, graph)
    return graph
