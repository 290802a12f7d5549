"""A network's digital twin: every crossbar layer replaced by a plain torch layer holding the
weight the crossbar holds.

Tools that benchmark a model by re-running its layers (NeuroBench's ``synaptic_operations``
deep-copies every ``nn.Linear`` / ``nn.Conv`` subclass, overwrites its ``weight.data`` with a
binarised copy and calls its ``forward``) would re-program a crossbar copy: its programming
noise is drawn again, snapping and the periphery act on the binary weights, and the counts come
out wrong. The twin's layers are stock ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` with the
effective weights ``(G+ - G-) / scale`` read back from the programmed conductances (or the float
master weights, ``weights="float"``) and the biases. Inside a :class:`~xbar.SpikingNetwork`
the twin's IF thresholds are in weight units (the currents they were, divided by the amperes
per weight unit of their input): the twin computes the network in weight units, without the
per-read effects (read noise, DAC, ADC) that a deterministic layer cannot have.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..layers import CROSSBAR_TYPES, CrossbarConv1d, CrossbarConv2d, CrossbarLinear
from ..neurons import IFNeuron

__all__ = ["check_weights", "digital_twin", "layer_weights"]

WEIGHTS = ("programmed", "float")


def check_weights(weights: str) -> str:
    """``weights`` if it is ``"programmed"`` or ``"float"``; ValueError naming it otherwise."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights: expected one of {WEIGHTS}, got {weights!r}")
    return weights


def _inner(module: nn.Module) -> nn.Module:
    return module.layer if type(module).__name__ == "CurrentReadout" else module


@torch.no_grad()
def layer_weights(module: nn.Module, weights: str = "programmed") -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight, bias)`` of a synaptic layer in weight units (detached copies).

    A crossbar layer (or a :class:`~xbar.CurrentReadout` of one) gives its effective weight,
    read back from the programmed conductances (programming noise, snapping, stuck devices,
    drift and IR drop included) with ``weights="programmed"``, its float master weight with
    ``weights="float"``; a float layer gives its own weight. The bias is the layer's bias
    (a converted network's biases are already divided by their input's scale).
    """
    check_weights(weights)
    m = _inner(module)
    if isinstance(m, CROSSBAR_TYPES) and weights == "programmed":
        w = m.effective_weight()
    else:
        w = m.weight.detach().clone()
    return w, None if m.bias is None else m.bias.detach().clone()


def _plain(module: nn.Module, weights: str) -> nn.Module:
    m = _inner(module)
    w, b = layer_weights(m, weights)
    if isinstance(m, CrossbarLinear):
        out: Any = nn.Linear(m.in_features, m.out_features, bias=b is not None, device=w.device, dtype=w.dtype)
    else:
        cls = nn.Conv2d if isinstance(m, CrossbarConv2d) else nn.Conv1d
        assert isinstance(m, (CrossbarConv1d, CrossbarConv2d))
        out = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                  dilation=m.dilation, groups=m.groups, bias=b is not None, padding_mode=m.padding_mode,
                  device=w.device, dtype=w.dtype)
    with torch.no_grad():
        out.weight.copy_(w)
        if b is not None:
            out.bias.copy_(b)
    return out.train(m.training)


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def _swaps(model: nn.Module) -> list[str]:
    """Paths of the crossbar layers and current readouts to replace (outermost first)."""
    paths: list[str] = []
    for path, m in model.named_modules():
        if not path or any(path.startswith(p + ".") for p in paths):
            continue
        if isinstance(m, CROSSBAR_TYPES) or type(m).__name__ == "CurrentReadout":
            paths.append(path)
    return paths


@torch.no_grad()
def digital_twin(model: nn.Module, weights: str = "programmed") -> nn.Module:
    """A copy of ``model`` with every crossbar layer a plain torch layer (module docstring).

    Args:
        model: a :class:`~xbar.SpikingNetwork` or any module holding crossbar layers (not
            modified).
        weights: ``"programmed"`` (default): the effective weights the conductances hold;
            ``"float"``: the float master weights.

    Returns:
        The copy. Module paths, the graph, the encoder and ``T`` are kept; a spiking network's
        IF thresholds become weight units (``weight_threshold``, or the current threshold over
        the amperes per weight unit of the IF layer's input).

    Example:
        benchmark a converted network with NeuroBench on its twin:
        ``TorchModel(digital_twin(snn))`` counts what the crossbars hold.
    """
    check_weights(weights)
    twin = copy.deepcopy(model)
    thresholds: dict[int, torch.Tensor] = {}
    if getattr(twin, "accepts_observers", False) and hasattr(twin, "_walk"):
        twin.sync_thresholds()
        for node, ins in twin._walk():
            m = twin.get_submodule(node.target) if node.op == "module" else None
            if isinstance(m, IFNeuron):
                wt = m.weight_threshold
                thresholds[id(m)] = (wt if wt is not None else m.threshold / ins[0][1]).detach().clone()
    for path in _swaps(twin):
        _replace(twin, path, _plain(twin.get_submodule(path), weights))
    for m in twin.modules():
        if id(m) in thresholds:
            m.weight_threshold = None
            m.threshold.copy_(thresholds[id(m)].to(m.threshold.dtype).expand_as(m.threshold))
    return twin
