"""``SpikingNetwork``: a converted (or hand-built) body run over ``T`` timesteps.

The body is a flat sequence of stages: synaptic stages (crossbar or float ``Linear`` /
``Conv2d``, ``AvgPool2d``, ``Flatten``) and :class:`~xbar.neurons.IFNeuron` layers. It runs in
multi-step form: a synaptic stage sees all ``T`` timesteps of its input at once (one matrix
product over ``[T*B, ...]``, exact because the stage is stateless), and each IF layer scans over
``T``. This equals running the whole network one timestep at a time (``tests/test_snn.py``).

Inside a network built by :func:`xbar.to_snn` from crossbar layers, a crossbar stage feeding an
IF layer outputs column currents (amperes) and that IF layer's threshold is a current,
``theta = lambda * scale * V_read`` with ``lambda`` the threshold in weight units
(``IFNeuron.weight_threshold``). The output layer is read in weight units; the logits are its
output averaged over ``T``.

Fast paths (each equal to the plain multi-step computation up to float summation order, and
proven so by ``tests/test_fast.py`` and ``tests/test_event_training.py``):

* **IF scan** (:mod:`xbar.scan`): a tight in-place loop over ``T`` (4 tensor ops per step), and
  under autograd one ``torch.autograd.Function`` over the whole scan (spikingjelly's sigmoid
  surrogate) that saves only the pre-reset potentials, ``[T, B, ...]``: backward memory linear
  in ``T``. Used when the
  IF module has no hooks of its own and a Heaviside forward; otherwise the module is called.
  :meth:`SpikingNetwork.compile_scan` optionally runs the inference scan through
  ``torch.compile`` (silent fallback to the eager loop, identical results).
* **Event-driven first layer** (``forward(images)`` with a :class:`~xbar.PoissonEncoder`;
  inference, and training on the CPU): the encoder draws spikes only for pixels that can spike
  and a first ``Linear`` (float or ideal-readout crossbar, after an optional ``Flatten``) sums
  the weight rows of the spiking inputs (``embedding_bag``): work proportional to spikes, as on
  a crossbar, instead of a dense product. Under autograd it is one node whose backward is the
  weight gradient ``G^T X`` over the input columns where a pixel of the batch can spike; the
  dense input is rebuilt there, not kept from the forward pass.
* **Mean of spikes** for the output: when only the time average is needed and the stages after
  the last IF layer are affine (Linear, Conv2d, crossbar read, AvgPool2d, Flatten), they run
  once on the time-mean of the spikes instead of ``T`` times.

Energy meters attach to the body as observers (:func:`xbar.energy.attach_observer`): whenever a
fast path skips or changes a module call, the body tells the meter what the step-by-step run
would have shown it (:class:`xbar.energy.InputStats`), so the counts are identical.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import PoissonEncoder, SpikeEvents, _check_timesteps
from .energy import _OBSERVERS, InputStats
from .layers import CROSSBAR_TYPES, CrossbarLinear, _CrossbarMixin
from .neurons import IFNeuron
from .scan import _IFScanFunction, _heaviside_forward, _scan, _scan_compiled, _sigmoid_surrogate
from .validation import check_finite, check_network_input, value_checks_enabled

_PASSIVE = (nn.Flatten, nn.Identity)
_EVENT_CHUNK = 1 << 20  # entries per embedding_bag call of the event-driven first layer
_TIME_CHUNK = 1 << 24  # inference: input elements (steps x batch x pixels) per chunk of steps


class CurrentReadout(nn.Module):
    """Reads a crossbar layer as column currents (amperes) instead of weight units.

    Args:
        layer: a :class:`~xbar.CrossbarLinear` or :class:`~xbar.CrossbarConv2d`.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, CROSSBAR_TYPES):
            raise TypeError(f"layer: expected a crossbar layer, got {type(layer).__name__}")
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Column currents, amperes."""
        return self.layer.currents(x)

    def current_scale(self) -> torch.Tensor:
        """Amperes per weight unit of the wrapped layer."""
        return self.layer.current_scale()


# -- observers (energy meters) and hooks ------------------------------------------------

def _global_hooks() -> bool:
    mod = nn.modules.module
    return any(getattr(mod, name, None) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks"))


def _hook_free(module: nn.Module, observers: list[Any]) -> bool:
    """True when ``module`` and its children carry no hooks but the observers' own."""
    if _global_hooks():
        return False
    for m in module.modules():
        ours: set[int] = set()
        for obs in observers:
            ours |= obs.observer_hook_ids(m)
        if (set(m._forward_hooks) | set(m._forward_pre_hooks)) - ours:
            return False
        if m._backward_hooks or getattr(m, "_backward_pre_hooks", None):
            return False
    return True


def _metered(stage: nn.Module) -> nn.Module | None:
    """The Linear/Conv2d module a meter hooks for this stage, if any."""
    if isinstance(stage, CurrentReadout):
        return stage.layer
    return stage if isinstance(stage, (nn.Linear, nn.Conv2d)) else None


def _ideal_readout(stage: nn.Module) -> bool:
    """The stage computes exactly ``x @ W.T + b`` (times the current scale): affine in ``x``."""
    if type(stage) in (nn.Linear, nn.Conv2d, nn.AvgPool2d) or isinstance(stage, _PASSIVE):
        return True
    if type(stage) is CurrentReadout and type(stage.layer).currents is _CrossbarMixin.currents:
        stage = stage.layer
    if not isinstance(stage, CROSSBAR_TYPES) or type(stage).forward is not _CrossbarMixin.forward:
        return False
    return stage.affine_readout


# -- the IF scan ----------------------------------------------------------------------------

def _fused_if(stage: IFNeuron, h: torch.Tensor, compiled: bool) -> torch.Tensor | None:
    """Run IF layer ``stage`` on ``h [T, B, ...]`` by the fast scan; None if not applicable."""
    if not _heaviside_forward(stage.surrogate):
        return None
    th = stage._threshold_for(h[0])
    subtract = stage.reset_mode == "subtract"
    divide = stage.surrogate is not None
    needs_grad = torch.is_grad_enabled() and (h.requires_grad or th.requires_grad)
    if needs_grad:
        alpha = _sigmoid_surrogate(stage.surrogate)
        if alpha is None or th.requires_grad or stage.v is not None:
            return None
        spikes, v = _IFScanFunction.apply(h, th.detach(), alpha, subtract)
        stage.v = v
        return spikes
    with torch.no_grad():
        v0 = torch.zeros_like(h[0]) if stage.v is None else stage.v.detach().clone()
        res = _scan_compiled(h, th, v0, subtract) if compiled and not divide else None
        spikes, v = res if res is not None else _scan(h, th, v0, subtract, divide)[:2]
    stage.v = v
    return spikes.to(h.dtype)


def _spike_total(spikes: torch.Tensor) -> torch.Tensor:
    """Number of spikes in binary ``spikes``, exact (float32 sums below ``2**24`` are exact)."""
    with torch.no_grad():
        if spikes.numel() < 2 ** 24:
            return spikes.sum().to(torch.float64)
        return spikes.to(torch.float64).sum()


# -- the event-driven first layer -------------------------------------------------------------

def _event_stage(stages: list[nn.Module], events: SpikeEvents, observers: list[Any]) -> int | None:
    """Index of a first Linear stage the events can feed directly, or None."""
    j = 0
    while j < len(stages) and isinstance(stages[j], _PASSIVE):
        f = stages[j]
        if isinstance(f, nn.Flatten) and (f.start_dim != 1 or f.end_dim != -1):
            return None
        j += 1
    if j == len(stages) or (j == 0 and len(events.shape) != 3):
        return None
    stage = stages[j]
    lin = stage.layer if type(stage) is CurrentReadout else stage
    if type(lin) not in (nn.Linear, CrossbarLinear) or lin.in_features != events.pixels:
        return None
    if type(lin) is CrossbarLinear and (type(lin)._matmul is not CrossbarLinear._matmul
                                        or not _ideal_readout(stage)):
        return None
    if not all(_hook_free(s, observers) for s in stages[: j + 1]):
        return None
    if torch.is_grad_enabled() and events.device.type != "cpu":
        return None  # training on an accelerator: the dense product is cheap there
    return j


def _event_linear(stage: nn.Module, events: SpikeEvents) -> tuple[torch.Tensor, torch.Tensor]:
    """``stage`` applied to every step of ``events``: for every sample and step, the sum of the
    weight rows of the pixels that spike (``embedding_bag`` over the pixels that can spike,
    weighted by their 0/1 spikes): work proportional to the non-zero pixels, not to all.

    Under autograd (training) the sums run in :class:`_EventLinearFunction`, whose backward is
    the product autograd computes for ``F.linear`` on the dense input, restricted to the input
    columns that can spike: the dense path's gradients, up to summation order.

    Returns:
        ``([T, B, out_features], counts)``: what ``stage(events.dense().flatten(2))`` gives (up
        to float rounding: the sums run in another order), and every compact pixel's spike
        count over the steps ``[P]`` (float, exact).
    """
    lin = stage.layer if isinstance(stage, CurrentReadout) else stage
    w = lin._read_weight() if isinstance(lin, CrossbarLinear) else lin.weight
    bias = lin.bias
    if isinstance(stage, CurrentReadout):  # amperes: scale the rows once instead of every sum
        scale = lin.current_scale()
        w = w * scale
        bias = bias * scale if bias is not None else None
    if torch.is_grad_enabled() and (w.requires_grad or (bias is not None and bias.requires_grad)):
        y, counts = _EventLinearFunction.apply(w, bias, events)
    else:
        y, counts = _event_sums(w, bias, events)
    return y.view(events.shape[0], events.shape[1], -1), counts


def _event_sums(w: torch.Tensor, bias: torch.Tensor | None,
                events: SpikeEvents) -> tuple[torch.Tensor, torch.Tensor]:
    """``[T * B, out]`` sums of the rows of ``w.t()`` over every step's spiking pixels (plus
    ``bias``), and the compact pixels' spike counts ``[P]``.

    One ``embedding_bag`` over the compact pixels (weights: their 0/1 spikes) per chunk of
    about ``_EVENT_CHUNK`` entries, written into the output in place: the index and weight
    tensors stay small (building them for all steps of a long run costs more than the sums).
    """
    t_steps, batch = events.shape[0], events.shape[1]
    spikes, dev = events.spikes, events.device
    p = events.column.numel()
    table = w.detach().t().contiguous()
    chunk = max(1, min(t_steps, _EVENT_CHUNK // max(p, 1)))
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
        weights = spikes[t0:t0 + k].reshape(-1).to(table.dtype)
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


class _EventLinearFunction(torch.autograd.Function):
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
        y, counts = _event_sums(w, bias, events)
        ctx.events, ctx.has_bias = events, bias is not None
        ctx.mark_non_differentiable(counts)
        return y, counts

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor, _counts: Any):
        events = ctx.events
        grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_w = _active_columns_grad(g, events)
        if ctx.has_bias and ctx.needs_input_grad[1]:
            grad_b = g.sum(0)
        return grad_w, grad_b, None


def _active_columns_grad(g: torch.Tensor, events: SpikeEvents) -> torch.Tensor:
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
        x.index_copy_(1, events.sample * n + where[events.column], events.spikes.to(g.dtype))
    grad = torch.zeros(g.shape[1], pixels, dtype=g.dtype, device=dev)
    return grad.index_copy_(1, cols, g.t().mm(x.view(steps * batch, n)))


# -- the body -------------------------------------------------------------------------------

class _Body(nn.Module):
    """The stages, run in multi-step form (the meter counts samples at this module's input)."""

    def __init__(self, stages: Iterable[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.compiled = False

    def _tail(self, stages: list[nn.Module], observers: list[Any]) -> int | None:
        """Start of the affine stages after the last IF layer, if they may run on the mean."""
        start = max((i + 1 for i, s in enumerate(stages) if isinstance(s, IFNeuron)), default=0)
        tail = stages[start:]
        if not tail or not all(_ideal_readout(s) and _hook_free(s, observers) for s in tail):
            return None
        if observers:
            synaptic = [i for i, s in enumerate(tail) if _metered(s) is not None]
            first = next((i for i, s in enumerate(tail) if not isinstance(s, _PASSIVE)), None)
            if synaptic != [first]:
                return None
        return start

    def forward(self, x_seq: torch.Tensor | SpikeEvents, upto: int | None = None,
                binary: bool | None = None, mean: bool = False) -> torch.Tensor:
        """Run ``x_seq`` ``[T, B, ...]`` through the first ``upto`` stages (all by default).

        Without autograd the steps run in chunks of about ``_TIME_CHUNK / (B * pixels)``
        (IF potentials carry over), so intermediate tensors stay small for long ``T``.

        Args:
            x_seq: row drive ``[T, B, ...]``, or Poisson :class:`~xbar.encoding.SpikeEvents`.
            upto: run only the first ``upto`` stages.
            binary: the input is known to hold only zeros and ones (metering skips the check).
            mean: return the time average ``[B, ...]`` instead of every step.

        Returns:
            The last stage's output at every step ``[T, B, ...]``, or its mean over ``T``.
        """
        stages = list(self.stages)[:upto]
        observers = list(_OBSERVERS.get(self, ()))
        steps, batch = x_seq.shape[0], x_seq.shape[1]
        tail = self._tail(stages, observers) if mean else None
        per_step = batch
        for s in x_seq.shape[2:]:
            per_step *= int(s)
        chunk = steps if torch.is_grad_enabled() else max(1, min(steps, _TIME_CHUNK // max(per_step, 1)))
        counts: torch.Tensor | None = None
        outs: list[torch.Tensor] = []
        for t0 in range(0, steps, chunk):
            part = x_seq[t0:t0 + chunk] if isinstance(x_seq, torch.Tensor) else x_seq.steps(t0, t0 + chunk)
            h, known = self._run(stages, part, binary, observers, tail)
            if tail is not None and (known or not observers):  # the tail runs once, on the mean
                counts = h.sum(0) if counts is None else counts + h.sum(0)
                continue
            if tail is not None:
                h = self._run(stages[tail:], h, known, observers, None)[0]
            outs.append(h.sum(0) if mean else h)
        if counts is not None:
            return self._run_tail(stages[tail:], counts, steps, observers)
        if mean:
            return (outs[0] if len(outs) == 1 else torch.stack(outs).sum(0)) / steps
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run(self, stages: list[nn.Module], x: torch.Tensor | SpikeEvents, binary: bool | None,
             observers: list[Any], stop: int | None) -> tuple[torch.Tensor, bool]:
        """Stages ``[:stop]`` on ``x [t, B, ...]``; returns the output and whether it is known
        to be binary (spikes)."""
        t, b = x.shape[0], x.shape[1]
        first = 0
        if isinstance(x, SpikeEvents):
            j = _event_stage(stages[:stop], x, observers)
            if j is None:
                h, known = x.dense(), True
            else:
                h, per_pixel = _event_linear(stages[j], x)
                known, first = False, j + 1
                stats = InputStats(t * b, True, x.counts(per_pixel)) if observers else None
                for obs in observers:
                    obs.record_synaptic(_metered(stages[j]), stats)
        else:
            h, known = x, bool(binary)
        for stage in stages[first:stop]:
            if isinstance(stage, IFNeuron):
                spikes = _fused_if(stage, h, self.compiled) if _hook_free(stage, observers) else None
                if spikes is None:
                    h = stage(h) if stage.step_mode == "m" else torch.stack([stage(h[k]) for k in range(t)])
                    known = False
                else:
                    h, known = spikes, True
                    total = _spike_total(h) if observers else None
                    for obs in observers:
                        obs.record_neuron(stage, h.numel(), total)
                continue
            metered = _metered(stage) if observers and known else None
            for obs in observers if metered is not None else ():
                obs.expect_input(metered, InputStats(t * b, True))
            try:
                y = stage(h.reshape(t * b, *h.shape[2:]))
            finally:
                for obs in observers if metered is not None else ():
                    obs.expect_input(metered, None)
            h = y.reshape(t, b, *y.shape[1:])
            known = known and isinstance(stage, _PASSIVE)
        return h, known

    def _run_tail(self, tail: list[nn.Module], counts: torch.Tensor, steps: int,
                  observers: list[Any]) -> torch.Tensor:
        """Affine ``tail`` once on the time-mean ``counts / steps`` of binary input whose sum over
        the steps is ``counts [B, ...]``; returns ``[B, ...]``."""
        y = counts / steps
        for stage in tail:
            metered = _metered(stage) if observers else None
            if metered is not None:
                nz = counts.sum(0, dtype=torch.float64)
                for obs in observers:
                    obs.expect_input(metered, InputStats(steps * counts.shape[0], True, nz))
            try:
                y = stage(y)
            finally:
                for obs in observers if metered is not None else ():
                    obs.expect_input(metered, None)
        return y


class SpikingNetwork(nn.Module):
    """A spiking network: encoder, then the body over ``timesteps`` steps, logits averaged.

    Args:
        stages: the body's stages in order (synaptic modules and :class:`IFNeuron` layers).
        timesteps: number of simulation steps ``T`` (>= 1).
        encoder: turns images ``[B, ...]`` into ``[T, B, ...]`` row drive
            (default ``PoissonEncoder(max_rate=1.0)``).

    Shape:
        ``forward(images)``: ``[B, ...]`` -> logits ``[B, classes]``;
        ``run(spike_seq)``: ``[T, B, ...]`` -> logits ``[B, classes]``.
    """

    def __init__(self, stages: Iterable[nn.Module], timesteps: int = 32, encoder: Any = None) -> None:
        super().__init__()
        self.body = _Body(stages)
        self.timesteps = _check_timesteps(timesteps)
        self.encoder = encoder if encoder is not None else PoissonEncoder(1.0)

    @property
    def stages(self) -> nn.ModuleList:
        """The body's stages, in order."""
        return self.body.stages

    def neurons(self) -> list[IFNeuron]:
        """The IF layers, in order."""
        return [m for m in self.stages if isinstance(m, IFNeuron)]

    def reset(self) -> None:
        """Reset every neuron's membrane potential."""
        for n in self.neurons():
            n.reset()

    def compile_scan(self, enabled: bool = True) -> "SpikingNetwork":
        """Run the inference IF scan through ``torch.compile`` (one fused kernel per layer).

        Optional: when compiling is unavailable or fails, the eager scan runs instead, with
        identical results. Returns self.
        """
        self.body.compiled = bool(enabled)
        return self

    @torch.no_grad()
    def sync_thresholds(self) -> None:
        """Set current thresholds from weight-unit ones: ``theta = lambda * scale * V_read``.

        Runs before every simulation, so thresholds follow a crossbar that was re-programmed
        (its ``scale`` changes when ``max|W|`` does).
        """
        prev: nn.Module | None = None
        for stage in self.stages:
            if isinstance(stage, IFNeuron) and isinstance(prev, CurrentReadout) \
                    and getattr(stage, "weight_threshold", None) is not None:
                th = stage.weight_threshold * prev.current_scale()
                stage.threshold.copy_(th.to(stage.threshold.dtype))
            if not isinstance(stage, (nn.Flatten, nn.Identity, nn.Dropout)):
                prev = stage

    def _simulate(self, x: torch.Tensor | SpikeEvents, binary: bool | None, mean: bool) -> torch.Tensor:
        self.reset()
        self.sync_thresholds()
        try:
            return self.body(x, binary=binary, mean=mean)
        finally:
            self.reset()

    def run(self, spike_seq: torch.Tensor, return_sequence: bool = False,
            binary: bool | None = None) -> torch.Tensor:
        """Run on encoded input.

        Args:
            spike_seq: row drive ``[T, B, ...]`` (spikes from an encoder, or analog values).
            return_sequence: return the output layer's value at every step ``[T, B, C]``
                instead of its average over ``T``.
            binary: promise that ``spike_seq`` holds only zeros and ones (an energy meter then
                skips its check); None: unknown.

        Returns:
            Logits ``[B, C]`` (the output layer averaged over ``T``), weight units.
        """
        check_network_input(self.stages, spike_seq, "spike_seq", leading=2)
        if value_checks_enabled():
            check_finite(spike_seq, "spike_seq")
        return self._simulate(spike_seq, binary, mean=not return_sequence)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode ``images`` over ``timesteps`` steps and run; returns logits ``[B, C]``."""
        check_network_input(self.stages, images, "images")
        enc = self.encoder
        if type(enc) is PoissonEncoder and isinstance(images, torch.Tensor) and images.dim() >= 2 \
                and images.device.type == "cpu" and images.dtype == torch.float32:
            return self._simulate(enc.events(images, self.timesteps), True, mean=True)
        return self.run(enc(images, self.timesteps), binary=getattr(enc, "binary", None) is True)

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, encoder={self.encoder!r}"
