"""The canonical functions of a normalised ANN graph (:mod:`xbar.convert.normalise`).

After normalisation every ``call_function`` node of the ``torch.fx`` graph calls one of these
(and every ``call_module`` node a module of a fixed set): each maps one-to-one onto an op of
the spiking graph (:mod:`xbar.graph`). They run as ordinary torch code on the ANN, for
calibration and for the folding tests.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["CANONICAL", "cat", "mean", "merge", "permute", "reshape", "scale"]


def merge(*xs: torch.Tensor, coeffs: Sequence[float]) -> torch.Tensor:
    """``sum_i coeffs[i] * xs[i]`` (``a + b``: coeffs ``(1, 1)``; ``a - b``: ``(1, -1)``)."""
    out = xs[0] * coeffs[0] if coeffs[0] != 1 else xs[0]
    for x, c in zip(xs[1:], coeffs[1:]):
        out = out + x * c if c != 1 else out + x
    return out


def cat(*xs: torch.Tensor, dim: int) -> torch.Tensor:
    """Concatenation along ``dim`` (of the ``[B, ...]`` layout, never 0)."""
    return torch.cat(xs, dim)


def scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Multiplication by a constant."""
    return x * factor


def reshape(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Every sample to ``shape`` (the batch dimension kept)."""
    return x.reshape(x.shape[0], *shape)


def permute(x: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Dimensions reordered to ``dims`` (``dims[0] == 0``: the batch stays first)."""
    return x.permute(*dims)


def mean(x: torch.Tensor, dims: Sequence[int], keepdim: bool = False) -> torch.Tensor:
    """Mean over ``dims`` (never the batch dimension 0)."""
    return x.mean(tuple(dims), keepdim=keepdim)


#: canonical function -> spiking-graph op
CANONICAL = {merge: "add", cat: "cat", scale: "scale", reshape: "reshape", permute: "permute", mean: "mean"}
