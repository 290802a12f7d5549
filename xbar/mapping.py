"""Weights to device conductances (G+, G-) and back.

Two mappings are defined (DESIGN.md, "Physical model"):

``differential`` (default)
    ``scale = (g_max - g_min) / max|W|`` siemens per weight unit;
    ``G+ = g_min + scale * relu(W)`` and ``G- = g_min + scale * relu(-W)``, each snapped to
    the nearest state of the device's table. One device of every pair sits at ``g_min`` so
    the offset cancels in ``G+ - G-``.

``clip`` (the EE 518 study's constraint)
    ``scale = g_max / max|W|``; each sign's magnitudes are clamped to
    ``[max|W| / on_off_ratio, max|W|]`` (that is, to ``[g_min, g_max]`` once scaled) and
    snapped to the table. The device of the other sign is not programmed and holds 0 S
    (a disconnected cell), and an exactly-zero weight leaves both devices at 0 S, as the
    study left zero weights at zero.

In both cases the exact inverse is ``W = (G+ - G-) / scale``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .validation import check_finite, check_number

MAPPINGS = ("differential", "clip")


class Conductances(NamedTuple):
    """A programmed differential pair.

    Attributes:
        g_pos: conductance of the positive device, siemens, shape of the weight.
        g_neg: conductance of the negative device, siemens, shape of the weight.
        scale: siemens per weight unit (0-dim tensor).
    """

    g_pos: torch.Tensor
    g_neg: torch.Tensor
    scale: torch.Tensor


def check_mapping(mapping: str) -> str:
    """Return ``mapping`` if it names a known mapping, else raise a ValueError naming it."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping: unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    return mapping


def snap(g: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
    """Snap conductances to the nearest state of an ascending table (straight-through gradient).

    Ties between two states go to the lower one. Values outside the table go to its ends.

    Args:
        g: conductances, siemens, any shape.
        states: ascending 1-D table of conductances, siemens, or None (continuous device:
            returns ``g`` unchanged).

    Returns:
        Tensor like ``g`` whose values lie in ``states``; its gradient with respect to ``g``
        is the identity.
    """
    if states is None:
        return g
    states = states.to(device=g.device, dtype=g.dtype)
    mid = (states[1:] + states[:-1]) / 2
    idx = torch.bucketize(g.detach(), mid, right=False)
    snapped = states[idx]
    return g + (snapped - g).detach()


def weight_scale(weight: torch.Tensor, g_min: float, g_max: float, mapping: str = "differential") -> torch.Tensor:
    """Siemens per weight unit for a layer's weight.

    Args:
        weight: the float weight (any shape).
        g_min: lowest device conductance, siemens.
        g_max: highest device conductance, siemens.
        mapping: ``"differential"`` or ``"clip"``.

    Returns:
        0-dim tensor: ``(g_max - g_min) / max|W|`` (differential) or ``g_max / max|W|`` (clip).
        An all-zero weight uses ``max|W| = 1``, and ``max|W|`` is at least the dtype's smallest
        normal number, so the scale stays finite.
    """
    check_mapping(mapping)
    w_max = weight.detach().abs().max()
    w_max = torch.where(w_max > 0, w_max, torch.ones_like(w_max))
    w_max = w_max.clamp_min(torch.finfo(w_max.dtype).tiny)  # subnormal weights: keep scale finite
    span = (g_max - g_min) if mapping == "differential" else g_max
    return span / w_max


def map_weights(
    weight: torch.Tensor,
    g_min: float,
    g_max: float,
    states: torch.Tensor | None = None,
    on_off_ratio: float | None = None,
    mapping: str = "differential",
) -> Conductances:
    """Map a weight onto a differential pair of devices and snap it to the state table.

    Args:
        weight: float weight, weight units, any shape.
        g_min: lowest conductance, siemens.
        g_max: highest conductance, siemens.
        states: ascending state table, siemens, or None for a continuous device.
        on_off_ratio: ``g_max / g_min``; only used by ``clip`` (defaults to ``g_max / g_min``).
        mapping: ``"differential"`` (default) or ``"clip"``.

    Returns:
        :class:`Conductances` ``(g_pos, g_neg, scale)``. Gradients flow straight through
        the snapping to ``weight``.

    Raises:
        ValueError: NaN / infinite ``weight``, ``g_min``/``g_max`` not ``0 <= g_min < g_max``
            (finite), an ``on_off_ratio`` not above 1, or an unknown ``mapping``.
    """
    check_mapping(mapping)
    g_min = check_number(g_min, "g_min", 0.0)
    g_max = check_number(g_max, "g_max", g_min, low_open=True)
    if on_off_ratio is not None:
        check_number(on_off_ratio, "on_off_ratio", 1.0, low_open=True)
    check_finite(weight.detach(), "weight")
    scale = weight_scale(weight, g_min, g_max, mapping).to(weight.dtype)
    if mapping == "differential":
        g_pos = snap(g_min + scale * torch.relu(weight), states)
        g_neg = snap(g_min + scale * torch.relu(-weight), states)
        return Conductances(g_pos, g_neg, scale)
    ratio = on_off_ratio if on_off_ratio is not None else (g_max / g_min if g_min > 0 else math.inf)
    w_max = g_max / scale
    mag = torch.clamp(weight.abs(), min=w_max / ratio, max=w_max)
    g = snap(scale * mag, states)
    zero = torch.zeros_like(g)
    g_pos = torch.where(weight > 0, g, zero)
    g_neg = torch.where(weight < 0, g, zero)
    return Conductances(g_pos, g_neg, scale)


def unmap(g_pos: torch.Tensor, g_neg: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Exact inverse of :func:`map_weights`: ``(G+ - G-) / scale`` in weight units."""
    return (g_pos - g_neg) / scale
