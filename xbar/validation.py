"""Argument checks whose errors name the argument, and what xbar promises about determinism.

Every public entry point refuses bad input with a ``TypeError`` (wrong kind of value) or a
``ValueError`` (right kind, wrong value) whose message starts with the argument or field it
blames, e.g. ``x: expected [..., 784] (in_features=784) for CrossbarLinear(784 -> 100), got
shape (32, 783)``. Device profiles raise :class:`~xbar.DeviceProfileError` (a ``ValueError``)
naming the file and field; checkpoints raise :class:`~xbar.CheckpointError`.

The helpers below are cheap: shape, dtype and device checks read metadata only. The value
checks (NaN / infinity) scan a tensor; crossbar layers scan their *output* (``out_features``
values per row, against ``in_features * out_features`` multiply-adds), and only when it is not
finite do they look at the input to say which one is to blame. On a GPU each value check is a
host-device synchronisation; :func:`set_value_checks` turns them off for tight loops (shape and
dtype checks stay on).

Determinism
-----------
Randomness goes through explicit ``torch.Generator`` objects (the Poisson encoder's
``generator``; ``PoissonEncoder(rate, torch.Generator().manual_seed(s))``). On the CPU:

* **Same seed, same bits.** Two runs of the same network on the same batch with encoders
  seeded alike give bit-identical logits, spike counts and :class:`~xbar.EnergyReport`
  (``tests/test_reliability.py``). Programming errors (device spread, programming noise,
  stuck-at faults) draw from the ``generator`` given to ``program`` (the global torch
  generator if None, as in :func:`xbar.to_crossbar`): seed it and the conductances repeat. A
  saved and reloaded network (:func:`xbar.save`) keeps the conductances it drew.
* **Batch size, deterministic encoders.** With ``ConstantEncoder``, or with spikes encoded
  once and passed to :meth:`~xbar.SpikingNetwork.run`, each sample's logits do not depend on
  the batch it is in, up to float rounding: the matrix products block their sums
  differently for different batch sizes, so logits differ by an ulp or two (observed on the
  CPU: up to 1.2e-7 absolute for 4 + 4 against 8 samples; ``torch.use_deterministic_algorithms``
  does not change this, it governs run-to-run repeats, not batch layout). The tests assert
  ``allclose(rtol=1e-6, atol=1e-7)`` for logits and ``rel=1e-6`` for joules, and exact
  equality for integer counts (spikes, ACs, input events). A membrane potential within
  rounding of its threshold could in principle flip a spike; the tests use inputs where none
  does.
* **Batch size, Poisson encoder.** *Not* invariant: the encoder draws the random numbers of
  the whole batch from one generator stream, in batch order, so a sample's spikes depend on
  its position in the batch and on the batch size. Accuracy and per-sample energy agree in distribution only. For
  batch-invariant Poisson input, encode each sample with its own seeded generator and call
  :meth:`~xbar.SpikingNetwork.run` on the stacked spikes.
* Across torch versions, CPU types or thread counts, bit-identity is not promised.

On a GPU (from torch's documentation; no GPU test runs in this suite): the Poisson draw from a
CUDA generator differs from the CPU stream (same seed, different bits), but it is repeatable
on the same GPU and torch version. cuBLAS / cuDNN may
pick non-deterministic kernels (atomics in convolution backward, split-K matmul); call
``torch.use_deterministic_algorithms(True)`` (and set ``CUBLAS_WORKSPACE_CONFIG=:4096:8``) for
run-to-run bit-identity, and ``torch.backends.cudnn.benchmark = False``. TF32 (on by default
for cuDNN convolutions) changes results against the CPU by about 1e-3 relative, enough to flip
spikes near threshold: compare GPU and CPU statistically (accuracy, mean energy), not bit for
bit.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any, Iterable, Iterator

import torch
from torch import nn

_VALUE_CHECKS = True
_THREAD = threading.local()  # value_checks_deferred(): this thread's scans are done by the caller


def set_value_checks(enabled: bool) -> bool:
    """Turn the NaN / infinity scans of inputs and outputs on or off (process-wide).

    Shape, dtype and device checks are always on; weights are always checked when programmed.

    Args:
        enabled: True (the default state) to scan, False to skip the scans.

    Returns:
        The previous setting, so that a caller can restore it.
    """
    global _VALUE_CHECKS
    previous, _VALUE_CHECKS = _VALUE_CHECKS, bool(enabled)
    return previous


def value_checks_enabled() -> bool:
    """Whether NaN / infinity scans run (off while ``torch.compile`` traces, and in a thread
    inside :func:`value_checks_deferred`)."""
    return _VALUE_CHECKS and not getattr(_THREAD, "deferred", False) and not torch.compiler.is_compiling()


@contextlib.contextmanager
def value_checks_deferred() -> Iterator[bool]:
    """Skip the NaN / infinity scans in this thread only, for a caller that checks the values
    itself afterwards (the executor's fused blocks). Yields whether the scans were on, i.e.
    whether the caller must check."""
    enabled, previous = value_checks_enabled(), getattr(_THREAD, "deferred", False)
    _THREAD.deferred = True
    try:
        yield enabled
    finally:
        _THREAD.deferred = previous


def shape_str(shape: Iterable[int]) -> str:
    """``(2, 3)``-style text of a shape."""
    return str(tuple(int(s) for s in shape))


def check_number(value: Any, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A real, finite number within ``[low, high]`` (ends open when asked), as a float.

    Args:
        value: the argument to check (``bool`` is refused).
        name: the argument's name, first word of the message.
        low, high: bounds, or None for unbounded.
        low_open, high_open: exclude the bound itself.

    Raises:
        TypeError: not a real number. ValueError: NaN, infinite or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    v = float(value)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    bounds = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if not math.isfinite(v) or (low is not None and (v < low or (low_open and v == low))) \
            or (high is not None and (v > high or (high_open and v == high))):
        raise ValueError(f"{name}: must be a finite number in {bounds}, got {value!r}")
    return v


def check_int(value: Any, name: str, low: int = 0) -> int:
    """An integer ``>= low`` (``bool`` refused).

    Raises:
        TypeError: not an integer. ValueError: below ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
    return value


def check_float_tensor(x: Any, name: str) -> torch.Tensor:
    """A floating-point ``torch.Tensor`` (integer and boolean tensors are refused).

    Raises:
        TypeError: naming ``name``, the received type or dtype.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype} "
                        f"(convert with {name}.float())")
    return x


def nonfinite_count(x: torch.Tensor) -> int:
    """Number of NaN or infinite entries of ``x``."""
    return int((~torch.isfinite(x)).sum()) if x.numel() else 0


def check_finite(x: torch.Tensor, name: str, where: str = "") -> None:
    """Raise a ValueError naming ``name`` (and ``where``) if ``x`` holds NaN or infinity.

    Runs even when :func:`set_value_checks` is off (use it for one-off checks: weights,
    calibration data); hot paths test :func:`value_checks_enabled` first.
    """
    bad = nonfinite_count(x)
    if bad:
        place = f" of {where}" if where else ""
        raise ValueError(f"{name}{place}: contains {bad} NaN or infinite value(s) "
                         f"(of {x.numel()}, shape {shape_str(x.shape)})")


def layer_label(layer: nn.Module) -> str:
    """Short description of a synaptic layer: ``CrossbarLinear(784 -> 100)``,
    ``Conv1d(2 -> 4, kernel (3,))``."""
    kind = type(layer).__name__
    if isinstance(layer, nn.Linear):
        return f"{kind}({layer.in_features} -> {layer.out_features})"
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        return f"{kind}({layer.in_channels} -> {layer.out_channels}, kernel {tuple(layer.kernel_size)})"
    return kind


def check_layer_input(layer: nn.Module, x: Any, name: str = "x") -> None:
    """Shape, dtype and device of a Linear / Conv1d / Conv2d (crossbar or float) layer's input.

    Args:
        layer: an ``nn.Linear``, ``nn.Conv1d`` or ``nn.Conv2d`` (crossbar layers included):
            Linear reads ``[..., in_features]``, Conv1d ``[B, C_in, L]`` or ``[C_in, L]``,
            Conv2d ``[B, C_in, H, W]`` or ``[C_in, H, W]``.
        x: the input about to be read.
        name: the argument name in messages.

    Raises:
        TypeError: not a floating-point tensor, or a dtype other than the layer's.
        ValueError: a shape the layer cannot read, or a different torch device.
    """
    check_float_tensor(x, name)
    w = layer.weight
    label = layer_label(layer)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        n, c = len(layer.kernel_size), layer.in_channels
        spatial = _SPATIAL[n]
        if x.dim() not in (n + 1, n + 2) or x.shape[-n - 1] != c:
            raise ValueError(f"{name}: expected [B, {c}, {spatial}] or [{c}, {spatial}] (in_channels={c}) "
                             f"for {label}, got shape {shape_str(x.shape)}")
        _check_conv_size(layer, x, name, label)
    elif isinstance(layer, nn.Linear):
        if x.dim() < 1 or x.shape[-1] != layer.in_features:
            raise ValueError(f"{name}: expected [..., {layer.in_features}] (in_features={layer.in_features}) "
                             f"for {label}, got shape {shape_str(x.shape)}")
    if x.dtype != w.dtype:
        raise TypeError(f"{name}: dtype {x.dtype} differs from the layer's {w.dtype} ({label}); "
                        f"convert the input ({name}.to({w.dtype})) or the layer")
    if x.device != w.device:
        raise ValueError(f"{name}: on {x.device}, but {label} is on {w.device}")


_SPATIAL = {1: "L", 2: "H, W"}  # the spatial dimensions of a Conv1d / Conv2d input, as messages name them


def _check_conv_size(conv: nn.Conv1d | nn.Conv2d, x: torch.Tensor, name: str, label: str) -> None:
    """The input's spatial size (``L``, or ``H, W``) covers the dilated kernel after padding."""
    n = len(conv.kernel_size)
    if isinstance(conv.padding, str):
        if conv.padding == "same":
            return
        pad: tuple[int, ...] = (0,) * n
    else:
        pad = tuple(conv.padding)
    hw = tuple(x.shape[-n:])
    axes = _SPATIAL[n].split(", ")
    for i in range(n):
        reach = conv.dilation[i] * (conv.kernel_size[i] - 1) + 1
        if hw[i] + 2 * pad[i] < reach:
            raise ValueError(f"{name}: spatial size {hw} is smaller than the kernel of {label} "
                             f"(needs at least {reach - 2 * pad[i]} along {axes[i]} with padding {pad})")


def check_layer_output(layer: nn.Module, x: torch.Tensor, out: torch.Tensor, name: str = "x") -> None:
    """After a read: if the output is not finite, say whether the input or an overflow is to blame.

    Scans ``out`` only (cheap next to the read itself); skipped when value checks are off.

    Raises:
        ValueError: ``x: contains ... NaN or infinite`` or ``output: overflowed ...``.
    """
    if not value_checks_enabled() or not out.numel() or bool(torch.isfinite(out.detach().sum())):
        return  # one reduction: any NaN or infinity makes the sum non-finite
    if bool(torch.isfinite(out.detach()).all()):
        return  # the sum itself overflowed; every value is finite
    raise_nonfinite_output(layer, x, name)


def raise_nonfinite_output(layer: nn.Module, x: torch.Tensor, name: str = "x") -> None:
    """Raise for a read of ``layer`` whose output is not finite: the input's NaN / infinity
    message when ``x`` holds any, else the overflow message.

    Raises:
        ValueError: always.
    """
    check_finite(x, name, layer_label(layer))
    peak = float(x.detach().abs().max()) if x.numel() else 0.0
    raise ValueError(f"output of {layer_label(layer)}: overflowed to NaN/infinity for finite input "
                     f"(max |{name}| = {peak:.4g}); scale the input down or use a wider dtype")


def check_parameters_finite(model: nn.Module, name: str = "model") -> None:
    """Every parameter and floating buffer of ``model`` is finite; the message names the first bad one.

    Raises:
        ValueError: ``model: parameter '0.weight' contains 3 NaN or infinite value(s) ...``.
    """
    if isinstance(model, nn.Module):
        items = list(model.named_parameters()) + [
            (n, b) for n, b in model.named_buffers() if b is not None and b.is_floating_point()]
        for pname, tensor in items:
            bad = nonfinite_count(tensor.detach())
            if bad:
                raise ValueError(f"{name}: parameter {pname!r} contains {bad} NaN or infinite value(s) "
                                 f"(of {tensor.numel()})")


def check_states_fit(states: torch.Tensor | None, dtype: torch.dtype, device_name: str) -> None:
    """The device's state table stays strictly ascending in the layer's dtype.

    Raises:
        ValueError: naming ``device`` when two states collapse to one value (the layer could
            not tell them apart), or a state is not finite / not positive in this dtype.
    """
    if states is None:
        return
    if not bool(torch.isfinite(states).all()) or not bool((states > 0).all()):
        raise ValueError(f"device: states of {device_name!r} are not finite positive {dtype} values")
    if states.numel() >= 2 and not bool((states[1:] > states[:-1]).all()):
        raise ValueError(f"device: {device_name!r} has {states.numel()} states that are not distinct in {dtype} "
                         "(states closer than its precision); use fewer levels, a wider on/off ratio, "
                         "or a float64 layer")


def check_scale(scale: torch.Tensor, weight: torch.Tensor, g_min: float, g_max: float,
                device_name: str, label: str) -> None:
    """``scale`` (siemens per weight unit) is a positive normal number in the weight's dtype.

    A scale that underflows (huge weights on tiny conductances) or overflows would make
    ``(G+ - G-) / scale`` meaningless: the device cannot represent this layer in this dtype.

    Raises:
        ValueError: naming ``device`` and the layer.
    """
    s = float(scale)
    tiny = torch.finfo(scale.dtype).tiny
    if not math.isfinite(s) or s < tiny:
        w_max = float(weight.detach().abs().max()) if weight.numel() else 0.0
        raise ValueError(
            f"device: {device_name!r} (g_min={g_min:.4g} S, g_max={g_max:.4g} S) cannot represent {label} "
            f"in {weight.dtype}: max|weight| = {w_max:.4g} gives a scale of {s:.4g} S per weight unit; "
            "rescale the weights or use a float64 layer")


def first_synaptic(stages: Iterable[nn.Module]) -> tuple[nn.Module | None, bool]:
    """The first Linear / Conv1d / Conv2d reached through Flatten / IF / Identity / Dropout stages.

    Returns:
        ``(layer, flattened)``: the layer (unwrapped from a ``CurrentReadout``) or None when
        another kind of stage comes first, and whether a default ``nn.Flatten`` precedes it.
    """
    flattened = False
    for stage in stages:
        inner = getattr(stage, "layer", stage)
        if isinstance(inner, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            return inner, flattened
        if isinstance(stage, nn.Flatten) and stage.start_dim == 1 and stage.end_dim == -1:
            flattened = True
        elif type(stage).__name__ != "IFNeuron" and not isinstance(stage, (nn.Identity, nn.Dropout)):
            return None, flattened
    return None, flattened


def check_network_input(stages: Iterable[nn.Module], x: Any, name: str, leading: int = 1) -> None:
    """Input ``x`` fits the first synaptic layer of a network's ``stages``.

    Args:
        stages: the network's stages in order (``SpikingNetwork.stages`` or an ANN's layers).
        x: images ``[B, ...]`` (``leading=1``) or an encoded sequence ``[T, B, ...]``
            (``leading=2``).
        name: argument name in messages (``images``, ``spike_seq``, ``calibration``).
        leading: number of leading batch-like dimensions.

    Raises:
        TypeError: not a floating-point tensor. ValueError: too few dimensions, or a per-sample
            shape the first layer cannot read; the message gives the expected shape.
    """
    check_float_tensor(x, name)
    lead = "[T, B, " if leading == 2 else "[B, "
    if x.dim() <= leading:
        raise ValueError(f"{name}: expected shape {lead}...] with at least {leading + 1} dimensions, "
                         f"got {shape_str(x.shape)}")
    if x.shape[leading - 1] == 0:
        raise ValueError(f"{name}: the batch is empty (shape {shape_str(x.shape)}); give at least one sample")
    layer, flattened = first_synaptic(stages)
    sample = tuple(x.shape[leading:])
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        n = len(layer.kernel_size)
        if len(sample) != n + 1 or sample[0] != layer.in_channels:
            raise ValueError(f"{name}: expected {lead}{layer.in_channels}, {_SPATIAL[n]}] for the first layer "
                             f"{layer_label(layer)}, got shape {shape_str(x.shape)}")
    elif isinstance(layer, nn.Linear):
        n = math.prod(sample) if flattened else sample[-1]
        if n != layer.in_features:
            what = "values per sample" if flattened else "features in the last dimension"
            raise ValueError(f"{name}: expected {layer.in_features} {what} for the first layer "
                             f"{layer_label(layer)}, got shape {shape_str(x.shape)} ({n})")


__all__ = [
    "check_finite", "check_float_tensor", "check_int", "check_layer_input", "check_layer_output",
    "check_network_input", "check_number", "check_parameters_finite", "check_scale", "check_states_fit",
    "first_synaptic", "layer_label", "nonfinite_count", "set_value_checks", "shape_str",
    "value_checks_enabled",
]
