"""Checkpoints of programmed hardware: ``xbar.save(model, path)`` / ``xbar.load(path)``.

A checkpoint holds the model's structure (a plain description, no pickled classes), its
``state_dict`` (master weights, the programmed conductances ``g_pos`` / ``g_neg`` as they are,
noise and all, each crossbar's full device profile and drift state, IF thresholds), the
encoder's settings and generator state, ``T``, the conversion settings and the xbar version.
It loads with ``torch.load(weights_only=True)``: nothing in it can run code. Writes go to a
temporary file that is renamed into place, so a crash never leaves half a checkpoint.

Supported modules: ``nn.Sequential``, ``Linear``, ``Conv2d``, the crossbar layers, ``ReLU``,
``AvgPool2d``, ``Flatten``, ``Identity``, ``Dropout``, ``IFNeuron``, ``CurrentReadout`` and
``SpikingNetwork``.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .encoding import ConstantEncoder, PoissonEncoder
from .layers import CrossbarConv1d, CrossbarConv2d, CrossbarLinear
from .neurons import IFNeuron
from .snn import CurrentReadout, SpikingNetwork

FORMAT = "xbar-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message names the file."""


def _conv_args(m: nn.Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": list(m.padding) if not isinstance(m.padding, str) else m.padding,
            "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None,
            "padding_mode": m.padding_mode}


def _surrogate_spec(fn: Any) -> dict | None:
    if fn is None:
        return None
    return {"name": type(fn).__name__, "alpha": getattr(fn, "alpha", None)}


def _spec(m: nn.Module) -> dict:
    """A plain-data description of ``m``'s structure."""
    if isinstance(m, SpikingNetwork):
        return {"type": "SpikingNetwork", "timesteps": m.timesteps, "encoder": _encoder_spec(m.encoder),
                "conversion": getattr(m, "conversion", None), "stages": [_spec(s) for s in m.stages]}
    if isinstance(m, nn.Sequential):
        return {"type": "Sequential", "names": [n for n, _ in m.named_children()],
                "children": [_spec(c) for c in m.children()]}
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
        return {"type": "CurrentReadout", "layer": _spec(m.layer)}
    if isinstance(m, IFNeuron):
        return {"type": "IFNeuron", "threshold_shape": list(m.threshold.shape), "reset": m.reset_mode,
                "step_mode": m.step_mode, "learn_threshold": isinstance(m.threshold, nn.Parameter),
                "surrogate": _surrogate_spec(m.surrogate), "has_weight_threshold": m.weight_threshold is not None}
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
    raise CheckpointError(f"model: cannot save module of type {type(m).__name__}")


def _encoder_spec(enc: Any) -> dict:
    if isinstance(enc, PoissonEncoder):
        return {"type": "poisson", "max_rate": enc.max_rate, "has_generator": enc.generator is not None}
    if isinstance(enc, ConstantEncoder):
        return {"type": "constant", "gain": enc.gain}
    raise CheckpointError(f"encoder: cannot save encoder of type {type(enc).__name__}")


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _build(spec: dict) -> nn.Module:
    """The module a :func:`_spec` describes, with fresh parameters."""
    kind = spec["type"]
    if kind == "SpikingNetwork":
        snn = SpikingNetwork([_build(s) for s in spec["stages"]], timesteps=spec["timesteps"],
                             encoder=_build_encoder(spec["encoder"]))
        if spec.get("conversion") is not None:
            snn.conversion = spec["conversion"]
        return snn
    if kind == "Sequential":
        return nn.Sequential(OrderedDict(zip(spec["names"], (_build(c) for c in spec["children"]))))
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
                     "BatchNorm2d": nn.BatchNorm2d}
    if kind in keyword_built:  # built from the keyword arguments the spec holds
        return keyword_built[kind](**{k: _as_tuple(v) for k, v in spec.items() if k != "type"})
    if kind == "CurrentReadout":
        return CurrentReadout(_build(spec["layer"]))
    if kind == "IFNeuron":
        return _build_neuron(spec)
    simple = {"ReLU": lambda: nn.ReLU(), "Identity": lambda: nn.Identity(),
              "Flatten": lambda: nn.Flatten(spec["start_dim"], spec["end_dim"]),
              "Dropout": lambda: nn.Dropout(spec["p"]),
              "AvgPool2d": lambda: nn.AvgPool2d(_as_tuple(spec["kernel_size"]), _as_tuple(spec["stride"]),
                                                _as_tuple(spec["padding"]), spec["ceil_mode"], spec["count_include_pad"])}
    if kind not in simple:
        raise CheckpointError(f"unknown module type {kind!r} in checkpoint")
    return simple[kind]()


def _build_neuron(spec: dict) -> IFNeuron:
    sur = spec["surrogate"]
    fn = None
    if sur is not None:
        from spikingjelly.activation_based import surrogate

        cls = getattr(surrogate, sur["name"], None)
        if cls is None:
            raise CheckpointError(f"surrogate function {sur['name']!r} not found in spikingjelly")
        fn = cls(alpha=sur["alpha"]) if sur["alpha"] is not None else cls()
    n = IFNeuron(threshold=torch.ones(spec["threshold_shape"]), reset=spec["reset"], surrogate=fn,
                 step_mode=spec["step_mode"], learn_threshold=spec["learn_threshold"])
    if spec["has_weight_threshold"]:
        n.weight_threshold = torch.ones(())
    return n


def _build_encoder(spec: dict) -> Any:
    if spec["type"] == "poisson":
        return PoissonEncoder(spec["max_rate"], torch.Generator() if spec["has_generator"] else None)
    return ConstantEncoder(spec["gain"])


def save(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save ``model`` with its programmed conductances, devices and settings (atomic write).

    Args:
        model: a supported module (module docstring), e.g. a crossbar ANN or a SpikingNetwork.
        path: destination file.
        metadata: extra plain data to keep (seeds, notes); must be JSON-like.

    Returns:
        The path written.
    """
    path = Path(path)
    enc = getattr(model, "encoder", None)
    gen = getattr(enc, "generator", None)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "xbar_version": __version__,
               "spec": _spec(model), "state_dict": model.state_dict(),
               "generator_state": gen.get_state() if gen is not None and gen.device.type == "cpu" else None,
               "metadata": metadata or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Load a model written by :func:`save`: bit-identical weights, conductances and settings.

    Raises:
        CheckpointError: naming the file, if it is missing, truncated, corrupted, not an xbar
            checkpoint, or from an incompatible format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged archives
        raise CheckpointError(f"{path}: not a readable xbar checkpoint (truncated or corrupted?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an xbar checkpoint (no '{FORMAT}' header)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} (written by xbar "
                              f"{payload.get('xbar_version')}); this xbar {__version__} reads version {FORMAT_VERSION}")
    try:
        model = _build(payload["spec"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint content does not fit its structure: {exc}") from None
    gen_state = payload.get("generator_state")
    enc = getattr(model, "encoder", None)
    if gen_state is not None and getattr(enc, "generator", None) is not None:
        enc.generator.set_state(gen_state)
    model.checkpoint_metadata = payload.get("metadata", {})
    return model.eval()
