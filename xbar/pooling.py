"""Spiking max-pooling: the gate on accumulated spike counts (Rueckauer et al., 2017).

A max-pool of spike trains cannot take the maximum of the spikes of one step (that would pass
the union of the spikes). Rueckauer et al. (2017, "Conversion of continuous-valued deep networks
to efficient event-driven networks for image classification", section 2.2.4) gate each pooling
window so that it passes the spikes of the input with the highest firing rate, estimated online
from each input's accumulated spike count (sinabs' ``SpikingMaxPooling2dLayer`` keeps the same
counts). xbar uses the form of that gate whose output count is always the window's largest
input count so far::

    C_t   = C_{t-1} + s_t                        (spike count of every input, per sample)
    out_t = maxpool(C_t) - maxpool(C_{t-1})      (in {0, 1}: a count grows by at most 1 a step)

so after any number of steps the output has fired ``max_i C_i`` times: its rate is the max-pool
of the input rates, which is what the ANN's max-pool of (rate-coded) activations computes. When
the leading input changes, the output follows the new leader's count without passing extra
spikes (a gate switched on the previous leader's spike would).

Energy (counted by :class:`~xbar.EnergyMeter` as digital work, ``maxpool_ops``): per step one
counter increment per input spike and ``k - 1`` comparisons per output (``k`` inputs in a
window).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpikingMaxPool", "fast_avg_pool2d", "exact_product", "spiking_maxpool_step", "tiling_window",
           "window_pool_into"]


def _tuple(v: int | tuple, dims: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * dims


class SpikingMaxPool(nn.Module):
    """Max-pooling of spike trains by accumulated spike counts (module docstring).

    Args:
        dims: 1 or 2 (``MaxPool1d`` / ``MaxPool2d`` windows).
        kernel_size, stride, padding, dilation, ceil_mode: as ``nn.MaxPool1d/2d``
            (``stride`` None: the kernel size).

    Shape:
        input spikes ``[T, B, C, (H,) W]``; output spikes ``[T, B, C, (H',) W']``. State (the
        counts) carries over calls until :meth:`reset`.
    """

    def __init__(self, dims: int, kernel_size: int | tuple, stride: int | tuple | None = None,
                 padding: int | tuple = 0, dilation: int | tuple = 1, ceil_mode: bool = False) -> None:
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims: expected 1 or 2, got {dims!r}")
        self.dims = dims
        self.kernel_size = _tuple(kernel_size, dims)
        self.stride = _tuple(stride if stride is not None else kernel_size, dims)
        self.padding = _tuple(padding, dims)
        self.dilation = _tuple(dilation, dims)
        self.ceil_mode = bool(ceil_mode)
        self.counts: torch.Tensor | None = None
        self.pooled: torch.Tensor | None = None

    @classmethod
    def from_maxpool(cls, pool: nn.Module) -> "SpikingMaxPool":
        """The spiking form of an ``nn.MaxPool1d`` / ``nn.MaxPool2d``."""
        if not isinstance(pool, (nn.MaxPool1d, nn.MaxPool2d)):
            raise TypeError(f"pool: expected nn.MaxPool1d or nn.MaxPool2d, got {type(pool).__name__}")
        if pool.return_indices:
            raise ValueError("pool: a max-pool that returns indices has no spiking form")
        return cls(1 if isinstance(pool, nn.MaxPool1d) else 2, pool.kernel_size, pool.stride, pool.padding,
                   pool.dilation, pool.ceil_mode)

    @property
    def window(self) -> int:
        """Inputs per pooling window."""
        return math.prod(self.kernel_size)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The plain max-pool of ``x [N, C, (H,) W]`` with this layer's window."""
        fn = F.max_pool1d if self.dims == 1 else F.max_pool2d
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def reset(self) -> None:
        """Forget the spike counts (the next input starts a new sample)."""
        self.counts = None
        self.pooled = None

    def _tiles_exactly(self, shape: torch.Size) -> bool:
        """Windows that tile the input (stride = kernel, no padding, no dilation, sides divisible)."""
        return (self.stride == self.kernel_size and all(p == 0 for p in self.padding)
                and all(d == 1 for d in self.dilation)
                and all(n % k == 0 for n, k in zip(shape[-self.dims:], self.kernel_size)))

    def _tiled_max(self, counts: torch.Tensor) -> torch.Tensor:
        """The max-pool of ``counts [N, C, (H,) W]`` for exactly tiling windows, as elementwise
        maxima of contiguous views, last dimension first (equal to ``max_pool``, faster)."""
        out = counts
        for d in range(1, self.dims + 1):  # the last spatial dimension first
            k = self.kernel_size[-d]
            n = out.shape[-d]
            v = out.reshape(*out.shape[:out.dim() - d], n // k, k, *out.shape[out.dim() - d + 1:])
            idx = v.dim() - d
            m = torch.maximum(v.select(idx, 0), v.select(idx, 1))
            for j in range(2, k):
                torch.maximum(m, v.select(idx, j), out=m)
            out = m
        return out

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """All steps of ``x_seq [T, B, ...]``; returns the output spikes ``[T, B, ...]``."""
        steps, batch = x_seq.shape[0], x_seq.shape[1]
        counts = torch.cumsum(x_seq, 0)
        if self.counts is not None:
            counts = counts + self.counts
        flat = counts.flatten(0, 1)
        fast = self.window > 1 and self._tiles_exactly(flat.shape) and not (torch.is_grad_enabled() and flat.requires_grad)
        pooled = self._tiled_max(flat) if fast else self.pool(flat)
        pooled = pooled.view(steps, batch, *pooled.shape[1:])
        if torch.is_grad_enabled() and pooled.requires_grad:  # differentiably
            prev = torch.zeros_like(pooled[0]) if self.pooled is None else self.pooled
            out = torch.diff(pooled, dim=0, prepend=prev.unsqueeze(0))
        else:
            out = torch.empty_like(pooled)
            if self.pooled is None:
                out[0] = pooled[0]
            else:
                torch.sub(pooled[0], self.pooled, out=out[0])
            torch.sub(pooled[1:], pooled[:-1], out=out[1:])
        self.counts, self.pooled = counts[-1], pooled[-1]
        return out

    def extra_repr(self) -> str:
        return (f"dims={self.dims}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}")


def spiking_maxpool_step(layer: SpikingMaxPool, s: torch.Tensor, counts: torch.Tensor | None,
                         pooled: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the gate (pure function), for references and single-step simulators.

    Args:
        layer: gives the window.
        s: this step's input spikes ``[B, C, (H,) W]``.
        counts, pooled: the state after the previous step (None at the start).

    Returns:
        ``(out, counts, pooled)``: the output spikes and the new state.
    """
    counts = s if counts is None else counts + s
    new = layer.pool(counts)
    out = new if pooled is None else new - pooled
    return out, counts, new


def _pair(v: int | tuple) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def tiling_window(pool: nn.Module, shape: tuple[int, ...] | torch.Size) -> tuple[int, int] | None:
    """``(k_h, k_w)`` when ``pool`` is an ``nn.AvgPool2d`` whose windows tile maps of
    ``shape [..., H, W]`` exactly (stride = kernel, no padding, no divisor override, sides
    divisible); None otherwise."""
    if type(pool) is not nn.AvgPool2d or pool.divisor_override is not None or len(shape) < 2:
        return None
    kh, kw = _pair(pool.kernel_size)
    sh, sw = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    if (sh, sw) != (kh, kw) or _pair(pool.padding) != (0, 0) or shape[-2] % kh or shape[-1] % kw:
        return None
    return kh, kw


def fast_avg_pool2d(pool: nn.Module, x: torch.Tensor, integers: bool = False) -> torch.Tensor | None:
    """``pool(x)`` for an ``nn.AvgPool2d`` whose windows tile the input exactly (stride = kernel,
    no padding, sides divisible), as a sum of ``k_h * k_w`` strided slices in the window's
    row-major order divided by the window size: the arithmetic of ``F.avg_pool2d``, several
    times faster on the CPU. None when the pool is not of that kind.

    With ``integers`` (the caller knows ``x`` holds small integers, such as spikes, whose window
    sums float32 holds exactly), a contiguous float32/float64 ``x`` is pooled by one matrix
    product (:func:`_window_pool`, where the product runs in full precision); other inputs sum the rows of each window first and then the
    rows' sums. Both give the same values as ``F.avg_pool2d``: every product and partial sum is
    exact, so the order of the additions does not matter.
    """
    window = tiling_window(pool, x.shape) if x.dim() == 4 else None
    if window is None:
        return None
    kh, kw = window
    if integers and kh * kw > 1:
        if exact_product(x) and x.is_contiguous() and x.numel():
            return _window_pool(x, kh, kw)
        rows = _slice_sum([x[..., dx::kw] for dx in range(kw)])  # [.., H, W / kw]
        return _slice_sum([rows[:, :, dy::kh] for dy in range(kh)]).div_(kh * kw)
    return _slice_sum([x[:, :, dy::kh, dx::kw] for dy in range(kh) for dx in range(kw)]).div_(kh * kw)


def _window_pool(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Average pool of a contiguous ``x [N, C, H, W]`` of small integers over tiling
    ``kh x kw`` windows, into a new tensor (:func:`window_pool_into`)."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // kh, w // kw), dtype=x.dtype, device=x.device)
    return window_pool_into(x, kh, kw, out)


def window_pool_into(x: torch.Tensor, kh: int, kw: int, out: torch.Tensor) -> torch.Tensor:
    """``out[:] = avg_pool2d(x, (kh, kw))`` for contiguous ``x [N, C, H, W]`` of small integers
    and contiguous ``out [N, C, H / kh, W / kw]``, as ``x.view(-1, kh * W) @ M``: each row of
    the view holds the ``kh`` image rows of one band of windows, and ``M [kh * W, W / kw]`` has
    ``1 / (kh kw)`` (a power of two: exact) or 1 (then divided afterwards) where a pixel lies in
    a window and 0 elsewhere. On 2 cores, 864 x 6 x 28 x 28 spikes pool in 0.70 ms against
    1.83 ms for the slices and 3.70 ms for ``F.avg_pool2d`` (``benchmarks/test_bench_pool.py``).
    Returns ``out``."""
    w = x.shape[-1]
    size = kh * kw
    exact = size & (size - 1) == 0
    m = _window_matrix(w, kh, kw, 1.0 / size if exact else 1.0, x.dtype, x.device)
    torch.mm(x.view(-1, kh * w), m, out=out.view(-1, w // kw))
    return out if exact else out.div_(size)


def exact_product(x: torch.Tensor) -> bool:
    """Whether a matrix product of ``x`` runs in full precision: float64, or float32 with
    ``torch.get_float32_matmul_precision() == "highest"`` and, on CUDA, TF32 off (a reduced
    precision would round the inputs)."""
    if x.dtype == torch.float64:
        return True
    if x.dtype != torch.float32 or torch.get_float32_matmul_precision() != "highest":
        return False
    return x.device.type != "cuda" or not torch.backends.cuda.matmul.allow_tf32


_MATRICES: dict[tuple, torch.Tensor] = {}


def _window_matrix(w: int, kh: int, kw: int, value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (w, kh, kw, value, dtype, device)
    if key not in _MATRICES:
        cols = torch.arange(w, device=device) // kw  # the window of each pixel of a row
        band = (cols.unsqueeze(1) == torch.arange(w // kw, device=device)).to(dtype) * value
        _MATRICES[key] = band.repeat(kh, 1)  # [kh * w, w / kw]: the same for every row of a band
    return _MATRICES[key]


def _slice_sum(parts: list[torch.Tensor]) -> torch.Tensor:
    """``parts[0] + parts[1] + ...`` in that order, into a new tensor."""
    out = parts[0].clone() if len(parts) == 1 else torch.add(parts[0], parts[1])
    for part in parts[2:]:
        out.add_(part)
    return out
