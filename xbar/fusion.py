"""Which nodes of a spiking graph the executor runs as one fused block (:mod:`xbar.execute`).

A block is ``layer -> IF [-> AvgPool2d]``: a module node whose only reader is an IF neuron
node, optionally followed by the average pool that is the IF node's only reader. The executor
then scales the layer's output to currents inside the IF scan instead of in a pass of its own,
checks the currents for NaN / infinity through the scan's final potential (a non-finite current
stays in it), and pools the spikes step by step while they are in the cache
(:func:`xbar.scan_pool.scan_avg_pool`). This module only finds the candidates from the graph's
structure; whether a block is fused at run time (no autograd, no foreign hooks, a Heaviside
scan without a surrogate's division, windows that tile the maps) is decided by the executor,
which otherwise runs the nodes one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .graph import Node
from .neurons import IFNeuron
from .pooling import SpikingMaxPool

__all__ = ["Block", "blocks"]


@dataclass(frozen=True)
class Block:
    """A fusion candidate: ``layer``'s output is read by ``neuron`` only, whose spikes are read
    by ``pool`` only (None: the spikes are kept)."""

    layer: Node
    neuron: Node
    pool: Node | None


def blocks(net: Any, run: list[Node], keep: set[str]) -> dict[str, Block]:
    """Fusion candidates among the nodes ``run`` (in order) of ``net``, keyed by layer name.

    ``keep``: names whose values must stay visible (graph output, captured node, the frontier
    of the tail); none of them is hidden inside a block.
    """
    users: dict[str, list[Node]] = {}
    for node in run:
        for name in node.inputs:
            users.setdefault(name, []).append(node)

    def module(node: Node) -> nn.Module | None:
        return net.get_submodule(node.target) if node.op == "module" else None

    def only_reader(name: str) -> Node | None:
        readers = users.get(name, [])
        return readers[0] if len(readers) == 1 and name not in keep else None

    found: dict[str, Block] = {}
    for node in run:
        m = module(node)
        if m is None or isinstance(m, (IFNeuron, SpikingMaxPool)):
            continue
        neuron = only_reader(node.name)
        if neuron is None or not isinstance(module(neuron), IFNeuron) or tuple(neuron.inputs) != (node.name,):
            continue
        pool = only_reader(neuron.name)
        pool = pool if pool is not None and type(module(pool)) is nn.AvgPool2d else None
        found[node.name] = Block(node, neuron, pool)
    return found
