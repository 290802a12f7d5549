"""Shapes of every node of a spiking graph, from meta tensors (no data, no hooks, no state).

Used to size the executor's tiles (:mod:`xbar.execute`) and to check that an input fits a
network before it runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .graph import Graph
from .neurons import IFNeuron
from .pooling import SpikingMaxPool

__all__ = ["node_shapes"]

_META = torch.device("meta")


def _meta(shape: tuple, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, device=_META, dtype=dtype)


def _module_out(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    inner = getattr(m, "layer", m) if type(m).__name__ == "CurrentReadout" else m
    if isinstance(inner, nn.Linear):
        if x.shape[-1] != inner.in_features:
            raise ValueError(f"expected [..., {inner.in_features}] (in_features={inner.in_features}), "
                             f"got {tuple(x.shape)}")
        return _meta((*x.shape[:-1], inner.out_features))
    if isinstance(inner, (nn.Conv1d, nn.Conv2d)):
        fn = F.conv1d if isinstance(inner, nn.Conv1d) else F.conv2d
        if inner.padding_mode != "zeros":
            x = F.pad(x, inner._reversed_padding_repeated_twice, mode="constant")
            padding: Any = 0
        else:
            padding = inner.padding
        return fn(x, _meta(tuple(inner.weight.shape)), None, inner.stride, padding, inner.dilation, inner.groups)
    if isinstance(m, IFNeuron):
        return x
    if isinstance(m, SpikingMaxPool):
        return m.pool(x)
    return m(x)


def node_shapes(graph: Graph, modules: dict[str, nn.Module], sample_shape: tuple) -> dict[str, tuple]:
    """The ``[1, ...]`` shape of every node's value for one input sample of ``sample_shape``.

    Raises:
        ValueError: naming the node whose input does not fit it.
    """
    vals: dict[str, torch.Tensor] = {}
    for node in graph:
        try:
            if node.op == "input":
                out = _meta((1, *sample_shape))
            else:
                xs = [vals[i] for i in node.inputs]
                out = _op_out(node, xs, modules)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            shapes = ", ".join(str(tuple(vals[i].shape)) for i in node.inputs)
            raise ValueError(f"node {node.name!r} ({node.op} {node.target or ''}) cannot take input of shape "
                             f"{shapes}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        vals[node.name] = out
    return {k: tuple(v.shape) for k, v in vals.items()}


def _op_out(node: Any, xs: list[torch.Tensor], modules: dict[str, nn.Module]) -> torch.Tensor:
    x = xs[0]
    if node.op == "module":
        return _module_out(modules[node.target], x)
    if node.op == "add":
        for y in xs[1:]:
            if y.shape != x.shape:
                raise ValueError(f"inputs of different shapes {tuple(x.shape)} and {tuple(y.shape)}")
        return x
    if node.op == "cat":
        return torch.cat(xs, node.arg("dim"))
    if node.op == "reshape":
        return x.reshape(1, *node.arg("shape"))
    if node.op == "permute":
        return x.permute(*node.arg("dims"))
    if node.op == "mean":
        return x.mean(tuple(node.arg("dims")), keepdim=bool(node.arg("keepdim")))
    return x
