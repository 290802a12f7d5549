"""``SpikingNetwork``: a graph of crossbar layers and IF neurons run over ``T`` timesteps.

A spiking network holds a :class:`~xbar.graph.Graph` (plain data: ``print(snn.graph)``) and the
modules its nodes call, registered under the paths of the model they came from
(``snn.get_submodule("layer1.0.conv2")``). :func:`xbar.to_snn` builds one from any
``torch.fx``-traceable ANN; ``SpikingNetwork(stages)`` builds a chain from a list of stages by
hand (paths ``"0"``, ``"1"``, ...). :mod:`xbar.execute` runs it (multi-step, in cache-sized
tiles, with the fast paths); ``tests/test_snn.py`` and ``tests/test_graph_fast.py`` prove the
result equal to running the graph one timestep at a time.

Units and scales (the threshold balancing of :mod:`xbar.convert`). Every value in the network
stands for an ANN value: ``ann ~ gain * value / amperes_per_weight_unit``. The input has gain 1.
A synaptic layer keeps its input's gain (its bias was divided by that gain when converted); a
crossbar whose output only IF neurons integrate (``args["integrated"]`` of its node) is read as
column currents, so its output carries ``scale * V_read`` amperes per weight unit. An IF layer
fires at ``threshold = weight_threshold * amperes_per_weight_unit`` (a current inside a crossbar
network, ``theta = lambda * scale * V_read``) and its spikes have gain
``weight_threshold * gain_in``: the balanced scale ``lambda`` of that layer.
:meth:`SpikingNetwork.sync_thresholds` derives all of this before every simulation, so
thresholds follow a re-programmed crossbar (its ``scale`` changes with ``max|W|``).

Where rescaling lives at a merge (``add``, ``cat``): the inputs of a merge generally have
different scales (a residual block adds a crossbar's currents to the spikes of its shortcut).
The merge takes one input as its reference (the first crossbar current, else the first input)
and multiplies each other input by ``factor = (its gain / its amperes per unit) / (the
reference's)``: a spike of a shortcut is added as a current pulse of ``factor`` amperes. This is
digital work at the merge, counted by the energy meter: one add per non-zero element of every
input but the reference (``merge_adds``), and one multiply per element other than 0 and 1 of
every input whose factor is not 1 (``scale_muls``; a spike adds the factor itself). The output
is multiplied by its gain (``output_scale``), so that ``snn(images)`` approximates
``ann(images)`` in the ANN's units.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from .encoding import PoissonEncoder, _check_timesteps
from .execute import Wiring, execute
from .graph import Graph, GraphError, Node
from .layers import CROSSBAR_TYPES
from .neurons import IFNeuron
from .pooling import SpikingMaxPool
from .validation import check_finite, check_network_input, value_checks_enabled

_SYNAPTIC = (nn.Linear, nn.Conv1d, nn.Conv2d)
_PASSIVE = (nn.Flatten, nn.Identity, nn.Dropout)


class CurrentReadout(nn.Module):
    """Reads a crossbar layer as column currents (amperes) instead of weight units.

    Graphs built by :func:`xbar.to_snn` mark such layers on their nodes instead (``integrated``);
    this wrapper is for chains built by hand.

    Args:
        layer: a :class:`~xbar.CrossbarLinear` or :class:`~xbar.CrossbarConv2d`.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, CROSSBAR_TYPES):
            raise TypeError(f"layer: expected a crossbar layer, got {type(layer).__name__}")
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Column currents, amperes."""
        return self.layer.currents(x)

    def current_scale(self) -> torch.Tensor:
        """Amperes per weight unit of the wrapped layer."""
        return self.layer.current_scale()


class _Scope(nn.Module):
    """A container for the modules under one path prefix (as in ``torch.fx.GraphModule``)."""


def _synaptic(m: nn.Module) -> bool:
    return isinstance(m, (*_SYNAPTIC, CurrentReadout))


def _chain(stages: list[nn.Module]) -> Graph:
    nodes = [Node("input", "input")]
    for i, _ in enumerate(stages):
        nodes.append(Node(str(i), "module", (nodes[-1].name,), str(i)))
    nodes.append(Node("output", "output", (nodes[-1].name,)))
    return Graph(nodes)


def integrated_nodes(graph: Graph, modules: dict[str, nn.Module]) -> set[str]:
    """Synaptic module nodes whose output reaches nothing but IF layers (through pooling,
    reshapes and merges): the layers whose currents neurons integrate."""
    into: dict[str, bool] = {}
    for node in reversed(graph.nodes):
        if node.op in ("input", "output"):
            continue
        ok = bool(graph.users(node.name))
        for u in graph.users(node.name):
            un = graph.node(u)
            m = modules.get(un.target) if un.op == "module" else None
            if isinstance(m, IFNeuron):
                continue
            if un.op == "output" or isinstance(m, (SpikingMaxPool, *_SYNAPTIC, CurrentReadout)) \
                    or (un.op == "module" and m is None) or not into.get(u, False):
                ok = False
        into[node.name] = ok
    return {n.name for n in graph.module_nodes() if _synaptic(modules[n.target]) and into[n.name]}


class SpikingNetwork(nn.Module):
    """A spiking network: encoder, then the graph over ``timesteps`` steps, output averaged.

    The output scale (ANN units) costs no operation: it folds into the output layer's readout
    constant (the conversion of a column output into weight units already multiplies by one).

    Args:
        stages: a hand-built chain: the stages in order (synaptic modules and
            :class:`IFNeuron` layers), registered as ``"0"``, ``"1"``, ... Not with ``graph``.
        timesteps: number of simulation steps ``T`` (>= 1).
        encoder: turns images ``[B, ...]`` into ``[T, B, ...]`` row drive
            (default ``PoissonEncoder(max_rate=1.0)``).
        graph: the graph to run (:mod:`xbar.graph`), with ``modules``.
        modules: ``{path: module}`` for every module node's target.

    Shape:
        ``forward(images)``: ``[B, ...]`` -> output ``[B, classes]``;
        ``run(spike_seq)``: ``[T, B, ...]`` -> output ``[B, classes]``.
    """

    def __init__(self, stages: Iterable[nn.Module] | None = None, timesteps: int = 32, encoder: Any = None,
                 *, graph: Graph | None = None, modules: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        if (stages is None) == (graph is None):
            raise TypeError("SpikingNetwork: give either stages (a chain) or graph and modules")
        if graph is None:
            stages = list(stages)
            graph, modules = _chain(stages), {str(i): m for i, m in enumerate(stages)}
        modules = dict(modules or {})
        graph = self._place(graph, modules)
        for node in graph.module_nodes():
            if node.target not in modules:
                raise GraphError(f"graph node {node.name!r}: no module for target {node.target!r}")
        self.graph = graph
        self.timesteps = _check_timesteps(timesteps)
        self.encoder = encoder if encoder is not None else PoissonEncoder(1.0)
        self.compiled = False
        self._sizes: dict[tuple, dict[str, int]] = {}

    accepts_observers = True  # energy meters attach to it (xbar.observers)

    def _place(self, graph: Graph, modules: dict[str, nn.Module]) -> Graph:
        """Register ``modules`` at their paths; a top-level name that would shadow an attribute
        of the network gets a trailing ``_`` (with a warning) and the graph follows."""
        renamed: dict[str, str] = {}
        for path in sorted(modules, key=lambda p: p.count(".")):
            head, *rest = path.split(".")
            new_head = renamed.get(head, head)
            while new_head not in self._modules and (hasattr(type(self), new_head) or new_head in self.__dict__
                                                    or new_head in ("graph", "timesteps", "encoder", "compiled",
                                                                    "conversion")):
                new_head += "_"
            if new_head != head and head not in renamed:
                warnings.warn(f"SpikingNetwork: module path {head!r} would shadow an attribute; stored as "
                              f"{new_head!r}", stacklevel=3)
            renamed[head] = new_head
            scope: nn.Module = self
            parts = [new_head, *rest]
            for part in parts[:-1]:
                if part not in scope._modules:
                    scope.add_module(part, _Scope())
                scope = scope._modules[part]
            scope.add_module(parts[-1], modules[path])
        if not any(k != v for k, v in renamed.items()):
            return graph

        def fix(p: str | None) -> str | None:
            if p is None:
                return None
            head, _, rest = p.partition(".")
            return renamed.get(head, head) + ("." + rest if rest else "")
        for old in list(modules):
            modules[fix(old)] = modules.pop(old)
        return Graph([Node(n.name, n.op, n.inputs, fix(n.target), n.args, n.source) for n in graph])

    # -- structure ------------------------------------------------------------------------
    def module_at(self, path: str) -> nn.Module:
        """The module a graph node calls (its target path)."""
        return self.get_submodule(path)

    def graph_modules(self) -> dict[str, nn.Module]:
        """``{path: module}`` of every module node's target, in graph order."""
        return {n.target: self.get_submodule(n.target) for n in self.graph.module_nodes()}

    @property
    def stages(self) -> list[nn.Module]:
        """The modules the graph calls, in execution order (a chain's stages)."""
        return [self.get_submodule(n.target) for n in self.graph.module_nodes()]

    def neurons(self) -> list[IFNeuron]:
        """The IF layers, in execution order."""
        seen: list[IFNeuron] = []
        for m in self.stages:
            if isinstance(m, IFNeuron) and all(m is not s for s in seen):
                seen.append(m)
        return seen

    def reset(self) -> None:
        """Reset every neuron's membrane potential and every spiking max-pool's counts."""
        for m in self.modules():
            if isinstance(m, (IFNeuron, SpikingMaxPool)):
                m.reset()

    def compile_scan(self, enabled: bool = True) -> "SpikingNetwork":
        """Run the inference IF scan through ``torch.compile`` (one fused kernel per layer).

        Optional: when compiling is unavailable or fails, the eager scan runs instead, with
        identical results. Returns self.
        """
        self.compiled = bool(enabled)
        return self

    def describe(self) -> str:
        """The graph as a table, each node with its module and (for IF layers) threshold."""
        def what(node: Node) -> str:
            if node.op != "module":
                return ""
            m = self.get_submodule(node.target)
            text = f"{type(m).__name__}"
            if isinstance(m, IFNeuron):
                text += f"(threshold={m.extra_repr().split(',')[0].split('=')[1]})"
            if node.arg("integrated"):
                text += " -> currents" if isinstance(m, CROSSBAR_TYPES) else " -> neurons"
            return text
        return self.graph.table(what)

    def _rewire(self) -> None:
        """After crossbars replaced float layers (:func:`xbar.to_crossbar`): the layers that
        feed IF neurons read currents, and those neurons keep their thresholds in weight units."""
        modules = self.graph_modules()
        into = integrated_nodes(self.graph, modules)
        nodes = [Node(n.name, n.op, n.inputs, n.target, {**n.args, "integrated": True}, n.source)
                 if n.name in into and not n.arg("integrated") else n for n in self.graph]
        self.graph = Graph(nodes)
        for node, ins in self._walk():
            if node.op == "module":
                m = self.get_submodule(node.target)
                if isinstance(m, IFNeuron) and m.weight_threshold is None and not isinstance(ins[0][1], float):
                    m.weight_threshold = m.threshold.detach().clone()

    # -- scales and thresholds ---------------------------------------------------------------
    def _walk(self, wiring: Wiring | None = None,
              override: dict[str, tuple] | None = None) -> Iterator[tuple[Node, list[tuple]]]:
        """Yield every node with its inputs' ``(gain, amperes per weight unit)`` before the
        node's own are derived (module docstring); the caller may set thresholds meanwhile, or
        put a node's exact gain into ``override``."""
        gains: dict[str, tuple] = {}
        for node in self.graph:
            ins = [gains[i] for i in node.inputs]
            yield node, ins
            gains[node.name] = self._gain(node, ins, wiring)
            if override is not None and node.name in override:
                gains[node.name] = override[node.name]
            if wiring is not None:
                wiring.gains[node.name] = gains[node.name]

    def _gain(self, node: Node, ins: list[tuple], wiring: Wiring | None) -> tuple:
        if node.op == "input":
            return (1.0, 1.0)
        if node.op == "output":
            return ins[0]
        if node.op == "module":
            m = self.get_submodule(node.target)
            g, amps = ins[0]
            if isinstance(m, CurrentReadout):
                return (g, m.current_scale().detach())
            if isinstance(m, _SYNAPTIC):
                if not isinstance(amps, float):
                    raise GraphError(f"graph node {node.name!r}: a synaptic layer reads column currents; "
                                     "only IF layers (through pooling or merges) may integrate currents")
                if node.arg("integrated") and isinstance(m, CROSSBAR_TYPES):
                    if wiring is not None:
                        wiring.currents.add(node.name)
                    return (g, m.current_scale().detach())
                return (g, 1.0)
            if isinstance(m, IFNeuron):
                th = m.threshold.detach()
                unit = th / amps if m.weight_threshold is None else m.weight_threshold.detach()
                return (None if g is None or unit.numel() != 1 else g * float(unit), 1.0)
            return (g, amps)
        if node.op == "scale":
            g, amps = ins[0]
            c = float(node.arg("factor"))
            if wiring is not None:
                wiring.multiplier[node.name] = 1.0 if c > 0 else -1.0
            return (None if g is None else g * abs(c), amps)
        if node.op in ("add", "cat"):
            return self._merge_gain(node, ins, wiring)
        return ins[0]

    def _merge_gain(self, node: Node, ins: list[tuple], wiring: Wiring | None) -> tuple:
        coeffs = [float(c) for c in node.arg("coeffs", [1.0] * len(ins))]
        if any(g is None for g, _ in ins):
            if self.ann_units():
                raise GraphError(f"graph node {node.name!r}: the scales of its inputs are unknown "
                                 "(per-channel thresholds upstream?); cannot balance the merge")
            if wiring is not None:
                wiring.factors[node.name] = coeffs
            return (None, ins[0][1])
        weights = [c * g / float(a) for c, (g, a) in zip(coeffs, ins)]
        candidates = [i for i, w in enumerate(weights) if w > 0]
        if not candidates:
            raise GraphError(f"graph node {node.name!r}: every input is subtracted; no input to scale the merge by")
        ref = next((i for i in candidates if not isinstance(ins[i][1], float)), candidates[0])
        if wiring is not None:
            wiring.reference[node.name] = ref
            wiring.factors[node.name] = [1.0 if i == ref else w / weights[ref] for i, w in enumerate(weights)]
        return (coeffs[ref] * ins[ref][0], ins[ref][1])

    def ann_units(self) -> bool:
        """Whether the output is rescaled to the ANN's units (graphs from :func:`xbar.to_snn`)."""
        return bool(self.graph.output.arg("ann_units", False))

    @torch.no_grad()
    def sync_thresholds(self) -> Wiring:
        """Derive every scale of the graph from the crossbars as programmed now: current
        thresholds ``theta = weight_threshold * amperes_per_weight_unit``, merge factors and the
        output scale (module docstring). Runs before every simulation.

        Returns:
            The :class:`~xbar.execute.Wiring` the simulation uses.
        """
        wiring = Wiring()
        for node, ins in self._walk(wiring):
            if node.op == "module":
                m = self.get_submodule(node.target)
                if isinstance(m, IFNeuron) and m.weight_threshold is not None:
                    th = m.weight_threshold * ins[0][1]
                    m.threshold.copy_(th.to(m.threshold.dtype) if isinstance(th, torch.Tensor) else th)
        if self.ann_units():
            g, amps = wiring.gains[self.graph.output.name]
            if g is None:
                raise GraphError("graph: the output's scale is unknown (per-channel thresholds?)")
            wiring.output_scale = g / float(amps)
        return wiring

    # -- running ----------------------------------------------------------------------------
    def _node_sizes(self, sample_shape: tuple) -> dict[str, int]:
        """Values per sample of every node for input samples of ``sample_shape`` (meta tensors)."""
        hit = self._sizes.get(sample_shape)
        if hit is not None:
            return hit
        from .shapes import node_shapes

        shapes = node_shapes(self.graph, self.graph_modules(), sample_shape)
        sizes = {name: int(torch.Size(s).numel()) for name, s in shapes.items()}
        self._sizes[sample_shape] = sizes
        return sizes

    def _simulate(self, x: Any, binary: bool | None, mean: bool, keep_state: bool = False) -> torch.Tensor:
        if not keep_state:
            self.reset()
        wiring = self.sync_thresholds()
        try:
            out = execute(self, x, wiring, binary=bool(binary), mean=mean, keep_state=keep_state)
            for obs in _observers(self):
                obs.record_samples(int(x.shape[1]))
            return out if wiring.output_scale == 1.0 else out * wiring.output_scale
        finally:
            if not keep_state:
                self.reset()

    def _check_input(self, x: Any, name: str, leading: int) -> None:
        """``x`` fits the network: the first layer's check for chains, shapes through the graph
        (meta tensors) otherwise; errors name ``name``."""
        entry, node = [], self.graph.nodes[0]
        while len(self.graph.users(node.name)) == 1:  # the modules the input feeds, in a row
            node = self.graph.node(self.graph.users(node.name)[0])
            if node.op != "module":
                break
            entry.append(self.get_submodule(node.target))
        check_network_input(entry, x, name, leading=leading)
        if not (self.graph.is_chain() and all(n.op == "module" for n in self.graph.nodes[1:-1])):
            try:
                self._node_sizes(tuple(x.shape[leading:]))
            except ValueError as exc:
                raise ValueError(f"{name}: shape {tuple(x.shape)} does not fit the network: {exc}") from None

    @torch.no_grad()
    def capture(self, images: torch.Tensor, node: str, fn: Any) -> None:
        """Encode ``images`` and run the graph up to node ``node``, calling ``fn`` on that node's
        value ``[t, b, ...]`` for every tile of steps and samples (calibration, inspection).
        The neurons are reset before and after."""
        self.graph.node(node)
        self.reset()
        wiring = self.sync_thresholds()
        try:
            x = self.encoder(images, self.timesteps)
            execute(self, x, wiring, binary=getattr(self.encoder, "binary", None) is True, capture=(node, fn))
        finally:
            self.reset()

    def run(self, spike_seq: torch.Tensor, return_sequence: bool = False, binary: bool | None = None,
            keep_state: bool = False) -> torch.Tensor:
        """Run on encoded input.

        Args:
            spike_seq: row drive ``[T, B, ...]`` (spikes from an encoder, or analog values).
            return_sequence: return the output at every step ``[T, B, C]`` instead of its
                average over ``T``.
            binary: promise that ``spike_seq`` holds only zeros and ones (an energy meter then
                skips its check, and the NaN / infinity scan is skipped); None: unknown.
            keep_state: continue from the neurons' state after the previous call and keep the
                state afterwards (to feed a long input in pieces; :meth:`reset` starts over).

        Returns:
            The output ``[B, C]`` (averaged over ``T``), in the ANN's units for networks from
            :func:`xbar.to_snn`.
        """
        self._check_input(spike_seq, "spike_seq", 2)
        if value_checks_enabled() and binary is not True:
            check_finite(spike_seq, "spike_seq")
        return self._simulate(spike_seq, binary, mean=not return_sequence, keep_state=keep_state)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode ``images`` over ``timesteps`` steps and run; returns the output ``[B, C]``."""
        self._check_input(images, "images", 1)
        enc = self.encoder
        if type(enc) is PoissonEncoder and isinstance(images, torch.Tensor) and images.dim() >= 2 \
                and images.device.type == "cpu" and images.dtype == torch.float32:
            return self._simulate(enc.events(images, self.timesteps), True, mean=True)
        return self.run(enc(images, self.timesteps), binary=getattr(enc, "binary", None) is True)

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, encoder={self.encoder!r}, nodes={len(self.graph)}"


def _observers(net: SpikingNetwork) -> list[Any]:
    from .observers import observers_of

    return observers_of(net)
