"""Integrate-and-fire neurons: the pure step first, the module second (norse style).

Dynamics, for input ``x[t]`` (a current in amperes inside a crossbar SNN, or weight units):

    v[t] = v[t-1] + x[t]
    s[t] = H(v[t] - threshold)            H(u) = 1 if u >= 0 else 0
    v[t] = v[t] - threshold * s[t]        reset="subtract" (soft reset)
    v[t] = v[t] * (1 - s[t])              reset="zero"     (hard reset to 0)

``H(0) = 1`` follows spikingjelly's Heaviside, so xbar and ``spikingjelly``'s
``IFNode(v_reset=None)`` give identical spikes on identical currents. With a surrogate
function (spikingjelly's ``surrogate.Sigmoid(alpha=4)`` by default) the forward pass is the same
Heaviside step and the backward pass uses the surrogate's derivative, evaluated on the
threshold-relative potential ``(v - threshold) / threshold``: with ``threshold = 1`` that is
spikingjelly's gradient exactly, and with a threshold in amperes (about 1e-5 A) the surrogate
keeps its shape instead of flattening out.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

RESETS = ("subtract", "zero")


def heaviside(u: torch.Tensor) -> torch.Tensor:
    """``1.0`` where ``u >= 0``, else ``0.0`` (no gradient)."""
    return (u >= 0).to(u.dtype)


def default_surrogate() -> Callable[[torch.Tensor], torch.Tensor]:
    """spikingjelly's sigmoid surrogate, ``surrogate.Sigmoid(alpha=4.0)``."""
    from spikingjelly.activation_based import surrogate

    return surrogate.Sigmoid(alpha=4.0)


def _check_reset(reset: str) -> str:
    if reset not in RESETS:
        raise ValueError(f"reset: expected one of {RESETS}, got {reset!r}")
    return reset


def if_step(x: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor | float,
            reset: str = "subtract",
            surrogate: Callable[[torch.Tensor], torch.Tensor] | None = None,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One integrate-and-fire step (pure function).

    Args:
        x: input current for this step, shape ``[B, ...]`` (amperes or weight units).
        v: membrane potential before the step, same shape and units as ``x``.
        threshold: firing threshold, same units (scalar, or broadcastable to ``x``).
        reset: ``"subtract"`` (soft reset by the threshold) or ``"zero"`` (hard reset).
        surrogate: function applied to ``v - threshold`` to fire; ``None`` is the plain
            Heaviside step (no gradient).

    Returns:
        ``(spike, v)``: spikes in ``{0, 1}`` (dtype of ``x``) and the potential after reset.
    """
    v = v + x
    u = v - threshold
    spike = heaviside(u) if surrogate is None else surrogate(u / threshold)
    if reset == "subtract":
        v = v - spike * threshold
    elif reset == "zero":
        v = v * (1.0 - spike)
    else:
        _check_reset(reset)
    return spike, v


def if_scan(x_seq: torch.Tensor, threshold: torch.Tensor | float, reset: str = "subtract",
            surrogate: Callable[[torch.Tensor], torch.Tensor] | None = None,
            v0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step IF: :func:`if_step` applied over the leading time axis.

    Args:
        x_seq: input currents, shape ``[T, B, ...]``.
        threshold, reset, surrogate: as :func:`if_step`.
        v0: initial potential ``[B, ...]`` (zeros if None).

    Returns:
        ``(spikes, v)``: spikes ``[T, B, ...]`` and the final potential ``[B, ...]``.
    """
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    out = []
    for t in range(x_seq.shape[0]):
        s, v = if_step(x_seq[t], v, threshold, reset, surrogate)
        out.append(s)
    return torch.stack(out), v


def check_v_init(v_init: float) -> float:
    """``v_init`` as a float in ``[0, 1)``; ValueError naming it otherwise."""
    try:
        v = float(v_init)
    except (TypeError, ValueError):
        raise ValueError(f"v_init: expected a number in [0, 1), got {v_init!r}") from None
    if not 0.0 <= v < 1.0:
        raise ValueError(f"v_init: the initial potential is a fraction of the threshold in [0, 1), got {v_init!r}")
    return v


class IFNeuron(nn.Module):
    """Integrate-and-fire neuron layer with explicit state.

    Args:
        threshold: firing threshold (amperes inside a crossbar SNN, else weight units);
            a float or a tensor broadcastable to the input (per-channel thresholds).
        reset: ``"subtract"`` (default) or ``"zero"``.
        surrogate: surrogate spike function for BPTT; ``"default"`` (spikingjelly
            ``surrogate.Sigmoid(alpha=4)``), a callable, or ``None`` for the plain step.
        step_mode: ``"s"`` (one step per call, ``[B, ...]``) or ``"m"`` (``[T, B, ...]``).
        learn_threshold: make the threshold a trainable parameter.
        v_init: the potential every sample starts from (and returns to on :meth:`reset`), as a
            fraction of the threshold, in ``[0, 1)``. ``0`` (default) starts from rest; ``0.5``
            starts half-way to the threshold, which centres the rounding of a rate-coded
            activation: after ``T`` steps of a constant input ``x`` the spike count is
            ``floor(T x / th + v_init)``, so the error of the count is at most half a spike
            instead of one (Bu et al., ICLR 2022, "Optimal ANN-SNN conversion for
            high-accuracy and ultra-low-latency spiking neural networks", Theorem 2).

    Shape:
        ``"s"``: input and output ``[B, ...]``; ``"m"``: input and output ``[T, B, ...]``.
    """

    def __init__(self, threshold: float | torch.Tensor = 1.0, reset: str = "subtract",
                 surrogate: Callable[[torch.Tensor], torch.Tensor] | str | None = "default",
                 step_mode: str = "s", learn_threshold: bool = False, v_init: float = 0.0) -> None:
        super().__init__()
        self.v_init = check_v_init(v_init)
        self.reset_mode = _check_reset(reset)
        if step_mode not in ("s", "m"):
            raise ValueError(f"step_mode: expected 's' or 'm', got {step_mode!r}")
        self.step_mode = step_mode
        th = torch.as_tensor(threshold, dtype=torch.float32).clone()
        if not torch.isfinite(th).all() or (th <= 0).any():
            raise ValueError(f"threshold: must be finite and > 0, got {threshold!r}")
        if learn_threshold:
            self.threshold = nn.Parameter(th)
        else:
            self.register_buffer("threshold", th)
        self.surrogate = default_surrogate() if surrogate == "default" else surrogate
        # Threshold in weight units when ``threshold`` is a current (set by xbar.to_snn).
        self.register_buffer("weight_threshold", None)
        self.v: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the membrane potential (the next input starts from ``v_init * threshold``)."""
        self.v = None

    def initial_potential(self, x: torch.Tensor) -> torch.Tensor:
        """The potential a sample starts from, shaped like one step ``x [B, ...]``: zeros, or
        ``v_init`` times the threshold."""
        v = torch.zeros_like(x)
        if self.v_init:
            v.add_(self._threshold_for(x).detach(), alpha=self.v_init)
        return v

    def _threshold_for(self, x: torch.Tensor) -> torch.Tensor:
        th = self.threshold
        if th.dim() == 1 and x.dim() > 2:
            th = th.view(-1, *([1] * (x.dim() - 2)))
        return th.to(dtype=x.dtype)

    def single_step(self, x: torch.Tensor) -> torch.Tensor:
        """One step: integrate ``x`` ``[B, ...]``, fire, reset; returns spikes ``[B, ...]``."""
        v = self.initial_potential(x) if self.v is None else self.v
        spike, self.v = if_step(x, v, self._threshold_for(x), self.reset_mode, self.surrogate)
        return spike

    def multi_step(self, x_seq: torch.Tensor) -> torch.Tensor:
        """All steps of ``x_seq`` ``[T, B, ...]``; returns spikes ``[T, B, ...]``."""
        spikes, self.v = if_scan(x_seq, self._threshold_for(x_seq[0]), self.reset_mode,
                                 self.surrogate,
                                 self.v if self.v is not None or not self.v_init else self.initial_potential(x_seq[0]))
        return spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Single- or multi-step, according to ``step_mode``."""
        return self.single_step(x) if self.step_mode == "s" else self.multi_step(x)

    def extra_repr(self) -> str:
        th = self.threshold
        th_s = f"{th.item():.4g}" if th.numel() == 1 else f"tensor{tuple(th.shape)}"
        extra = f", v_init={self.v_init:g}" if self.v_init else ""
        return f"threshold={th_s}, reset={self.reset_mode!r}, step_mode={self.step_mode!r}{extra}"
