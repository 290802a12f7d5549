"""Plain-data descriptions of modules and encoders: the vocabulary checkpoints are made of.

:func:`module_spec` describes a module as ``{"type": ..., constructor arguments}`` and
:func:`build_module` builds a fresh one from that (parameters and buffers come from a
``state_dict`` afterwards). Nothing here is code: a checkpoint of these dicts loads with
``torch.load(weights_only=True)``.

Vocabulary: ``nn.Sequential`` (exact type), ``Linear``, ``Conv1d``, ``Conv2d``, the crossbar
layers, ``CurrentReadout``, ``IFNeuron``, ``SpikingMaxPool``, ``ReLU``, ``Flatten``,
``Identity``, ``Dropout``, ``AvgPool1d/2d``, ``AdaptiveAvgPool1d/2d``, ``MaxPool1d/2d``,
``BatchNorm1d/2d``; encoders ``PoissonEncoder`` and ``ConstantEncoder``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from .encoding import ConstantEncoder, PoissonEncoder
from .layers import CrossbarConv1d, CrossbarConv2d, CrossbarLinear
from .neurons import IFNeuron
from .pooling import SpikingMaxPool
from .snn import CurrentReadout

__all__ = ["SpecError", "build_encoder", "build_module", "encoder_spec", "module_spec"]


class SpecError(ValueError):
    """A module or encoder outside the vocabulary, or a description that does not fit it."""


def _conv_args(m: nn.Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": list(m.padding) if not isinstance(m.padding, str) else m.padding,
            "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None,
            "padding_mode": m.padding_mode}


def _surrogate_spec(fn: Any) -> dict | None:
    if fn is None:
        return None
    return {"name": type(fn).__name__, "alpha": getattr(fn, "alpha", None)}


def module_spec(m: nn.Module) -> dict:
    """A plain-data description of ``m``'s structure (its type and constructor arguments).

    Raises:
        SpecError: ``m`` is not of a type in the vocabulary (module docstring), named.
    """
    if type(m) is nn.Sequential:
        return {"type": "Sequential", "names": [n for n, _ in m.named_children()],
                "children": [module_spec(c) for c in m.children()]}
    if isinstance(m, CrossbarLinear):
        return {"type": "CrossbarLinear", "in_features": m.in_features, "out_features": m.out_features,
                "bias": m.bias is not None}
    if isinstance(m, CrossbarConv2d):
        return {"type": "CrossbarConv2d", **_conv_args(m)}
    if isinstance(m, CrossbarConv1d):
        return {"type": "CrossbarConv1d", **_conv_args(m)}
    if type(m) is nn.Linear:
        return {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}
    if type(m) is nn.Conv2d:
        return {"type": "Conv2d", **_conv_args(m)}
    if type(m) is nn.Conv1d:
        return {"type": "Conv1d", **_conv_args(m)}
    if isinstance(m, CurrentReadout):
        return {"type": "CurrentReadout", "layer": module_spec(m.layer)}
    if isinstance(m, IFNeuron):
        return {"type": "IFNeuron", "threshold_shape": list(m.threshold.shape), "reset": m.reset_mode,
                "step_mode": m.step_mode, "learn_threshold": isinstance(m.threshold, nn.Parameter),
                "surrogate": _surrogate_spec(m.surrogate), "has_weight_threshold": m.weight_threshold is not None,
                "v_init": m.v_init}
    if isinstance(m, SpikingMaxPool):
        return {"type": "SpikingMaxPool", "dims": m.dims, "kernel_size": list(m.kernel_size), "stride": list(m.stride),
                "padding": list(m.padding), "dilation": list(m.dilation), "ceil_mode": m.ceil_mode}
    if type(m) is nn.ReLU:
        return {"type": "ReLU"}
    if type(m) is nn.Flatten:
        return {"type": "Flatten", "start_dim": m.start_dim, "end_dim": m.end_dim}
    if type(m) is nn.AvgPool2d:
        return {"type": "AvgPool2d", "kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
                "ceil_mode": m.ceil_mode, "count_include_pad": m.count_include_pad}
    if type(m) is nn.Identity:
        return {"type": "Identity"}
    if type(m) is nn.Dropout:
        return {"type": "Dropout", "p": m.p}
    max_pool = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
    batch_norm = ("num_features", "eps", "momentum", "affine", "track_running_stats")
    fields = {nn.AvgPool1d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
              nn.AdaptiveAvgPool1d: ("output_size",), nn.AdaptiveAvgPool2d: ("output_size",),
              nn.MaxPool1d: max_pool, nn.MaxPool2d: max_pool, nn.BatchNorm1d: batch_norm, nn.BatchNorm2d: batch_norm}
    if type(m) in fields:  # constructor arguments, tuples as lists
        values = {k: getattr(m, k) for k in fields[type(m)]}
        return {"type": type(m).__name__, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}
    raise SpecError(f"model: cannot describe module of type {type(m).__name__}")


def encoder_spec(enc: Any) -> dict:
    if isinstance(enc, PoissonEncoder):
        return {"type": "poisson", "max_rate": enc.max_rate, "has_generator": enc.generator is not None}
    if isinstance(enc, ConstantEncoder):
        return {"type": "constant", "gain": enc.gain}
    raise SpecError(f"encoder: cannot save encoder of type {type(enc).__name__}")


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def build_module(spec: dict) -> nn.Module:
    """The module a :func:`module_spec` describes, with fresh parameters.

    Raises:
        SpecError: an unknown type or arguments that do not fit it.
    """
    kind = spec["type"]
    if kind == "Sequential":
        return nn.Sequential(OrderedDict(zip(spec["names"], (build_module(c) for c in spec["children"]))))
    if kind in ("Linear", "CrossbarLinear"):
        cls = nn.Linear if kind == "Linear" else CrossbarLinear
        return cls(spec["in_features"], spec["out_features"], bias=spec["bias"])
    if kind in ("Conv2d", "CrossbarConv2d"):
        cls = nn.Conv2d if kind == "Conv2d" else CrossbarConv2d
        args = {k: _as_tuple(v) for k, v in spec.items() if k != "type"}
        return cls(**args)
    keyword_built = {"Conv1d": nn.Conv1d, "CrossbarConv1d": CrossbarConv1d, "AvgPool1d": nn.AvgPool1d,
                     "AdaptiveAvgPool1d": nn.AdaptiveAvgPool1d, "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d,
                     "MaxPool1d": nn.MaxPool1d, "MaxPool2d": nn.MaxPool2d, "BatchNorm1d": nn.BatchNorm1d,
                     "BatchNorm2d": nn.BatchNorm2d, "SpikingMaxPool": SpikingMaxPool}
    if kind in keyword_built:  # built from the keyword arguments the spec holds
        return keyword_built[kind](**{k: _as_tuple(v) for k, v in spec.items() if k != "type"})
    if kind == "CurrentReadout":
        return CurrentReadout(build_module(spec["layer"]))
    if kind == "IFNeuron":
        return _build_neuron(spec)
    simple = {"ReLU": lambda: nn.ReLU(), "Identity": lambda: nn.Identity(),
              "Flatten": lambda: nn.Flatten(spec["start_dim"], spec["end_dim"]),
              "Dropout": lambda: nn.Dropout(spec["p"]),
              "AvgPool2d": lambda: nn.AvgPool2d(_as_tuple(spec["kernel_size"]), _as_tuple(spec["stride"]),
                                                _as_tuple(spec["padding"]), spec["ceil_mode"], spec["count_include_pad"])}
    if kind not in simple:
        raise SpecError(f"unknown module type {kind!r} in checkpoint")
    return simple[kind]()


def _build_neuron(spec: dict) -> IFNeuron:
    sur = spec["surrogate"]
    fn = None
    if sur is not None:
        from spikingjelly.activation_based import surrogate

        cls = getattr(surrogate, sur["name"], None)
        if cls is None:
            raise SpecError(f"surrogate function {sur['name']!r} not found in spikingjelly")
        fn = cls(alpha=sur["alpha"]) if sur["alpha"] is not None else cls()
    n = IFNeuron(threshold=torch.ones(spec["threshold_shape"]), reset=spec["reset"], surrogate=fn,
                 step_mode=spec["step_mode"], learn_threshold=spec["learn_threshold"],
                 v_init=spec.get("v_init", 0.0))
    if spec["has_weight_threshold"]:
        n.weight_threshold = torch.ones(())
    return n


def build_encoder(spec: dict) -> Any:
    if spec["type"] == "poisson":
        return PoissonEncoder(spec["max_rate"], torch.Generator() if spec["has_generator"] else None)
    return ConstantEncoder(spec["gain"])
