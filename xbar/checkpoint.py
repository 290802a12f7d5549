"""Checkpoints of programmed hardware: ``xbar.save(model, path)`` / ``xbar.load(path)``.

A checkpoint holds the model's structure as plain data (:mod:`xbar.specs`; no pickled classes
or code), its ``state_dict`` (master weights, the programmed conductances ``g_pos`` / ``g_neg``
as they are, noise and all, each crossbar's full device profile and drift state, IF
thresholds), the encoder's settings and generator state, ``T``, the conversion settings and the
xbar version. It loads with ``torch.load(weights_only=True)``: nothing in it can run code.
Writes go to a temporary file that is renamed into place, so a crash never leaves half a
checkpoint.

What is stored, by kind of model:

* a :class:`~xbar.SpikingNetwork`: its graph (:meth:`xbar.graph.Graph.to_data`: node op,
  target path, plain arguments) and a spec of every module its nodes call, at their paths;
  ``load`` rebuilds it whole;
* a model made only of the vocabulary of :mod:`xbar.specs` (an ``nn.Sequential`` of Linear,
  Conv, crossbar layers, ReLU, pooling, BatchNorm, ...): its spec; ``load`` rebuilds it whole;
* any other model (a user's own class): its class name and the spec of every crossbar layer at
  its path. ``load(path, model=template)`` fills ``template``, a freshly built instance of that
  class: the crossbar layers are put in at their paths and the ``state_dict`` loaded (strictly).

Checkpoints of format version 1 (flat spiking networks, before graphs) still load.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .graph import Graph, GraphError
from .layers import CROSSBAR_TYPES
from .snn import SpikingNetwork
from .specs import SpecError, build_encoder, build_module, encoder_spec, module_spec

FORMAT = "xbar-checkpoint"
FORMAT_VERSION = 2
_READS = (1, 2)


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read; the message names the file."""


def _class_name(m: nn.Module) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"


def _describe(model: nn.Module) -> dict:
    """The plain-data structure of ``model`` (module docstring)."""
    if isinstance(model, SpikingNetwork):
        modules = {}
        for path, m in model.graph_modules().items():
            try:
                modules[path] = module_spec(m)
            except SpecError as exc:
                raise CheckpointError(f"model: {exc} at {path!r} (a spiking network is stored whole)") from None
        return {"type": "SpikingNetwork", "timesteps": model.timesteps, "encoder": _encoder(model.encoder),
                "conversion": getattr(model, "conversion", None), "graph": model.graph.to_data(),
                "modules": modules}
    try:
        return module_spec(model)
    except SpecError:
        pass
    crossbars = {name: module_spec(m) for name, m in model.named_modules() if isinstance(m, CROSSBAR_TYPES)}
    return {"type": "Module", "class": _class_name(model), "crossbars": crossbars,
            "modules": {name: _class_name(m) for name, m in model.named_modules() if name}}


def _encoder(enc: Any) -> dict:
    try:
        return encoder_spec(enc)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None


def save(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save ``model`` with its programmed conductances, devices and settings (atomic write).

    Args:
        model: a spiking network, a model of the :mod:`xbar.specs` vocabulary, or a model of
            any other class (then loaded into a template, module docstring).
        path: destination file.
        metadata: extra plain data to keep (seeds, notes); must be JSON-like.

    Returns:
        The path written.

    Raises:
        CheckpointError: a spiking network holding a module outside the vocabulary (named).
    """
    path = Path(path)
    enc = getattr(model, "encoder", None)
    gen = getattr(enc, "generator", None)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "xbar_version": __version__,
               "spec": _describe(model), "state_dict": model.state_dict(),
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


def _build_snn(spec: dict) -> SpikingNetwork:
    graph = Graph.from_data(spec["graph"])
    modules = {p: build_module(s) for p, s in spec["modules"].items()}
    snn = SpikingNetwork(graph=graph, modules=modules, timesteps=spec["timesteps"],
                         encoder=build_encoder(spec["encoder"]))
    if spec.get("conversion") is not None:
        snn.conversion = spec["conversion"]
    return snn


def _v1(spec: dict, state: dict) -> tuple[nn.Module, dict]:
    """A format-1 checkpoint: spiking networks were flat stages under ``body.stages.``."""
    if spec.get("type") != "SpikingNetwork":
        return build_module(spec), state
    snn = SpikingNetwork([build_module(s) for s in spec["stages"]], timesteps=spec["timesteps"],
                         encoder=build_encoder(spec["encoder"]))
    if spec.get("conversion") is not None:
        snn.conversion = spec["conversion"]
    prefix = "body.stages."
    return snn, {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def _fill(template: nn.Module, spec: dict, where: Path) -> nn.Module:
    """Put the checkpoint's crossbar layers into ``template`` at their paths."""
    if not isinstance(template, nn.Module):
        raise CheckpointError(f"model: expected an nn.Module to load {where} into, got {type(template).__name__}")
    if spec.get("type") == "Module" and spec.get("class") != _class_name(template):
        warnings.warn(f"xbar.load: {where} was saved from a {spec.get('class')}, loading into a "
                      f"{_class_name(template)}", stacklevel=3)
    crossbars = spec.get("crossbars") or {}
    for path, leaf in crossbars.items():
        parent_path, _, name = path.rpartition(".")
        try:
            parent = template.get_submodule(parent_path) if parent_path else template
            old = getattr(parent, name)
        except AttributeError:
            raise CheckpointError(f"{where}: the model has no module at {path!r}, where the checkpoint holds a "
                                  f"{leaf['type']}") from None
        new = build_module(leaf)
        if getattr(old, "weight", None) is None or tuple(old.weight.shape) != tuple(new.weight.shape):
            raise CheckpointError(f"{where}: the model's {path!r} ({type(old).__name__}) does not match the "
                                  f"checkpoint's {leaf['type']} there")
        new.to(old.weight.device)
        setattr(parent, name, new)
    return template


def load(path: str | os.PathLike, map_location: Any = "cpu", model: nn.Module | None = None) -> nn.Module:
    """Load a model written by :func:`save`: bit-identical weights, conductances and settings.

    Args:
        path: the checkpoint.
        map_location: as ``torch.load``.
        model: a freshly built instance of the saved model's class, for checkpoints of a user's
            own class (required then); its crossbar layers are put in and its state loaded.

    Raises:
        CheckpointError: naming the file, if it is missing, truncated, corrupted, not an xbar
            checkpoint, from an incompatible format version, of a user's class and loaded
            without ``model``, or when ``model`` does not fit it.
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
    if version not in _READS:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} (written by xbar "
                              f"{payload.get('xbar_version')}); this xbar {__version__} reads versions "
                              f"{', '.join(map(str, _READS))}")
    spec, state = payload["spec"], payload["state_dict"]
    try:
        if model is not None:
            if spec.get("type") == "SpikingNetwork":
                raise CheckpointError(f"{path}: holds a whole spiking network; load it without model=")
            out = _fill(model, spec, path)
        elif spec.get("type") == "Module":
            raise CheckpointError(f"{path}: holds a model of class {spec.get('class')}; build one and pass it: "
                                  f"xbar.load(path, model={spec.get('class', '').rpartition('.')[2]}(...))")
        elif version == 1:
            out, state = _v1(spec, state)
        elif spec.get("type") == "SpikingNetwork":
            out = _build_snn(spec)
        else:
            out = build_module(spec)
        out.load_state_dict(state, strict=True)
    except CheckpointError:
        raise
    except (KeyError, TypeError, RuntimeError, ValueError, GraphError, SpecError) as exc:
        raise CheckpointError(f"{path}: checkpoint content does not fit its structure: {exc}") from None
    gen_state = payload.get("generator_state")
    enc = getattr(out, "encoder", None)
    if gen_state is not None and getattr(enc, "generator", None) is not None:
        enc.generator.set_state(gen_state)
    out.checkpoint_metadata = payload.get("metadata", {})
    return out.eval()
