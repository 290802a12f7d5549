"""The integrate-and-fire scan fused with what surrounds it in a CNN: the crossbar's current
scale before it and a tiling average pool after it.

A converted CNN's block ``crossbar conv -> IF -> AvgPool2d`` run step by step computes
``I_t = conv(x_t) * s`` (amperes), scans the IF neurons over ``I_t`` and pools their spikes.
Done as three passes over ``[T, B, C, H, W]`` tensors, every pass streams the whole tile
through memory. :func:`scan_avg_pool` does the same arithmetic block of samples by block,
step by step: each step's currents are scaled, integrated, compared and pooled while they are
in the cache, and the full spike tensor is never written. Every value is bitwise the one of
the three passes (``tests/test_scan_pool.py``): the scale is the same multiplication, the scan
the same three operations as :func:`xbar.scan._scan`, and the pool of spikes is exact in any
order of additions (:func:`xbar.pooling.fast_avg_pool2d`).
"""

from __future__ import annotations

import torch

from .pooling import window_pool_into
from .scan import _SCAN_CHUNK, reset_into

__all__ = ["pooled_sum", "scan_avg_pool"]


def scan_avg_pool(x: torch.Tensor, th: torch.Tensor, v: torch.Tensor, subtract: bool, kernel: tuple[int, int],
                  gain: torch.Tensor | None = None, count: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """IF scan of ``x [T, B, C, H, W]`` from potential ``v [B, C, H, W]`` (overwritten), its
    spikes average-pooled over tiling ``kernel`` windows. With ``gain`` (a one-element tensor),
    each step of ``x`` is first multiplied by it in place.

    Fire when ``v + x >= th``, then ``v -= s * th`` (``subtract``) or ``v -= v * s`` (reset to
    zero), as :func:`xbar.scan._scan` without a surrogate's division. ``th``: a scalar or a
    tensor broadcastable to ``[B, C, H, W]``. ``count`` (a float64 scalar tensor): the number
    of spikes is added to it, exactly: for windows of a power-of-two size as ``size`` times the
    exact sum of the pooled values (:func:`pooled_sum`), otherwise by
    summing each step's block of spikes while in the cache.

    Returns:
        ``(pooled, v)``: ``pooled [T, B, C, H / kh, W / kw]`` (dtype of ``x``) and the final
        potential.

    Raises:
        ValueError: ``x`` is not a contiguous float32/float64 ``[T, B, C, H, W]`` tensor whose
            sides ``kernel`` divides.
    """
    kh, kw = kernel
    if x.dim() != 5 or x.dtype not in (torch.float32, torch.float64) or not x.is_contiguous():
        raise ValueError(f"x: expected a contiguous float32/float64 [T, B, C, H, W] tensor, got "
                         f"{x.dtype} of shape {tuple(x.shape)}")
    steps, batch, c, h, w = x.shape
    if h % kh or w % kw:
        raise ValueError(f"kernel: {kernel} does not tile the {h} x {w} maps of x")
    v = v if v.is_contiguous() else v.contiguous()
    pooled = torch.empty((steps, batch, c, h // kh, w // kw), dtype=x.dtype, device=x.device)
    thb = th if th.numel() == 1 else th.expand(x.shape[1:])
    block = max(1, _SCAN_CHUNK // max(1, c * h * w)) if x.device.type == "cpu" else max(batch, 1)
    size = kh * kw
    from_pool = count is not None and size & (size - 1) == 0  # pooled values n / size: exact
    part = torch.empty((), dtype=x.dtype, device=x.device) if count is not None and not from_pool else None
    for b0 in range(0, batch, block):
        b1 = min(batch, b0 + block)
        vb = v[b0:b1]
        tb = thb if thb.dim() == 0 else thb[b0:b1].contiguous()
        s = torch.empty_like(vb)
        for t in range(steps):
            xt = x[t, b0:b1]
            cur = vb.add_(xt if gain is None else xt.mul_(gain))
            torch.ge(cur, tb, out=s)
            reset_into(cur, s, tb, subtract, vb)
            if part is not None:
                count.add_(torch.sum(s.view(-1), 0, dtype=x.dtype, out=part))
            window_pool_into(s, kh, kw, pooled[t, b0:b1])
    if from_pool:  # every spike is 1 / size of a pooled value
        count.add_(pooled_sum(pooled, size).mul_(size))
    return pooled, v


def pooled_sum(pooled: torch.Tensor, size: int) -> torch.Tensor:
    """The float64 sum of ``pooled``, whose values are multiples of ``1 / size`` in ``[0, 1]``
    (pooled spikes), exact: float32 tensors are summed in float32 in blocks of at most
    ``2**24 / size`` values (every partial sum of such a block is a multiple of ``1 / size``
    below ``2**24 / size``, so representable; ten times faster than converting to float64) and
    the blocks are added in float64."""
    flat = pooled.reshape(-1)
    if flat.dtype != torch.float32:
        return flat.sum(dtype=torch.float64)
    step = (1 << 24) // size
    if flat.numel() <= step:
        return flat.sum().to(torch.float64)
    return torch.stack([c.sum() for c in flat.split(step)]).sum(dtype=torch.float64)
