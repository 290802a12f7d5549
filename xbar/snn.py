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
proven so by ``tests/test_fast.py``):

* **IF scan**: a tight in-place loop over ``T`` (4 tensor ops per step), and under autograd one
  ``torch.autograd.Function`` over the whole scan (spikingjelly's sigmoid surrogate) that saves
  only the pre-reset potentials, ``[T, B, ...]``: backward memory linear in ``T``. Used when the
  IF module has no hooks of its own and a Heaviside forward; otherwise the module is called.
  :meth:`SpikingNetwork.compile_scan` optionally runs the inference scan through
  ``torch.compile`` (silent fallback to the eager loop, identical results).
* **Event-driven first layer** (CPU, inference, ``forward(images)`` with a
  :class:`~xbar.PoissonEncoder`): the encoder draws spikes only for pixels that can spike and a
  first ``Linear`` (float or ideal-readout crossbar, after an optional ``Flatten``) sums the
  weight rows of the spiking inputs (``embedding_bag``): work proportional to spikes, as on a
  crossbar, instead of a dense product.
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
from .validation import check_finite, check_network_input, value_checks_enabled

_PASSIVE = (nn.Flatten, nn.Identity)
_EVENT_CHUNK = 1 << 23  # entries per embedding_bag call of the event-driven first layer
_TIME_CHUNK = 1 << 24  # inference: input elements (steps x batch x pixels) per chunk of steps
_SCAN_CHUNK = 32704  # CPU: neurons per chunk of the IF scan (below ATen's parallel grain, 32768)


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

def _scan(x: torch.Tensor, th: torch.Tensor, v: torch.Tensor, subtract: bool, divide: bool,
          keep_pre: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """In-place IF scan over ``x [T, B, ...]`` from potential ``v`` (overwritten).

    Bitwise equal to :func:`xbar.neurons.if_step` applied ``T`` times with a Heaviside spike,
    for finite inputs: fire when ``v + x >= th`` (the sign of ``v + x - th``; with ``divide``,
    as under a surrogate, fire on ``(v + x - th) / th >= 0`` literally), then
    ``v -= s * th`` (one ``addcmul``) or ``v -= v * s`` (reset to zero). Three tensor ops per
    step without ``divide``. On the CPU the neurons are scanned in chunks of ``_SCAN_CHUNK``
    elements, small enough that ATen runs every op on the calling thread: per-op thread
    fork/join costs more than these small ops, and stalls badly when another process holds a
    core.

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
    for c0 in range(0, size, step):
        c1 = min(size, c0 + step)
        vc, tc = vf[c0:c1], (thf if thf.dim() == 0 else thf[c0:c1])
        u = torch.empty_like(vc) if divide else None
        xs, ss = xf[:, c0:c1].unbind(0), sf[:, c0:c1].unbind(0)
        ps = pf[:, c0:c1].unbind(0) if pf is not None else None
        for t in range(steps):
            s = ss[t]
            cur = torch.add(vc, xs[t], out=ps[t]) if ps is not None else vc.add_(xs[t])
            if divide:
                torch.ge(torch.sub(cur, tc, out=u).div_(tc), 0, out=s)
            else:
                torch.ge(cur, tc, out=s)
            if subtract:
                torch.addcmul(cur, s, tc, value=-1.0, out=vc)
            else:
                torch.addcmul(cur, cur, s, value=-1.0, out=vc)
    return spikes, v, pre


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
        from spikingjelly.activation_based.surrogate import sigmoid_backward

        pre, th = ctx.saved_tensors
        grad_x = torch.empty_like(pre)
        gv = g_v
        for t in range(pre.shape[0] - 1, -1, -1):
            z = (pre[t] - th) / th
            gs = g_spikes[t] if g_spikes is not None else torch.zeros_like(z)
            if gv is not None:
                gs = gs + (-gv * th if ctx.subtract else -(gv * pre[t]))
            gu = sigmoid_backward(gs, z, ctx.alpha)[0] / th
            if gv is None:
                gv = gu
            elif ctx.subtract:
                gv = gv + gu
            else:
                gv = gv * (1.0 - (z >= 0).to(z.dtype)) + gu
            grad_x[t] = gv
        return grad_x, None, None, None


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
    if torch.is_grad_enabled() and any(q.requires_grad for q in stage.parameters()):
        return None  # training: a dense product (and its backward) beats embedding_bag's backward
    return j


def _event_linear(stage: nn.Module, events: SpikeEvents) -> tuple[torch.Tensor, torch.Tensor]:
    """``stage`` applied to every step of ``events``: for every sample and step, the sum of the
    weight rows of the pixels that spike (``embedding_bag`` over the pixels that can spike,
    weighted by their 0/1 spikes): work proportional to the non-zero pixels, not to all.

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
    t_steps, batch = events.shape[0], events.shape[1]
    spikes, dev = events.spikes, events.device
    p = events.column.numel()
    table = w.t().contiguous()
    chunk = max(1, min(t_steps, _EVENT_CHUNK // max(p, 1)))
    key = ("embedding_bag", chunk)
    if key not in events.cache:  # shared by every step slice of one draw
        starts = torch.searchsorted(events.sample, torch.arange(batch, device=dev))
        events.cache[key] = (events.column.repeat(chunk),
                             (torch.arange(chunk, device=dev).unsqueeze(1) * p + starts).reshape(-1))
    inputs, offsets = events.cache[key]
    outs = []
    counts = torch.zeros(p, dtype=table.dtype, device=dev)
    for t0 in range(0, t_steps, chunk):
        k = min(chunk, t_steps - t0)
        weights = spikes[t0:t0 + k].reshape(-1).to(table.dtype)
        counts += weights.view(k, p).sum(0)
        outs.append(F.embedding_bag(inputs[: k * p], table, offsets[: k * batch], mode="sum",
                                    per_sample_weights=weights))
    y = torch.cat(outs) if len(outs) > 1 else outs[0]
    if bias is not None:
        y = y + bias
    return y.view(t_steps, batch, -1), counts


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
