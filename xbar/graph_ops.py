"""The executor's nodes that are not modules (:mod:`xbar.execute`): residual merges (``add``),
concatenations (``cat``), sign scales and shape ops, each on every step of a tile at once, with
the digital work they add reported to the energy meters (merge adds, scale multiplies).
"""

from __future__ import annotations

from typing import Any

import torch

from .graph import Node

__all__ = ["digital", "merge", "nonzero", "shape_op", "spike_total"]


def spike_total(spikes: torch.Tensor) -> torch.Tensor:
    """Number of spikes in binary ``spikes``, exact (float32 sums below ``2**24`` are exact)."""
    with torch.no_grad():
        if spikes.numel() < 2 ** 24:
            return spikes.sum().to(torch.float64)
        return spikes.to(torch.float64).sum()


def nonzero(h: torch.Tensor, binary: bool) -> torch.Tensor:
    with torch.no_grad():
        return spike_total(h) if binary else torch.count_nonzero(h).to(torch.float64)


def _analog_count(h: torch.Tensor, known: bool) -> torch.Tensor | float:
    """Entries of ``h`` other than 0 and 1 (each needs a multiply by a merge factor; a 1 adds
    the factor itself): 0 when ``h`` is known to be spikes."""
    if known:
        return 0.0
    with torch.no_grad():
        return torch.count_nonzero(h * (h - 1.0)).to(torch.float64)


def digital(observers: list[Any], node: Node, field_name: str, count: Any) -> None:
    for obs in observers:
        obs.record_digital(node.name, field_name, count)


def merge(node: Node, hs: list[torch.Tensor], known: list[bool], wiring: Any,
           observers: list[Any]) -> torch.Tensor:
    factors = wiring.factors.get(node.name, [1.0] * len(hs))
    if node.op == "cat":
        dim = node.arg("dim")
        dim = dim + 1 if dim >= 0 else dim
        parts = [h if f == 1.0 else h * f for h, f in zip(hs, factors)]
        if observers:
            muls = sum((_analog_count(h, k) for h, f, k in zip(hs, factors, known) if f != 1.0), 0.0)
            digital(observers, node, "scale_muls", muls)
        return torch.cat(parts, dim)
    ref = wiring.reference.get(node.name, 0)
    out = hs[ref] if factors[ref] == 1.0 else hs[ref] * factors[ref]
    for i, (h, f) in enumerate(zip(hs, factors)):
        if i != ref:
            out = torch.add(out, h, alpha=f) if f != 1.0 else out + h
    if observers:
        adds = sum((nonzero(h, k) for i, (h, k) in enumerate(zip(hs, known)) if i != ref), 0.0)
        muls = sum((_analog_count(h, k) for h, f, k in zip(hs, factors, known) if f != 1.0), 0.0)
        digital(observers, node, "merge_adds", adds)
        digital(observers, node, "scale_muls", muls)
    return out


def shape_op(node: Node, h: torch.Tensor) -> torch.Tensor:
    t, b = h.shape[0], h.shape[1]
    if node.op == "reshape":
        return h.reshape(t, b, *node.arg("shape"))
    if node.op == "permute":
        return h.permute(0, *(d + 1 for d in node.arg("dims")))
    dims = tuple(d + 1 if d >= 0 else d for d in node.arg("dims"))
    return h.mean(dims, keepdim=bool(node.arg("keepdim")))
