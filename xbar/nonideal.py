"""Device non-idealities: programming errors, stuck-at faults, drift and its compensation.

:func:`program_devices` writes target conductances with device-to-device spread, programming
noise, clipping and stuck-at faults (a fresh defect map, or a fixed one from
:func:`draw_faults` / :func:`xbar.chip.fix_faults`: the chip's map as a read-after-write test finds it).
:func:`xbar.chip.program_model` programs a whole model as one chip from one seed. Read noise, the ADC
and DAC act on every read (:mod:`xbar.periphery`, :meth:`xbar.CrossbarLinear.forward`).

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


def drift_conductance(g0: torch.Tensor, t_seconds: float, nu: float | torch.Tensor,
                      t0_seconds: float) -> torch.Tensor:
    """Conductances ``g0`` (siemens) as read ``t_seconds`` after programming.

    ``nu`` is one exponent, or one per device (a tensor shaped like ``g0``).
    """
    if isinstance(nu, torch.Tensor):
        if t_seconds <= t0_seconds:
            return g0
        return g0 * torch.exp(-nu * math.log(t_seconds / t0_seconds))
    return g0 * drift_factor(t_seconds, nu, t0_seconds)


@torch.no_grad()
def draw_nu(shape: torch.Size, nu: float, nu_sigma: float, generator: torch.Generator | None = None,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Per-device drift exponents ``max(nu + nu_sigma * N, 0)`` (a device does not grow)."""
    return (nu + nu_sigma * torch.randn(shape, generator=generator, device=device)).clamp_min(0.0)


def _normal(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


@torch.no_grad()
def draw_faults(shape: torch.Size, stuck_off: float, stuck_on: float, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A defect map: boolean masks ``(stuck at g_min, stuck at g_max)`` of ``shape``.

    One uniform number ``u`` per device: stuck at ``g_min`` when ``u < stuck_off``, at ``g_max``
    when ``u >= 1 - stuck_on``. With one generator seed the maps are nested: every device
    stuck at a fraction is stuck at any larger fraction too.
    """
    u = torch.rand(shape, generator=generator, device=device)
    return u < stuck_off, u >= 1 - stuck_on  # u < 1, so stuck_on = 0 marks no device


@torch.no_grad()
def program_devices(g: torch.Tensor, g_min: float, g_max: float, programming_sigma: float = 0.0,
                    d2d_sigma: float = 0.0, stuck_off: float = 0.0, stuck_on: float = 0.0,
                    generator: torch.Generator | None = None,
                    faults: tuple[torch.Tensor, torch.Tensor] | None = None,
                    sigma: torch.Tensor | None = None, floor: float | None = None) -> torch.Tensor:
    """Write target conductances ``g`` into devices, with the device's programming errors.

    In order: device-to-device spread (each device's conductance scaled by ``1 + d2d_sigma * N``),
    programming noise (``+ programming_sigma * g_max * N``, or ``+ sigma * N`` with a per-device
    ``sigma`` of the target, :mod:`xbar.noise_models`), clipping to ``[floor, g_max]``, then
    stuck-at faults (a fraction ``stuck_off`` of devices reads ``g_min``, ``stuck_on`` reads
    ``g_max``, whatever was written). Devices with target 0 S (not programmed: the idle side of
    the ``clip`` mapping) are left at 0 S.

    Args:
        g: target conductances, siemens.
        g_min, g_max: the device's range, siemens.
        programming_sigma: relative to ``g_max``, >= 0.
        d2d_sigma: relative spread, >= 0.
        stuck_off, stuck_on: fractions of devices, summing to at most 1.
        generator: source of the random draws (same seed, same conductances).
        faults: a fixed defect map ``(stuck_off_mask, stuck_on_mask)`` (see :func:`draw_faults`)
            used instead of drawing one with ``stuck_off`` / ``stuck_on``.
        sigma: programming sigma per device, siemens, shaped like ``g`` (replaces
            ``programming_sigma``).
        floor: lowest conductance a write can land on, siemens (None: ``g_min``; 0 for a device
            that can land below its nominal ``g_min``).

    Returns:
        The programmed conductances (a new tensor), siemens.
    """
    if programming_sigma == d2d_sigma == stuck_off == stuck_on == 0 and faults is None and sigma is None:
        return g.clone()
    used = g > 0
    out = g.clone()
    if d2d_sigma > 0:
        out = out * (1 + d2d_sigma * _normal(g.shape, g, generator))
    if sigma is not None:
        out = out + sigma.to(g) * _normal(g.shape, g, generator)
    elif programming_sigma > 0:
        out = out + programming_sigma * g_max * _normal(g.shape, g, generator)
    out = out.clamp(g_min if floor is None else floor, g_max)
    if faults is None and (stuck_off > 0 or stuck_on > 0):
        faults = draw_faults(g.shape, stuck_off, stuck_on, generator, g.device)
    if faults is not None:
        out = torch.where(faults[0].to(out.device), torch.full_like(out, g_min), out)
        out = torch.where(faults[1].to(out.device), torch.full_like(out, g_max), out)
    return torch.where(used, out, g)
