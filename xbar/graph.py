"""The graph a :class:`~xbar.SpikingNetwork` runs: plain data, a fixed vocabulary of ops.

A graph is a tuple of :class:`Node` in execution (topological) order: one ``input`` node first,
one ``output`` node last. Every node names the nodes it reads. Ops:

==========  ===========================================================================
``input``   the network's row drive (spikes from the encoder, or analog values)
``module``  call the submodule at path ``target`` (a crossbar or float Linear / Conv, an
            IF layer, a pooling layer, ``Flatten``, a spiking max-pool) on one input;
            ``args["integrated"]``: a synaptic layer whose output only IF neurons
            integrate (read as column currents when it is a crossbar)
``add``     ``sum_i coeffs[i] * x_i`` in ANN terms (a residual merge; ``coeffs`` is 1 for
            ``+`` and -1 for ``-``); the network brings the inputs to one scale
``cat``     concatenation along ``args["dim"]`` (of the ``[B, ...]`` layout, never 0)
``scale``   multiplication by the constant ``args["factor"]``
``reshape`` each sample to ``args["shape"]`` (batch kept)
``permute`` dimensions reordered to ``args["dims"]`` (of ``[B, ...]``; 0 stays first)
``mean``    mean over ``args["dims"]`` (of ``[B, ...]``, never 0), ``args["keepdim"]``
``output``  the network's output; ``args["ann_units"]``: rescale it to the ANN's units
==========  ===========================================================================

Nothing in a graph is code: checkpoints store it as a list of dicts (:meth:`Graph.to_data`)
and rebuild it with :meth:`Graph.from_data`, which accepts only this vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

__all__ = ["Graph", "GraphError", "Node", "OPS"]

OPS = ("input", "module", "add", "cat", "scale", "reshape", "permute", "mean", "output")
_ARGS = {"input": set(), "module": {"integrated"}, "add": {"coeffs"}, "cat": {"dim"}, "scale": {"factor"},
         "reshape": {"shape"}, "permute": {"dims"}, "mean": {"dims", "keepdim"}, "output": {"ann_units"}}
_ARITY = {"input": (0, 0), "module": (1, 1), "add": (2, None), "cat": (1, None), "scale": (1, 1),
          "reshape": (1, 1), "permute": (1, 1), "mean": (1, 1), "output": (1, 1)}


class GraphError(ValueError):
    """A graph that breaks the rules of :mod:`xbar.graph`; the message names the node."""


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


@dataclass(frozen=True)
class Node:
    """One step of a graph.

    Attributes:
        name: unique name (the module path for module nodes, e.g. ``layer1.0.conv1``).
        op: one of :data:`OPS`.
        inputs: names of the nodes it reads, in order.
        target: the submodule path, for ``op == "module"``.
        args: the op's plain-data arguments (module docstring).
        source: where the node came from in the user's ``forward`` (``file:line  code``).
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    target: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None

    def arg(self, key: str, default: Any = None) -> Any:
        """``args[key]``, or ``default``."""
        return self.args.get(key, default)

    def to_data(self) -> dict:
        """The node as a plain dict (JSON- and ``weights_only``-safe)."""
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "target": self.target,
                "args": {k: list(v) if isinstance(v, tuple) else v for k, v in self.args.items()},
                "source": self.source}


class Graph:
    """An ordered, validated tuple of nodes (module docstring).

    Args:
        nodes: the nodes in execution order.

    Raises:
        GraphError: naming the node: an unknown op or argument, a missing or later input, a
            duplicate name, not exactly one ``input`` first and one ``output`` last, or
            arguments that are not plain data.
    """

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = tuple(nodes)
        self._index = {}
        for i, n in enumerate(self.nodes):
            self._check(n, i)
            self._index[n.name] = i
        if not self.nodes or self.nodes[0].op != "input" or self.nodes[-1].op != "output":
            raise GraphError("graph: must start with an 'input' node and end with an 'output' node")
        self._users: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                self._users[i].append(n.name)

    def _check(self, n: Node, i: int) -> None:
        where = f"graph node {n.name!r}"
        if not isinstance(n.name, str) or not n.name:
            raise GraphError(f"graph node {i}: name must be a non-empty string, got {n.name!r}")
        if n.name in self._index:
            raise GraphError(f"{where}: duplicate name")
        if n.op not in OPS:
            raise GraphError(f"{where}: unknown op {n.op!r}; known: {', '.join(OPS)}")
        if (n.op == "input") != (i == 0) or (n.op == "output" and i != len(self.nodes) - 1):
            raise GraphError(f"{where}: op {n.op!r} at position {i}; 'input' comes first, 'output' last, once each")
        lo, hi = _ARITY[n.op]
        if len(n.inputs) < lo or (hi is not None and len(n.inputs) > hi):
            raise GraphError(f"{where}: op {n.op!r} takes {lo if lo == hi else f'{lo} or more'} inputs, "
                             f"got {len(n.inputs)}")
        for name in n.inputs:
            if name not in self._index:
                raise GraphError(f"{where}: input {name!r} is not an earlier node")
        if (n.op == "module") != (n.target is not None):
            raise GraphError(f"{where}: a target (module path) is given exactly for op 'module'")
        unknown = set(n.args) - _ARGS[n.op]
        if unknown:
            raise GraphError(f"{where}: unknown argument(s) {sorted(unknown)} for op {n.op!r}")
        if not all(_plain(v) for v in n.args.values()):
            raise GraphError(f"{where}: arguments must be plain data (numbers, strings, lists)")
        if n.op == "add" and len(n.arg("coeffs", ())) != len(n.inputs):
            raise GraphError(f"{where}: 'coeffs' needs one number per input")

    # -- queries ---------------------------------------------------------------------------
    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        try:
            return self.nodes[self._index[name]]
        except KeyError:
            raise KeyError(f"graph: no node named {name!r}") from None

    def index(self, name: str) -> int:
        """Position of node ``name`` in execution order."""
        return self._index[name]

    def users(self, name: str) -> list[str]:
        """Names of the nodes that read node ``name``, in order."""
        return list(self._users[name])

    @property
    def output(self) -> Node:
        """The output node."""
        return self.nodes[-1]

    def module_nodes(self) -> list[Node]:
        """The ``module`` nodes, in execution order."""
        return [n for n in self.nodes if n.op == "module"]

    def is_chain(self) -> bool:
        """True when every node reads the one before it (a flat sequence of stages)."""
        return all(n.inputs == (self.nodes[i].name,) for i, n in enumerate(self.nodes[1:]))

    # -- plain data and printing ---------------------------------------------------------------
    def to_data(self) -> list[dict]:
        """The graph as a list of plain dicts (:meth:`Node.to_data`)."""
        return [n.to_data() for n in self.nodes]

    @classmethod
    def from_data(cls, data: Any) -> "Graph":
        """Rebuild a graph from :meth:`to_data`'s output, checking every field.

        Raises:
            GraphError: naming the node and field that do not fit.
        """
        if not isinstance(data, (list, tuple)):
            raise GraphError(f"graph: expected a list of nodes, got {type(data).__name__}")
        nodes = []
        for i, d in enumerate(data):
            if not isinstance(d, dict) or set(d) - {"name", "op", "inputs", "target", "args", "source"}:
                raise GraphError(f"graph node {i}: expected a dict with keys name, op, inputs, target, args, source")
            args = d.get("args") or {}
            if not isinstance(args, dict):
                raise GraphError(f"graph node {i}: 'args' must be a dict")
            inputs = d.get("inputs") or []
            if not isinstance(inputs, (list, tuple)) or not all(isinstance(s, str) for s in inputs):
                raise GraphError(f"graph node {i}: 'inputs' must be a list of node names")
            nodes.append(Node(d.get("name"), d.get("op"), tuple(inputs), d.get("target"),
                              {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}, d.get("source")))
        return cls(nodes)

    def table(self, describe: Any = None) -> str:
        """A readable table, one node a line: name, op, inputs, and what the node does
        (``describe(node) -> str`` when given, else its target and arguments)."""
        rows = [("node", "op", "inputs", "does")]
        for n in self.nodes:
            what = describe(n) if describe is not None else ""
            if not what:
                what = ", ".join(filter(None, [n.target or "", *(f"{k}={v}" for k, v in n.args.items())]))
            rows.append((n.name, n.op, ", ".join(n.inputs), what))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
                         for r in rows)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes)"
