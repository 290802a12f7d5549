"""Running a spiking graph over ``T`` timesteps: tiles, fast paths, and what meters hear.

:func:`execute` runs a :class:`~xbar.SpikingNetwork`'s graph (:mod:`xbar.graph`) in
multi-step form. Stateless nodes (synaptic layers, pooling, reshapes, merges) see all steps of
a tile at once, as one batch of ``steps x samples`` reads (exact: they have no state); IF layers
and spiking max-pools scan over the steps and carry their state from one tile to the next.

**Tiles.** Without autograd the ``[T, B]`` plane is cut into tiles of ``bc`` samples by ``tc``
steps such that the largest tensor of a tile holds about :data:`TILE_ELEMENTS` values: the
tensors of one tile then stay in the processor's cache from the layer that writes them to the
layer that reads them (a CNN's first convolution on all ``T x B`` images at once would write
hundreds of MB). The whole batch is kept in one tile when it fits (time is cut first: the MLP of
the study runs as before); otherwise the batch is cut into tiles of ``bc`` samples, each run
over all ``T`` steps (every tile starts from reset neurons). Under autograd (training) the
whole ``[T, B]`` plane is one tile. Tiling changes no result beyond float summation order in
batched products.

**Fast paths** (each proven equal to the step-by-step run, ``tests/test_fast.py``,
``tests/test_graph_fast.py``):

* the IF scan (:mod:`xbar.scan`), used for every IF layer without foreign hooks and with a
  Heaviside forward;
* fused blocks (:mod:`xbar.fusion`): a layer read only by an IF layer, itself read only by a
  tiling ``AvgPool2d``, runs as one block (:func:`_run_block`): the crossbar's current scale is
  applied inside the scan, its NaN / infinity check is done on the scan's final potential, and
  the spikes are pooled step by step while in the cache (:mod:`xbar.scan_pool`);
* the event-driven first layer (:mod:`xbar.events`): Poisson events fed straight into a first
  ``Linear`` (after default ``Flatten`` s) that is the input's only reader;
* the tail on the mean: when only the time average is asked for, the affine nodes between the
  last spiking nodes (IF, max-pool) and the output run once on the time-mean of the spikes
  instead of ``T`` times. With an energy meter attached this is done only where the meter can
  still be told the exact counts: every tail node a reshape of spikes or a synaptic layer
  reading them.

**Memory.** The first call sets glibc's allocator to keep freed memory in the process
(:mod:`xbar.allocator`): the tiles' large temporaries are then reused instead of being faulted
in again from the operating system at every tile.

Energy meters attach as observers (:mod:`xbar.observers`): wherever a fast path skips or changes
a module call, the executor tells them what the step-by-step run would have shown them, and it
reports the digital work of nodes that are not modules (merge adds, scale multiplies).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .allocator import keep_freed_memory
from .chip import ReadNoiseHold
from .conv_batch import conv
from .encoding import SpikeEvents
from .events import event_linear
from .fusion import Block, blocks
from .graph import Graph, Node
from .graph_ops import digital, merge, nonzero, shape_op, spike_total
from .layers import CROSSBAR_TYPES, CrossbarLinear, _CrossbarMixin
from .neurons import IFNeuron
from .observers import InputStats, observers_of
from .pooling import SpikingMaxPool, exact_product, fast_avg_pool2d, tiling_window
from .scan import _IFScanFunction, _heaviside_forward, _scan, _scan_compiled, _sigmoid_surrogate
from .scan_pool import scan_avg_pool
from .validation import raise_nonfinite_output, value_checks_deferred

TILE_ELEMENTS = 1 << 22  # values in the largest tensor of a tile (16 MB of float32)
_SYNAPTIC = (nn.Linear, nn.Conv1d, nn.Conv2d)
_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Dropout)
_AFFINE_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, *_PASSTHROUGH)
_TORCH_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)  # run by xbar.conv_batch.conv (exact types only)


@dataclass
class Wiring:
    """What :meth:`~xbar.SpikingNetwork.sync_thresholds` derived for one simulation.

    Attributes:
        currents: names of the module nodes that read a crossbar as column currents.
        factors: per ``add`` / ``cat`` node, the factor of every input (1.0: taken as it is).
        reference: per ``add`` node, the index of the input the others are added into.
        multiplier: per ``scale`` node, the factor actually applied (1.0 or -1.0; a positive
            constant only changes the scale the network keeps for the value).
        output_scale: the output is multiplied by this (1.0 unless the graph keeps ANN units).
        gains: per node, ``(gain, amperes per weight unit)``: the node's ANN value is about
            ``gain * value / amperes_per_weight_unit`` (gain None: unknown, hand-built chains).
    """

    currents: set = field(default_factory=set)
    factors: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    multiplier: dict = field(default_factory=dict)
    output_scale: float = 1.0
    gains: dict = field(default_factory=dict)


# -- hooks ------------------------------------------------------------------------------------

def _global_hooks() -> bool:
    mod = nn.modules.module
    return any(getattr(mod, name, None) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks"))


def hook_free(module: nn.Module, observers: list[Any]) -> bool:
    """True when ``module`` and its children carry no hooks but the observers' own."""
    if _global_hooks():
        return False
    for m in module.modules():
        ours: set[int] = set()
        for obs in observers:
            ours |= obs.observer_hook_ids(m)
        if (set(m._forward_hooks) | set(m._forward_pre_hooks)) - ours:
            return False
        if m._backward_hooks or getattr(m, "_backward_pre_hooks", None):
            return False
    return True


def metered_module(module: nn.Module) -> nn.Module | None:
    """The Linear / Conv module a meter hooks for this module node, if any."""
    inner = getattr(module, "layer", module) if type(module).__name__ == "CurrentReadout" else module
    return inner if isinstance(inner, _SYNAPTIC) else None


def ideal_readout(module: nn.Module) -> bool:
    """The module computes exactly an affine map of its input (no read noise, DAC or ADC): a
    network may then batch, reorder or average its reads freely."""
    if type(module) in (*_SYNAPTIC, *_AFFINE_MODULES):
        return True
    if type(module).__name__ == "CurrentReadout" and type(module.layer).currents is _CrossbarMixin.currents:
        module = module.layer
    if not isinstance(module, CROSSBAR_TYPES) or type(module).forward is not _CrossbarMixin.forward:
        return False
    return module.affine_readout


# -- the IF scan ----------------------------------------------------------------------------

def _fuses(stage: IFNeuron, observers: list[Any], grad: bool) -> bool:
    """Whether :func:`fused_if` will run ``stage`` (so its output is known to be spikes)."""
    if not _heaviside_forward(stage.surrogate) or not hook_free(stage, observers):
        return False
    if grad:
        return _sigmoid_surrogate(stage.surrogate) is not None and not stage.threshold.requires_grad
    return True


def fused_if(stage: IFNeuron, h: torch.Tensor, compiled: bool,
             count: torch.Tensor | None = None) -> torch.Tensor | None:
    """Run IF layer ``stage`` on ``h [T, B, ...]`` by the fast scan; None if not applicable.

    ``count`` (a float64 scalar tensor): the spikes are counted into it, by the scan where it can
    (:func:`xbar.scan._scan`), else from the spikes afterwards."""
    if not _heaviside_forward(stage.surrogate):
        return None
    th = stage._threshold_for(h[0])
    subtract = stage.reset_mode == "subtract"
    divide = stage.surrogate is not None
    needs_grad = torch.is_grad_enabled() and (h.requires_grad or th.requires_grad)
    if needs_grad:
        alpha = _sigmoid_surrogate(stage.surrogate)
        if alpha is None or th.requires_grad or stage.v is not None or stage.v_init:
            return None
        spikes, v = _IFScanFunction.apply(h, th.detach(), alpha, subtract)
        stage.v = v
        if count is not None:
            count.add_(spike_total(spikes))
        return spikes
    with torch.no_grad():
        v0 = stage.initial_potential(h[0]) if stage.v is None else stage.v.detach().clone()
        res = _scan_compiled(h, th, v0, subtract) if compiled and not divide else None
        spikes, v = res if res is not None else _scan(h, th, v0, subtract, divide, count=count)[:2]
        spikes = spikes.to(h.dtype)
        if res is not None and count is not None:  # the compiled scan does not count
            count.add_(spike_total(spikes))
    stage.v = v
    return spikes


# -- the plan -----------------------------------------------------------------------------------

@dataclass
class _Plan:
    run: list[Node]  # nodes run at every step, in order
    tail: list[Node]  # nodes run once on the time-mean
    frontier: list[str]  # nodes whose spikes are summed over the steps for the tail
    event_chain: list[Node]  # input -> Flatten* -> Linear fed by events ([] when not)
    last_use: dict[str, int]
    bc: int
    tc: int
    blocks: dict = field(default_factory=dict)  # layer name -> xbar.fusion.Block


def _event_chain(graph: Graph, net: Any, x: Any, observers: list[Any]) -> list[Node]:
    """``[Flatten..., Linear]`` nodes that Poisson events can feed directly, or ``[]``."""
    if not isinstance(x, SpikeEvents):
        return []
    chain: list[Node] = []
    name = graph.nodes[0].name
    while True:
        users = graph.users(name)
        if len(users) != 1:
            return []
        node = graph.node(users[0])
        if node.op != "module":
            return []
        m = net.get_submodule(node.target)
        if not hook_free(m, observers):
            return []
        chain.append(node)
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                return []
            name = node.name
            continue
        lin = m.layer if type(m).__name__ == "CurrentReadout" else m
        if type(lin) not in (nn.Linear, CrossbarLinear) or lin.in_features != x.pixels:
            return []
        if type(lin) is CrossbarLinear and (type(lin)._matmul is not CrossbarLinear._matmul
                                            or not ideal_readout(m)):
            return []
        if len(chain) == 1 and len(x.shape) != 3:
            return []
        if torch.is_grad_enabled() and x.device.type != "cpu":
            return []  # training on an accelerator: the dense product is cheap there
        return chain


def _affine(node: Node, net: Any) -> bool:
    if node.op in ("add", "cat", "scale", "reshape", "permute", "mean"):
        return True
    if node.op != "module":
        return False
    return ideal_readout(net.get_submodule(node.target))


def _spiking(node: Node, net: Any) -> bool:
    return node.op == "input" or (node.op == "module" and isinstance(
        net.get_submodule(node.target), (IFNeuron, SpikingMaxPool)))


def _tail(graph: Graph, net: Any, observers: list[Any], binary: bool, grad: bool) -> tuple[list[Node], list[str]]:
    """Nodes that may run once on the time-mean, and the spiking nodes they read."""
    from_counts: dict[str, bool] = {}
    for node in graph.nodes[1:-1]:
        from_counts[node.name] = _affine(node, net) and all(
            _spiking(graph.node(i), net) or from_counts.get(i, False) for i in node.inputs)
    in_tail: dict[str, bool] = {}
    for node in reversed(graph.nodes[1:-1]):
        in_tail[node.name] = from_counts[node.name] and all(
            u == graph.output.name or in_tail.get(u, False) for u in graph.users(node.name))
    tail = [n for n in graph.nodes[1:-1] if in_tail[n.name]]
    out_in = graph.output.inputs[0]
    if not in_tail.get(out_in, False) and not _spiking(graph.node(out_in), net):
        return [], []
    frontier = sorted({i for n in tail for i in n.inputs if not in_tail.get(i, False)} |
                      ({out_in} if not in_tail.get(out_in, False) else set()), key=graph.index)
    if any(not hook_free(net.get_submodule(n.target), observers) for n in tail if n.op == "module"):
        return [], []
    if observers:  # the meter must still get exact counts: spikes, reshaped, into synaptic layers
        binary_val = set(frontier)
        for f in frontier:
            node = graph.node(f)
            if node.op == "input" and not binary:
                return [], []
            if node.op == "module" and isinstance(net.get_submodule(node.target), IFNeuron) \
                    and not _fuses(net.get_submodule(node.target), observers, grad):
                return [], []
        for n in tail:
            m = net.get_submodule(n.target) if n.op == "module" else None
            if n.op in ("reshape", "permute") or isinstance(m, _PASSTHROUGH):
                if n.inputs[0] not in binary_val:
                    return [], []
                binary_val.add(n.name)
            elif m is not None and metered_module(m) is not None:
                if n.inputs[0] not in binary_val or graph.users(n.name) != [graph.output.name]:
                    return [], []
            else:
                return [], []
    return tail, frontier


def _tiles(net: Any, x: Any, skip: set[str], grad: bool, whole_batch: bool) -> tuple[int, int]:
    steps, batch = x.shape[0], x.shape[1]
    if grad:
        return batch, steps
    sizes = net._node_sizes(tuple(x.shape[2:]))
    per_sample = max([sizes[n] for n in sizes if n not in skip] or [1])
    budget = TILE_ELEMENTS
    if whole_batch or batch * per_sample <= budget:
        return batch, max(1, min(steps, budget // max(1, batch * per_sample)))
    bc = max(1, min(batch, budget // max(1, per_sample * steps)))
    return bc, max(1, min(steps, budget // max(1, bc * per_sample)))


def _plan(net: Any, x: Any, binary: bool, mean: bool, observers: list[Any], capture: str | None,
          keep_state: bool) -> _Plan:
    graph: Graph = net.graph
    grad = torch.is_grad_enabled()
    chain = _event_chain(graph, net, x, observers)
    tail, frontier = (_tail(graph, net, observers, binary, grad) if mean and capture is None else ([], []))
    tail_names = {n.name for n in tail}
    if any(n.name in tail_names for n in chain):
        chain = []  # the whole network runs on the mean of its input
    chain_names = {n.name for n in chain}
    if capture is not None:
        needed = {capture}
        for node in reversed(graph.nodes):
            if node.name in needed:
                needed.update(node.inputs)
        run = [n for n in graph.nodes[1:-1] if n.name in needed]
    else:
        run = [n for n in graph.nodes[1:-1] if n.name not in tail_names]
    run = [n for n in run if n.name not in chain_names]
    last_use: dict[str, int] = {}
    for i, n in enumerate(run):
        for inp in n.inputs:
            last_use[inp] = i
    keep = set(frontier) | {graph.output.inputs[0]} | ({capture} if capture else set())
    for name in keep:
        last_use[name] = len(run)
    skip = tail_names | (({graph.nodes[0].name} | chain_names) - {chain[-1].name} if chain else set())
    bc, tc = _tiles(net, x, skip, grad, keep_state)
    fused = {} if grad or net.compiled else blocks(net, run, keep)
    return _Plan(run, tail, frontier, chain, last_use, bc, tc, fused)


# -- running nodes ------------------------------------------------------------------------------

def _call(module: nn.Module, h: torch.Tensor, currents: bool, binary: bool, observers: list[Any],
          gain: list | None = None) -> torch.Tensor:
    """A stateless module on every step of ``h [t, b, ...]`` at once. With ``gain`` (a list),
    a crossbar's one-element current scale is appended to it instead of applied."""
    t, b = h.shape[0], h.shape[1]
    metered = metered_module(module) if observers and binary else None
    for obs in observers if metered is not None else ():
        obs.expect_input(metered, InputStats(t * b, True))
    try:
        flat = h.reshape(t * b, *h.shape[2:])
        y = fast_avg_pool2d(module, flat, binary) if type(module) is nn.AvgPool2d and hook_free(module, observers) else None
        if type(module) in _TORCH_CONVS and module.padding_mode == "zeros" and hook_free(module, []):
            y = conv(flat, module.weight, module.bias, module.stride, module.padding, module.dilation, module.groups)
        if y is None and currents and not torch.is_grad_enabled() and type(module).currents is _CrossbarMixin.currents:
            scale = module.current_scale()
            y = module(flat)  # what module.currents(flat) computes, in place (or left to the caller)
            if gain is not None and scale.numel() == 1:
                gain.append(scale)
            else:
                y.mul_(scale)
        elif y is None:
            y = module.currents(flat) if currents else module(flat)
    finally:
        for obs in observers if metered is not None else ():
            obs.expect_input(metered, None)
    return y.reshape(t, b, *y.shape[1:])


def _run_neuron(stage: IFNeuron, h: torch.Tensor, observers: list[Any], compiled: bool) -> tuple[torch.Tensor, bool]:
    total = torch.zeros((), dtype=torch.float64, device=h.device) if observers else None
    spikes = fused_if(stage, h, compiled, total) if hook_free(stage, observers) else None
    if spikes is None:
        if stage.step_mode == "m":
            return stage(h), False
        return torch.stack([stage(h[k]) for k in range(h.shape[0])]), False
    for obs in observers:
        obs.record_neuron(stage, spikes.numel(), total)
    return spikes, True


def _run_block(net: Any, block: Block, h: torch.Tensor, known: bool, wiring: Wiring,
               observers: list[Any]) -> tuple[str, torch.Tensor, bool] | None:
    """Run ``layer -> IF [-> AvgPool2d]`` fused (:mod:`xbar.fusion`): the layer's current scale
    applied inside the scan, a crossbar's NaN / infinity check of its output done on the
    scan's final potential, the spikes pooled step by step. Returns ``(name, value, binary)``
    of the block's last node, or None (nothing run) when it cannot be fused."""
    stage = net.get_submodule(block.neuron.target)
    if torch.is_grad_enabled() or stage.surrogate is not None or not _fuses(stage, observers, False):
        return None
    layer = net.get_submodule(block.layer.target)
    pool = net.get_submodule(block.pool.target) if block.pool is not None else None
    if pool is not None and not hook_free(pool, observers):
        return None
    crossbar = isinstance(layer, CROSSBAR_TYPES)
    gain: list = []
    with value_checks_deferred() if crossbar else contextlib.nullcontext(False) as checks:
        y = _call(layer, h, block.layer.name in wiring.currents, known, observers, gain)
    th = stage._threshold_for(y[0])
    subtract = stage.reset_mode == "subtract"
    v0 = stage.initial_potential(y[0]) if stage.v is None else stage.v.detach().clone()
    total = torch.zeros((), dtype=torch.float64, device=y.device) if observers else None
    window = tiling_window(pool, y.shape) if pool is not None else None
    if window is not None and y.dim() == 5 and exact_product(y) and y.is_contiguous():
        out, v = scan_avg_pool(y, th, v0, subtract, window, gain[0] if gain else None, total)
        last, binary = block.pool.name, False
    else:
        out, v, _ = _scan(y, th, v0, subtract, False, count=total, gain=gain[0] if gain else None)
        last, binary = block.neuron.name, True
    stage.v = v
    for obs in observers:
        obs.record_neuron(stage, y.numel(), total)
    if checks and not bool(torch.isfinite(v.sum())) and not bool(torch.isfinite(v).all()):
        raise_nonfinite_output(layer, h)  # a NaN or infinite current stays in the potential
    return last, out, binary


def _run_nodes(net: Any, nodes: list[Node], values: dict[str, torch.Tensor], known: dict[str, bool],
               wiring: Wiring, observers: list[Any], last_use: dict[str, int] | None,
               fused: dict[str, Block] | None = None) -> None:
    """Run ``nodes`` in order on ``values`` (``[t, b, ...]`` tensors, updated in place), the
    blocks of ``fused`` (:mod:`xbar.fusion`) as one step where they can be (:func:`_run_block`)."""
    done: set[str] = set()  # nodes computed inside a fused block
    for i, node in enumerate(nodes):
        if node.name in done:
            _drop_inputs(values, node, i, last_use)
            continue
        hs = [values[n] for n in node.inputs]
        ks = [known[n] for n in node.inputs]
        block = fused.get(node.name) if fused else None
        res = _run_block(net, block, hs[0], ks[0], wiring, observers) if block is not None else None
        name = node.name
        if res is not None:
            name, out, binary = res
            done.update(b.name for b in (block.neuron, block.pool) if b is not None)
        elif node.op == "module":
            m = net.get_submodule(node.target)
            if isinstance(m, IFNeuron):
                out, binary = _run_neuron(m, hs[0], observers, net.compiled)
            elif isinstance(m, SpikingMaxPool):
                out, binary = m(hs[0]), ks[0]
            else:
                out = _call(m, hs[0], node.name in wiring.currents, ks[0], observers)
                binary = ks[0] and isinstance(m, _PASSTHROUGH)
        elif node.op in ("add", "cat"):
            out, binary = merge(node, hs, ks, wiring, observers), False
        elif node.op == "scale":
            mult = wiring.multiplier.get(node.name, 1.0)
            out, binary = (hs[0], ks[0]) if mult == 1.0 else (hs[0] * mult, False)
            if mult != 1.0 and observers:  # a sign change of every non-zero value
                digital(observers, node, "scale_muls", nonzero(hs[0], ks[0]))
        else:
            out, binary = shape_op(node, hs[0]), ks[0] and node.op != "mean"
        values[name], known[name] = out, binary
        _drop_inputs(values, node, i, last_use)


def _drop_inputs(values: dict[str, torch.Tensor], node: Node, i: int, last_use: dict[str, int] | None) -> None:
    """Forget the inputs of ``node`` (the ``i``-th) that no later node reads."""
    for n in node.inputs if last_use is not None else ():
        if last_use.get(n, -1) <= i:
            values.pop(n, None)


def _run_tail(net: Any, plan: _Plan, counts: dict[str, torch.Tensor], steps: int, wiring: Wiring,
              observers: list[Any]) -> torch.Tensor:
    """The tail once on the time-means ``counts / steps``; returns the output's input ``[B, ...]``."""
    values = {f: (c / steps).unsqueeze(0) for f, c in counts.items()}
    known = dict.fromkeys(values, False)
    for node in plan.tail:
        m = net.get_submodule(node.target) if node.op == "module" else None
        metered = metered_module(m) if (m is not None and observers) else None
        if metered is not None:
            src = counts[node.inputs[0]] if node.inputs[0] in counts else values[node.inputs[0]][0] * steps
            stats = InputStats(steps * src.shape[0], True, src.sum(0, dtype=torch.float64))
            for obs in observers:
                obs.expect_input(metered, stats)
        try:
            _run_nodes(net, [node], values, known, wiring, [], None)
        finally:
            for obs in observers if metered is not None else ():
                obs.expect_input(metered, None)
    return values[net.graph.output.inputs[0]][0]


def execute(net: Any, x: torch.Tensor | SpikeEvents, wiring: Wiring, binary: bool = False, mean: bool = True,
            capture: tuple[str, Callable[[torch.Tensor], None]] | None = None,
            keep_state: bool = False) -> torch.Tensor | None:
    """Run ``net``'s graph on ``x [T, B, ...]`` (row drive or Poisson events).

    Args:
        net: the :class:`~xbar.SpikingNetwork`.
        x: the encoded input.
        wiring: from :meth:`~xbar.SpikingNetwork.sync_thresholds`.
        binary: ``x`` is known to hold only zeros and ones.
        mean: return the output's time average ``[B, ...]`` instead of every step ``[T, B, ...]``.
        capture: ``(node name, fn)``: call ``fn`` on that node's value ``[t, b, ...]`` for every
            tile and return None (the rest of the graph is not run).
        keep_state: start from the neurons' current state and keep it (one tile over the batch).

    Returns:
        The output (not yet multiplied by ``wiring.output_scale``), or None with ``capture``.
    """
    keep_freed_memory()  # once per process (xbar.allocator)
    graph: Graph = net.graph
    observers = observers_of(net)
    binary = bool(binary) or isinstance(x, SpikeEvents)
    plan = _plan(net, x, binary, mean, observers, capture[0] if capture else None, keep_state)
    steps, batch = x.shape[0], x.shape[1]
    src, out_in = graph.nodes[0].name, graph.output.inputs[0]
    results: list[torch.Tensor] = []
    hold = ReadNoiseHold(net)  # 1/f read noise: one draw per sample, held through its steps
    try:
        for b0 in range(0, batch, plan.bc):
            b1 = min(batch, b0 + plan.bc)
            if not keep_state and b0 > 0:
                net.reset()
            hold.start(b1 - b0)
            xb = x.samples(b0, b1) if isinstance(x, SpikeEvents) else x[:, b0:b1]
            counts: dict[str, torch.Tensor] = {}
            outs: list[torch.Tensor] = []
            for t0 in range(0, steps, plan.tc):
                part = xb.steps(t0, min(steps, t0 + plan.tc)) if isinstance(xb, SpikeEvents) else xb[t0:t0 + plan.tc]
                values, known = _start(net, plan, part, src, binary, observers)
                _run_nodes(net, plan.run, values, known, wiring, observers, plan.last_use, plan.blocks)
                if capture is not None:
                    capture[1](values[capture[0]])
                    continue
                if plan.tail or (plan.frontier and mean):
                    for f in plan.frontier:
                        s = values[f].sum(0)
                        counts[f] = s if f not in counts else counts[f] + s
                elif mean:
                    s = values[out_in].sum(0)
                    outs = [s if not outs else outs[0] + s]
                else:
                    outs.append(values[out_in])
            if capture is not None:
                continue
            if plan.frontier and mean:
                results.append(_run_tail(net, plan, counts, steps, wiring, observers) if plan.tail
                               else counts[out_in] / steps)
            else:
                results.append(outs[0] / steps if mean else torch.cat(outs))
    finally:
        hold.stop()  # also when a step raises: no layer stays held
    if capture is not None:
        return None
    return results[0] if len(results) == 1 else torch.cat(results, 0 if mean else 1)


def _start(net: Any, plan: _Plan, part: Any, src: str, binary: bool,
           observers: list[Any]) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
    """Values of the input node (dense) or, on the event path, of the first Linear."""
    if not plan.event_chain:
        h = part.dense() if isinstance(part, SpikeEvents) else part
        return {src: h}, {src: binary}
    node = plan.event_chain[-1]
    m = net.get_submodule(node.target)
    lin = m.layer if type(m).__name__ == "CurrentReadout" else m
    currents = type(m).__name__ == "CurrentReadout" or (node.arg("integrated", False) and isinstance(lin, CROSSBAR_TYPES))
    h, per_pixel = event_linear(lin, part, currents)
    if observers:
        t, b = part.shape[0], part.shape[1]
        stats = InputStats(t * b, True, part.counts(per_pixel))
        for obs in observers:
            obs.record_synaptic(lin, stats)
    return {node.name: h}, {node.name: False}
