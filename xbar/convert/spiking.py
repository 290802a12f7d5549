"""Spiking graph: a normalised, balanced ANN graph becomes a :class:`~xbar.SpikingNetwork`.

Node by node: a synaptic layer (float or crossbar) stays itself, marked ``integrated`` when
only IF layers take its output (a crossbar is then read as column currents); a ReLU becomes an
:class:`~xbar.IFNeuron` at the ReLU's path; a max-pool becomes a
:class:`~xbar.pooling.SpikingMaxPool` (or is refused with ``maxpool="error"``); average pooling,
``Flatten`` and the canonical functions (merge, cat, scale, reshape, permute, mean) become the
graph ops of the same meaning (:mod:`xbar.graph`). The output keeps the ANN's units.

Thresholds and biases are then set in execution order from the ReLU scales ``lambda``
(:mod:`xbar.convert.balance`): an IF layer whose input has scale ``g_in`` gets the threshold
``lambda / g_in`` in weight units (stored as ``weight_threshold`` and turned into a current by
:meth:`~xbar.SpikingNetwork.sync_thresholds` behind a crossbar), and every bias is divided by
the scale of its layer's input, once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from ..graph import Graph, Node
from ..layers import CROSSBAR_TYPES
from ..neurons import IFNeuron
from ..pooling import SpikingMaxPool
from ..snn import SpikingNetwork, integrated_nodes
from . import ops
from .capture import ConversionError, source_of
from .normalise import POOLS, SYNAPTIC, op_base

__all__ = ["build", "set_neuron"]


def _spiking_source(gm: fx.GraphModule, node: Any) -> bool:
    """The value of ``node`` is spikes once ReLUs are IF layers (an IF, a max-pool of spikes,
    a reshape of spikes)."""
    while isinstance(node, fx.Node):
        if node.op == "call_module":
            m = gm.get_submodule(node.target)
            if isinstance(m, (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d)):
                return True
            if not isinstance(m, nn.Flatten):
                return False
        elif node.op == "call_function" and node.target in (ops.reshape, ops.permute):
            pass
        else:
            return False
        node = node.args[0]
    return False


def build(gm: fx.GraphModule, timesteps: int, encoder: Any, reset: str, surrogate: Any,
          maxpool: str, v_init: float = 0.0) -> SpikingNetwork:
    """The spiking network of a normalised graph, every threshold 1 (set them with
    :func:`set_neuron`)."""
    nodes: list[Node] = []
    modules: dict[str, nn.Module] = {}
    name: dict[fx.Node, str] = {}
    used: set[str] = set()

    def unique(base: str) -> str:
        out, k = base, 0
        while out in used:
            k += 1
            out = f"{base}_{k}"
        used.add(out)
        return out

    for n in gm.graph.nodes:
        src = source_of(n) or None
        if n.op == "placeholder":
            name[n] = unique("input")
            nodes.append(Node(name[n], "input", source=src))
            continue
        if n.op == "output":
            arg = n.args[0]
            if not isinstance(arg, fx.Node):
                raise ConversionError("ann: forward must return one tensor (not a tuple or dict)")
            nodes.append(Node(unique("output"), "output", (name[arg],), args={"ann_units": True}))
            continue
        ins = tuple(name[a] for a in (n.args if n.op == "call_function" else n.args[:1]) if isinstance(a, fx.Node))
        if n.op == "call_module":
            m = gm.get_submodule(n.target)
            if isinstance(m, nn.ReLU):
                m = IFNeuron(threshold=1.0, reset=reset, surrogate=surrogate, step_mode="m", v_init=v_init)
            elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
                if maxpool == "error":
                    raise ConversionError(f"ann: max-pooling at {src or n.target} refused (maxpool='error'); "
                                          "use maxpool='spike-count' or average pooling")
                if not _spiking_source(gm, n.args[0]):
                    raise ConversionError(f"ann: the max-pool at {src or n.target} reads a value that is not "
                                          "a ReLU output; its spiking form pools spike counts")
                m = SpikingMaxPool.from_maxpool(m)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                raise ConversionError(f"ann: BatchNorm at {src or n.target} was not folded")
            elif isinstance(m, IFNeuron):
                raise ConversionError(f"ann: already holds IF neurons ({n.target!r}); to_snn converts ANNs")
            elif not isinstance(m, (*SYNAPTIC, *CROSSBAR_TYPES, nn.Flatten, *POOLS)):
                raise ConversionError(f"ann: module {type(m).__name__} at {src or n.target} has no spiking form")
            if n.target in modules and modules[n.target] is not m:
                raise ConversionError(f"ann: two modules at path {n.target!r}")
            modules[n.target] = m
            name[n] = unique(n.target)
            nodes.append(Node(name[n], "module", ins, n.target, source=src))
            continue
        op = ops.CANONICAL.get(n.target)
        if op is None:
            raise ConversionError(f"ann: unexpected op {n.target} at {src}")
        if op == "cat":
            ins = tuple(name[a] for a in n.args)
            args = {"dim": int(n.kwargs["dim"])}
        elif op == "add":
            ins = tuple(name[a] for a in n.args)
            args = {"coeffs": tuple(float(c) for c in n.kwargs["coeffs"])}
        elif op == "scale":
            args = {"factor": float(n.args[1])}
        elif op == "reshape":
            args = {"shape": tuple(int(d) for d in n.args[1])}
        elif op == "permute":
            args = {"dims": tuple(int(d) for d in n.args[1])}
        else:
            args = {"dims": tuple(int(d) for d in n.args[1]), "keepdim": bool(n.args[2] if len(n.args) > 2 else False)}
        base = f"{_scope(n)}.{op_base(n)}" if _scope(n) else op_base(n)
        name[n] = unique(base)
        nodes.append(Node(name[n], op, ins, args=args, source=src))
    graph = Graph(nodes)
    into = integrated_nodes(graph, modules)
    graph = Graph([Node(n.name, n.op, n.inputs, n.target, {"integrated": True}, n.source) if n.name in into else n
                   for n in graph])
    return SpikingNetwork(graph=graph, modules=modules, timesteps=timesteps, encoder=encoder)


def _scope(n: fx.Node) -> str:
    from .normalise import scope_of

    return scope_of(n)


@torch.no_grad()
def set_neuron(snn: SpikingNetwork, node: Node, weight_threshold: float, amps: Any) -> None:
    """Give the IF layer of ``node`` the threshold ``weight_threshold`` (weight units); behind a
    crossbar (``amps`` a tensor: amperes per weight unit) it is stored as ``weight_threshold``
    and the threshold becomes the current ``weight_threshold * amps``."""
    m = snn.get_submodule(node.target)
    if isinstance(amps, torch.Tensor):
        m.weight_threshold = torch.tensor(float(weight_threshold))
        m.threshold.copy_(weight_threshold * amps.detach().cpu())
    else:
        m.weight_threshold = None
        m.threshold.fill_(weight_threshold)


@torch.no_grad()
def balance(snn: SpikingNetwork, lambdas: dict[str, float] | None) -> None:
    """Thresholds from the ReLU scales ``lambdas`` (by module path; None: every threshold 1)
    and every bias divided by its layer's input scale, in execution order.

    Raises:
        ConversionError: a layer called at several places with inputs of different scales and a
            bias (its bias cannot be divided two ways).
    """
    divided: dict[int, float] = {}
    override: dict[str, tuple] = {}
    for node, ins in snn._walk(override=override):
        if node.op != "module":
            continue
        m = snn.get_submodule(node.target)
        g, amps = ins[0]
        if isinstance(m, IFNeuron):
            lam = lambdas[node.target] if lambdas is not None else float(g)
            set_neuron(snn, node, lam / g, amps)
            override[node.name] = (lam, 1.0)
        elif isinstance(m, SYNAPTIC) and m.bias is not None:
            if id(m) in divided:
                if divided[id(m)] != g:
                    raise ConversionError(f"ann: layer {node.target!r} is called with inputs of different scales "
                                          "and has a bias; give each call its own layer")
                continue
            divided[id(m)] = g
            if g != 1.0:
                m.bias.div_(g)
