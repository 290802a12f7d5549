"""The integrate-and-fire scan over ``T`` steps: the in-place inference loop, its
``torch.compile`` form, and the autograd node with spikingjelly's sigmoid surrogate whose
backward keeps memory linear in ``T``. Used by :mod:`xbar.snn`; ``tests/test_fast.py`` proves
each bit-equal to :func:`xbar.neurons.if_scan` (and to autograd on it).
"""

from __future__ import annotations

from typing import Any

import torch

_SCAN_CHUNK = 131072  # CPU: neurons per chunk of the IF scan (4 x ATen's parallel grain, 32768)
_SMALL = 1 << 20  # values of an input small enough to stay in the cache whole (4 MB of float32)


def _scan(x: torch.Tensor, th: torch.Tensor, v: torch.Tensor, subtract: bool, divide: bool,
          keep_pre: bool = False, count: torch.Tensor | None = None, gain: torch.Tensor | None = None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """In-place IF scan over ``x [T, B, ...]`` from potential ``v`` (overwritten).

    Bitwise equal to :func:`xbar.neurons.if_step` applied ``T`` times with a Heaviside spike,
    for finite inputs: fire when ``v + x >= th`` (the sign of ``v + x - th``; with ``divide``,
    as under a surrogate, fire on ``(v + x - th) / th >= 0`` literally), then
    ``v -= s * th`` (one ``addcmul``) or ``v -= v * s`` (reset to zero). Three tensor ops per
    step without ``divide``. On the CPU the neurons are scanned in chunks of ``_SCAN_CHUNK``
    elements: small enough to stay in the cache over the ``T`` steps, large enough that ATen
    splits each op over its threads (on 2 cores, LeNet's first IF layer, 27 x 4704 neurons over
    32 steps, took 2.2 ms in chunks of 32704 and 1.2 ms in chunks of 131072).

    With ``count`` (a float64 scalar tensor), the number of spikes is added to it, each step's
    chunk summed while it is in the cache (an energy meter's spike count without another pass
    over ``spikes``); exact: float32 sums of at most ``2**24`` ones are.

    With ``gain`` (a one-element tensor), each step of ``x`` is first multiplied by
    it in place, while in the cache: bitwise ``x.mul_(gain)`` before the scan, one pass less.

    An ``x`` of at most ``_SMALL`` values stays in the cache whole (a CNN's fully connected
    layers): it is multiplied by ``gain`` and its spikes are counted in one op each, instead of
    one per step and chunk (the same values: the multiplications are the same, the count exact).

    Returns:
        ``(spikes, v, pre)``: spikes ``[T, B, ...]`` (dtype of ``x``), the final potential and,
        with ``keep_pre``, the pre-reset potentials ``v + x`` of every step.
    """
    steps = x.shape[0]
    spikes = torch.empty_like(x)
    pre = torch.empty_like(x) if keep_pre else None
    xf, sf = x.reshape(steps, -1), spikes.view(steps, -1)
    pf = pre.view(steps, -1) if pre is not None else None
    vf = v.view(-1)
    thf = th if th.numel() == 1 else th.expand(x.shape[1:]).reshape(-1)
    size = vf.numel()
    step = _SCAN_CHUNK if x.device.type == "cpu" else max(size, 1)
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32  # exact for 2**24 ones
    small = x.numel() <= _SMALL
    if small and gain is not None:
        x.mul_(gain)
        gain = None
    part = torch.empty((), dtype=wide, device=x.device) if count is not None and not small else None
    for c0 in range(0, size, step):
        c1 = min(size, c0 + step)
        vc, tc = vf[c0:c1], (thf if thf.dim() == 0 else thf[c0:c1])
        u = torch.empty_like(vc) if divide else None
        xs, ss = xf[:, c0:c1].unbind(0), sf[:, c0:c1].unbind(0)
        ps = pf[:, c0:c1].unbind(0) if pf is not None else None
        for t in range(steps):
            s = ss[t]
            xt = xs[t] if gain is None else xs[t].mul_(gain)
            cur = torch.add(vc, xt, out=ps[t]) if ps is not None else vc.add_(xt)
            if divide:
                torch.ge(torch.sub(cur, tc, out=u).div_(tc), 0, out=s)
            else:
                torch.ge(cur, tc, out=s)
            reset_into(cur, s, tc, subtract, vc)
            if part is not None:
                count.add_(torch.sum(s, 0, dtype=wide, out=part))
    if small and count is not None:
        count.add_(spikes.sum(dtype=wide))
    return spikes, v, pre


def reset_into(cur: torch.Tensor, s: torch.Tensor, th: torch.Tensor, subtract: bool, v: torch.Tensor) -> None:
    """``v = cur - s * th`` (``subtract``) or ``v = cur - cur * s`` (reset to zero), one ``addcmul``."""
    if subtract:
        torch.addcmul(cur, s, th, value=-1.0, out=v)
    else:
        torch.addcmul(cur, cur, s, value=-1.0, out=v)


def _scan_pure(x: torch.Tensor, th: torch.Tensor, v: torch.Tensor,
               subtract: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Out-of-place form of :func:`_scan` (no division) for ``torch.compile``."""
    out = []
    for t in range(x.shape[0]):
        v = v + x[t]
        u = v - th
        s = u >= 0
        v = torch.where(s, u, v) if subtract else v.masked_fill(s, 0.0)
        out.append(s)
    return torch.stack(out), v


_COMPILED: dict[str, Any] = {}


def _scan_compiled(x: torch.Tensor, th: torch.Tensor, v: torch.Tensor,
                   subtract: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``torch.compile`` of :func:`_scan_pure`; None when compiling is unavailable or fails."""
    if _COMPILED.get("broken"):
        return None
    try:
        fn = _COMPILED.get("fn")
        if fn is None:
            fn = _COMPILED["fn"] = torch.compile(_scan_pure, dynamic=False)
        return fn(x, th, v, subtract)
    except Exception:  # any backend failure: fall back to the eager scan, same results
        _COMPILED["broken"] = True
        return None


def _sigmoid_surrogate(fn: Any) -> float | None:
    """``alpha`` when ``fn`` is spikingjelly's ``surrogate.Sigmoid`` in spiking mode, else None."""
    try:
        from spikingjelly.activation_based import surrogate
    except ImportError:
        return None
    if type(fn) is surrogate.Sigmoid and fn.spiking:
        return float(fn.alpha)
    return None


def _heaviside_forward(fn: Any) -> bool:
    """The surrogate's forward pass is the Heaviside step (spikingjelly, spiking mode)."""
    if fn is None:
        return True
    try:
        from spikingjelly.activation_based.surrogate import SurrogateFunctionBase
    except ImportError:
        return False
    return isinstance(fn, SurrogateFunctionBase) and bool(fn.spiking)


class _IFScanFunction(torch.autograd.Function):
    """The IF scan with spikingjelly's sigmoid surrogate as one autograd node.

    Forward saves only the pre-reset potentials ``[T, B, ...]`` (and the threshold); backward
    runs the recurrence in reverse. The arithmetic replays, operation for operation, what
    autograd does on :func:`xbar.neurons.if_scan`, so the gradients are the same.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, th: torch.Tensor, alpha: float,
                subtract: bool) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, v, pre = _scan(x, th, torch.zeros_like(x[0]), subtract, divide=True, keep_pre=True)
        ctx.save_for_backward(pre, th)
        ctx.alpha, ctx.subtract = alpha, subtract
        ctx.set_materialize_grads(False)
        return spikes, v

    @staticmethod
    def backward(ctx: Any, g_spikes: torch.Tensor | None, g_v: torch.Tensor | None):
        # Step by step (each op stays below ATen's parallel grain) with preallocated buffers;
        # every product and sum is the reference's, in its order (IEEE + and * commute).
        pre, th = ctx.saved_tensors
        alpha, subtract = ctx.alpha, ctx.subtract
        neg_th = -th
        grad_x = torch.empty_like(pre)
        z, sg, one_minus, buf = (torch.empty_like(pre[0]) for _ in range(4))
        gv = g_v
        for t in range(pre.shape[0] - 1, -1, -1):
            torch.sub(pre[t], th, out=z).div_(th)
            torch.sigmoid(torch.mul(z, alpha, out=sg), out=sg)
            torch.sub(1.0, sg, out=one_minus)  # spikingjelly: g (1 - s) s alpha, s = sigmoid(alpha z)
            if gv is None:
                gs = g_spikes[t] if g_spikes is not None else torch.zeros_like(buf)
            else:  # g_s + (-gv * th), or g_s + (-(gv * pre)) for the reset to zero
                back = torch.mul(gv, neg_th, out=buf) if subtract else torch.mul(gv, pre[t], out=buf).neg_()
                gs = back.add_(g_spikes[t]) if g_spikes is not None else back.add_(0.0)
            gu = torch.mul(gs, one_minus, out=grad_x[t]).mul_(sg).mul_(alpha).div_(th)
            if gv is not None:  # gv + gu, or gv * (1 - H(z)) + gu for the reset to zero
                gu.add_(gv if subtract else torch.mul(gv, 1.0 - (z >= 0).to(z.dtype), out=buf))
            gv = gu
        return grad_x, None, None, None
