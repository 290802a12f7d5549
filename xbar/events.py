"""The event-driven first layer: Poisson events summed straight into a ``Linear``.

For every sample and step, the output of a first ``Linear`` on binary input is the sum of the
weight rows of the inputs that spike: ``embedding_bag`` over the pixels that can spike
(:class:`~xbar.encoding.SpikeEvents`), work proportional to the non-zero pixels, as on a
crossbar, instead of a dense product. Under autograd the sums are one node
(:class:`EventLinearFunction`) whose backward is the weight gradient ``G^T X`` over the input
columns where a pixel of the batch can spike; the dense input is rebuilt there, not kept from
the forward pass. ``tests/test_event_training.py`` and ``tests/test_fast.py`` prove both equal
to the dense computation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import SpikeEvents, spikes_as
from .layers import CrossbarLinear

__all__ = ["EventLinearFunction", "active_columns_grad", "event_linear", "event_sums"]

EVENT_CHUNK = 1 << 20  # entries per embedding_bag call


def event_linear(lin: nn.Module, events: SpikeEvents, currents: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``lin`` (a ``Linear`` or ideal-readout ``CrossbarLinear``; its column currents when
    ``currents``) applied to every step of ``events``: for every sample and step, the sum of the
    weight rows of the pixels that spike (``embedding_bag`` over the pixels that can spike,
    weighted by their 0/1 spikes): work proportional to the non-zero pixels, not to all.

    Under autograd (training) the sums run in :class:`EventLinearFunction`, whose backward is
    the product autograd computes for ``F.linear`` on the dense input, restricted to the input
    columns that can spike: the dense path's gradients, up to summation order.

    Returns:
        ``([T, B, out_features], counts)``: what ``lin(events.dense().flatten(2))`` gives (up
        to float rounding: the sums run in another order), and every compact pixel's spike
        count over the steps ``[P]`` (float, exact).
    """
    w = lin._read_weight() if isinstance(lin, CrossbarLinear) else lin.weight
    bias = lin.bias
    if currents:  # amperes: scale the rows once instead of every sum
        scale = lin.current_scale()
        w = w * scale
        bias = bias * scale if bias is not None else None
    if torch.is_grad_enabled() and (w.requires_grad or (bias is not None and bias.requires_grad)):
        y, counts = EventLinearFunction.apply(w, bias, events)
    else:
        y, counts = event_sums(w, bias, events)
    return y.view(events.shape[0], events.shape[1], -1), counts


def event_sums(w: torch.Tensor, bias: torch.Tensor | None,
                events: SpikeEvents) -> tuple[torch.Tensor, torch.Tensor]:
    """``[T * B, out]`` sums of the rows of ``w.t()`` over every step's spiking pixels (plus
    ``bias``), and the compact pixels' spike counts ``[P]``.

    One ``embedding_bag`` over the compact pixels (weights: their 0/1 spikes) per chunk of
    about ``EVENT_CHUNK`` entries, written into the output in place: the index and weight
    tensors stay small (building them for all steps of a long run costs more than the sums).
    """
    t_steps, batch = events.shape[0], events.shape[1]
    spikes, dev = events.spikes, events.device
    p = events.column.numel()
    table = w.detach().t().contiguous()
    chunk = max(1, min(t_steps, EVENT_CHUNK // max(p, 1)))
    key = ("embedding_bag", chunk)
    if key not in events.cache:  # shared by every step slice of one draw
        starts = torch.searchsorted(events.sample, torch.arange(batch, device=dev))
        events.cache[key] = (events.column.expand(chunk, p).reshape(-1),  # (repeat is slower)
                             (torch.arange(chunk, device=dev).unsqueeze(1) * p + starts).reshape(-1))
    inputs, offsets = events.cache[key]
    y = None if chunk >= t_steps else torch.empty(t_steps * batch, table.shape[1], dtype=table.dtype,
                                                  device=dev)
    counts = torch.zeros(p, dtype=table.dtype, device=dev)
    for t0 in range(0, t_steps, chunk):
        k = min(chunk, t_steps - t0)
        weights = spikes_as(spikes[t0:t0 + k].reshape(-1), table.dtype)
        counts += weights.view(k, p).sum(0)  # (a bool sum with a float dtype is far slower)
        part = F.embedding_bag(inputs[: k * p], table, offsets[: k * batch], mode="sum",
                               per_sample_weights=weights)
        if y is None:
            y = part
        else:
            y[t0 * batch:(t0 + k) * batch] = part
    if bias is not None:
        y.add_(bias.detach())
    return y, counts


class EventLinearFunction(torch.autograd.Function):
    """The event-driven sums as one autograd node over the weight and bias.

    Forward saves nothing but the (compact) events. Backward returns ``G^T X`` and ``G.sum(0)``,
    the products autograd runs for ``F.linear(X, w, bias)`` on the dense 0/1 input
    ``X [T * B, in]``, with ``X`` rebuilt from the events on only the input columns where some
    pixel of the batch can spike (the others have zero gradient): a third fewer columns on
    MNIST, whose borders are blank.
    """

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, bias: torch.Tensor | None,
                events: SpikeEvents) -> tuple[torch.Tensor, torch.Tensor]:
        y, counts = event_sums(w, bias, events)
        ctx.events, ctx.has_bias = events, bias is not None
        ctx.mark_non_differentiable(counts)
        return y, counts

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor, _counts: Any):
        events = ctx.events
        grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_w = active_columns_grad(g, events)
        if ctx.has_bias and ctx.needs_input_grad[1]:
            grad_b = g.sum(0)
        return grad_w, grad_b, None


def active_columns_grad(g: torch.Tensor, events: SpikeEvents) -> torch.Tensor:
    """``g.t() @ X`` for ``g [T * B, out]`` and the events' dense input ``X [T * B, in]``, as a
    product over the columns that hold a pixel which can spike (zero elsewhere)."""
    steps, batch, pixels = events.shape[0], events.shape[1], events.pixels
    dev = events.device
    active = torch.zeros(pixels, dtype=torch.bool, device=dev)
    active[events.column] = True
    cols = torch.nonzero(active).squeeze(1)
    n = cols.numel()
    where = torch.empty(pixels, dtype=torch.int64, device=dev)
    where[cols] = torch.arange(n, device=dev)
    x = torch.zeros(steps, batch * n, dtype=g.dtype, device=dev)
    if n:
        x.index_copy_(1, events.sample * n + where[events.column], spikes_as(events.spikes, g.dtype))
    grad = torch.zeros(g.shape[1], pixels, dtype=g.dtype, device=dev)
    return grad.index_copy_(1, cols, g.t().mm(x.view(steps * batch, n)))
