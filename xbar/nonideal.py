"""Device non-idealities: conductance drift and global drift compensation.

Drift follows the power law of phase-change and some resistive devices,
``G(t) = G0 * (t / t0) ** -nu`` for ``t >= t0`` (``G0`` is the conductance read ``t0`` seconds
after programming; earlier reads see ``G0``). Global drift compensation (Le Gallo et al. 2018;
aihwkit's ``GlobalDriftCompensation``) reads a known reference through each array once and
rescales the array's outputs by ``sum(G0) / sum(G(t))``; when every device shares one ``nu`` this
restores the undrifted output exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def drift_factor(t_seconds: float, nu: float, t0_seconds: float) -> float:
    """``(t / t0) ** -nu`` for ``t >= t0``, else 1 (dimensionless).

    Args:
        t_seconds: time since programming, seconds (>= 0).
        nu: drift exponent (>= 0).
        t0_seconds: reference time of the programmed conductance, seconds (> 0).
    """
    if not math.isfinite(t_seconds) or t_seconds < 0:
        raise ValueError(f"t_seconds: must be a finite time >= 0, got {t_seconds!r}")
    if t_seconds <= t0_seconds or nu == 0:
        return 1.0
    return (t_seconds / t0_seconds) ** (-nu)


def drift_conductance(g0: torch.Tensor, t_seconds: float, nu: float, t0_seconds: float) -> torch.Tensor:
    """Conductances ``g0`` (siemens) as read ``t_seconds`` after programming."""
    return g0 * drift_factor(t_seconds, nu, t0_seconds)


@torch.no_grad()
def drift(model: nn.Module, t_seconds: float, compensate: bool = True) -> nn.Module:
    """Let every crossbar layer of ``model`` drift to ``t_seconds`` after programming.

    Args:
        model: any module holding :class:`~xbar.CrossbarLinear` / :class:`~xbar.CrossbarConv2d`.
        t_seconds: time since programming, seconds.
        compensate: apply global drift compensation (one reference read per layer rescales
            its output by ``sum(G0) / sum(G(t))``).

    Returns:
        ``model`` (modified in place). Re-programming a layer undoes its drift.
    """
    from .layers import CROSSBAR_TYPES

    for m in model.modules():
        if isinstance(m, CROSSBAR_TYPES):
            m.drift(t_seconds, compensate=compensate)
    return model
