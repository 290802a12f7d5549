"""Conductance-dependent device noise: programming sigma, drift exponents and 1/f read noise as
functions of the conductance, and the time since programming.

Pure functions of tensors and numbers (siemens, seconds); the thin ``*_of(profile, ...)``
adapters read the parameters off anything with a :class:`~xbar.DeviceProfile`'s attributes.
This module imports nothing above it. The forms are aihwkit's PCM model
(``aihwkit.inference.noise.pcm.PCMLikeNoiseModel``, fitted to ~1M PCM devices; Nandakumar et
al., ICECS 2019; Joshi et al., Nat. Commun. 11, 2473, 2020):

* programming: ``sigma(G) = max(sum_i c_i (G / g_max)^i, 0)`` (aihwkit ``prog_coeff``), or one
  sigma per state of a measured table, interpolated linearly in ``G`` between states;
* drift: ``nu(G) = clip(c0 + c1 ln(G / g_max), low, high)`` and the same form for its
  device-to-device spread (``G / g_max`` floored at 1e-7, aihwkit's ``_ZERO_CLIP``), or per state;
* 1/f read noise: ``sigma(G, t) = |G(t)| Q_s(G0) sqrt(ln((t_p + t_read) / (2 t_read)))`` with
  ``Q_s = min(q (G0 / g_max)^-e, q_max)`` (``(G0 / g_max)^e`` floored at 1e-3).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

ZERO_CLIP = 1e-7     # smallest G / g_max the log fits see (aihwkit pcm._ZERO_CLIP)
FLICKER_FLOOR = 1e-3  # smallest (G / g_max)^exponent in Q_s (aihwkit)


def polynomial(x: torch.Tensor, coeffs: Sequence[float]) -> torch.Tensor:
    """``sum_i coeffs[i] * x**i`` (Horner), same shape as ``x``."""
    out = torch.full_like(x, float(coeffs[-1]))
    for c in reversed(coeffs[:-1]):
        out = out * x + float(c)
    return out


def interp_states(g: torch.Tensor, states: Sequence[float], values: Sequence[float]) -> torch.Tensor:
    """``values`` given at the ascending ``states`` (siemens), interpolated linearly in ``g``;
    constant beyond the ends."""
    s = torch.tensor(states, dtype=g.dtype, device=g.device)
    v = torch.tensor(values, dtype=g.dtype, device=g.device)
    gc = g.clamp(s[0], s[-1])
    i = torch.bucketize(gc, s).clamp(1, len(s) - 1)
    lo, hi = s[i - 1], s[i]
    w = (gc - lo) / (hi - lo)
    return v[i - 1] + w * (v[i] - v[i - 1])


def log_fit(g: torch.Tensor, g_max: float, coeffs: Sequence[float], span: Sequence[float] | None) -> torch.Tensor:
    """``clip(c0 + c1 ln(G / g_max), *span)`` (``span`` None: clipped at 0 only)."""
    rel = (g.abs() / g_max).clamp_min(ZERO_CLIP)
    out = float(coeffs[0]) + float(coeffs[1]) * torch.log(rel)
    low, high = span if span is not None else (0.0, math.inf)
    return out.clamp(low, high)


def elapsed(t: float, t0: float, origin: str) -> float:
    """Time since programming (seconds) of a read at drift time ``t``: ``t`` itself
    (``origin="programming"``) or ``t + t0`` (``origin="t0"``, aihwkit's ``t_inference``)."""
    return t + t0 if origin == "t0" else t


def flicker_time_factor(t_p: float, t_read: float) -> float:
    """``sqrt(ln((t_p + t_read) / (2 t_read)))``: growth of accumulated 1/f noise (0 for
    ``t_p <= t_read``)."""
    arg = (t_p + t_read) / (2 * t_read)
    return math.sqrt(math.log(arg)) if arg > 1 else 0.0


def flicker_q(g0: torch.Tensor, g_max: float, q: float, exponent: float, q_max: float | None) -> torch.Tensor:
    """``Q_s(G0) = min(q / max((|G0| / g_max)^exponent, 1e-3), q_max)`` (dimensionless)."""
    base = ((g0.abs() / g_max) ** exponent).clamp_min(FLICKER_FLOOR) if exponent else torch.ones_like(g0)
    out = q / base
    return out if q_max is None else out.clamp_max(q_max)


# -- adapters: the same functions with a profile's parameters ---------------------------------

def programming_sigma_of(dev: Any, g: torch.Tensor) -> torch.Tensor | float:
    """Programming sigma (siemens) of devices with target conductances ``g``: per device for a
    conductance-dependent profile, else the float ``programming_sigma * g_max``."""
    if dev.programming_sigma_poly is not None:
        return polynomial(g / dev.g_max, dev.programming_sigma_poly).clamp_min(0.0)
    if dev.programming_sigma_states is not None:
        return interp_states(g, dev.states, dev.programming_sigma_states)
    return dev.programming_sigma * dev.g_max


def has_nu_model(dev: Any) -> bool | str:
    """Whether each device draws its own drift exponent: ``"model"`` when it depends on the
    conductance, ``"scalar"`` for one ``nu`` with a spread ``nu_sigma > 0``, else False."""
    if any(v is not None for v in (dev.drift_nu_ln, dev.drift_nu_states, dev.drift_nu_sigma_ln,
                                   dev.drift_nu_sigma_states)):
        return "model"
    return "scalar" if dev.drift_nu_sigma > 0 else False


def _g_dependent(g: torch.Tensor, g_max: float, ln: Any, span: Any, states_of: Any, states: Any,
                 scalar: float) -> torch.Tensor | float:
    """A drift figure for target conductances ``g``: the clipped log fit, else the per-state
    table, else the profile's scalar."""
    if ln is not None:
        return log_fit(g, g_max, ln, span)
    if states_of is not None:
        return interp_states(g, states, states_of)
    return scalar


def nu_of(dev: Any, g: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """Mean and device-to-device spread of the drift exponent for target conductances ``g``."""
    mean = _g_dependent(g, dev.g_max, dev.drift_nu_ln, dev.drift_nu_range, dev.drift_nu_states, dev.states,
                        dev.drift_nu)
    spread = _g_dependent(g, dev.g_max, dev.drift_nu_sigma_ln, dev.drift_nu_sigma_range,
                          dev.drift_nu_sigma_states, dev.states, dev.drift_nu_sigma)
    return mean, spread


def draw_nu_of(dev: Any, g: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-device exponents ``max(nu(G) + nu_sigma(G) N(0, 1), 0)`` for target conductances ``g``."""
    mean, spread = nu_of(dev, g)
    z = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
    return (mean + spread * z).clamp_min(0.0)


def flicker_sigma_of(dev: Any, g0: torch.Tensor, g_now: torch.Tensor, t_p: float) -> torch.Tensor:
    """1/f read-noise sigma (siemens) per device: programmed ``g0``, conductance ``g_now`` at
    ``t_p`` seconds since programming (devices at 0 S, not programmed, have none)."""
    if dev.flicker_q == 0:
        return torch.zeros_like(g0)
    t_read = dev.flicker_t_read if dev.flicker_t_read is not None else dev.read_time
    q = flicker_q(g0, dev.g_max, dev.flicker_q, dev.flicker_exponent, dev.flicker_q_max)
    return g_now.abs() * q * flicker_time_factor(t_p, t_read)
