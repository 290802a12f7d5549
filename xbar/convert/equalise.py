"""Equalise: channel-wise normalisation as a function-preserving rescaling of the weights.

Layer-wise threshold balancing (:mod:`xbar.convert.balance`) gives every neuron of an IF layer
one threshold, set by the layer's largest activations. Channels whose activations are much
smaller than the layer's percentile then fire rarely, and a deep network needs many timesteps
before its late layers carry information (on the zoo's residual CNN, channel percentiles
differ up to 7x within one layer). Kim et al. (2020, "Spiking-YOLO", AAAI) normalise channel by
channel instead. xbar does it before the layers are balanced, by rescaling the ANN itself:

* a ReLU commutes with a positive per-channel scale, ``relu(x / d) = relu(x) / d``, and so do
  average and max pooling, ``Flatten`` (per feature of the channel), scaling by a constant and
  merges whose inputs share the scale;
* so dividing the output channel ``c`` of a Linear / Conv (its weight row and bias) by ``d_c``
  and multiplying the input column ``c`` of every layer that reads that channel by ``d_c``
  leaves the network's function unchanged (to float rounding; the arithmetic runs in float64)
  while every channel's calibration percentile becomes the same.

The rescaling lives entirely in the weights, so it adds no digital work and no energy term: the
crossbars simply map the rescaled weights onto their conductance range (a crossbar layer gets
a new master weight and re-programs itself on its next read). Channels that must share one
scale are found as groups: the values joined by ReLUs, pools, ``Flatten``, constant scales and
merges (a residual addition ties its branches and the identity shortcut). A group keeps the
scale 1 when any of its values reaches the output, the input, a concatenation, a reshape, a
permutation, a mean or a layer called at several places, or when it holds no ReLU: those are
exact, just not equalised. ``d_c`` is, per channel, the largest over the group's ReLUs of the
same statistic the layer-wise balancing uses (maximum, percentile of the non-zero activations
or of all of them); a channel that never activates gets the median of the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx, nn

from . import ops
from .balance import CalibrationData, run_hooked
from .normalise import POOLS, SYNAPTIC

__all__ = ["channel_groups", "channel_scales", "equalise_channels"]

_MAX_PER_CHANNEL = 4096  # values kept per channel and batch (the layer-wise pass keeps 200k per batch)
_PASS = (nn.ReLU, nn.Flatten, *POOLS)


class _Group:
    """Values that share one per-channel scale: the layers producing them (rows divided), the
    layers reading them (columns multiplied) and the ReLUs whose statistics set the scale."""

    def __init__(self) -> None:
        self.producers: list[str] = []
        self.consumers: list[tuple[str, bool]] = []  # (module path, reads it flattened)
        self.relus: list[str] = []
        self.fixed = False
        self.parent: _Group | None = None

    def root(self) -> "_Group":
        g = self
        while g.parent is not None:
            g = g.parent
        return g


def _union(groups: list[_Group]) -> _Group:
    roots = list(dict.fromkeys(g.root() for g in groups))
    head = roots[0]
    for g in roots[1:]:
        g.parent = head
        head.producers += g.producers
        head.consumers += g.consumers
        head.relus += g.relus
        head.fixed = head.fixed or g.fixed
    return head


def channel_groups(gm: fx.GraphModule) -> list[_Group]:
    """The scale groups of a normalised, BatchNorm-free graph (module docstring); groups that
    must keep the scale 1 are marked ``fixed``."""
    calls: dict[str, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls[n.target] = calls.get(n.target, 0) + 1
    of: dict[fx.Node, tuple[_Group, bool] | None] = {}  # value -> (group, flattened)
    made: list[_Group] = []

    def fix(arg: Any) -> None:
        if isinstance(arg, fx.Node) and of.get(arg) is not None:
            of[arg][0].root().fixed = True

    for n in gm.graph.nodes:
        ins = [a for a in (n.args if n.op != "call_module" else n.args[:1]) if isinstance(a, fx.Node)]
        if n.op == "call_module":
            m = gm.get_submodule(n.target)
            src = of.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            if isinstance(m, SYNAPTIC):
                g = _Group()
                made.append(g)
                if calls[n.target] != 1:
                    g.fixed = True
                    fix(n.args[0])
                elif src is not None:
                    grp, flat = src
                    if flat and not isinstance(m, nn.Linear):
                        grp.root().fixed = True
                    grp.root().consumers.append((n.target, flat))
                g.producers.append(n.target)
                of[n] = (g, False)
            elif isinstance(m, _PASS) and src is not None:
                grp, flat = src
                if isinstance(m, nn.ReLU):
                    grp.root().relus.append(n.target)
                if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
                    grp.root().fixed = True
                of[n] = (grp, flat or isinstance(m, nn.Flatten))
            else:
                fix(n.args[0])
                of[n] = None
        elif n.op == "call_function" and n.target in (ops.merge, ops.scale):
            srcs = [of.get(a) for a in ins]
            if any(s is None for s in srcs) or len({s[1] for s in srcs}) != 1:
                for a in ins:
                    fix(a)
                of[n] = None
            else:
                of[n] = (_union([s[0] for s in srcs]), srcs[0][1])
        else:  # placeholder, output, cat, reshape, permute, mean
            for a in ins:
                fix(a)
            of[n] = None
    return list(dict.fromkeys(g.root() for g in made))


@torch.no_grad()
def channel_scales(gm: fx.GraphModule, relus: list[str], calibration: CalibrationData,
                   percentile: float | None, device: torch.device, zeros: bool = False) -> dict[str, np.ndarray]:
    """Per channel (dimension 1 of the output), the maximum (``percentile`` None) or percentile
    of each ReLU's output over the calibration data (non-zero values unless ``zeros``), keyed by
    the ReLU's module path; NaN for a channel with no value to measure."""
    gen = torch.Generator().manual_seed(0)
    samples: dict[str, list[list[torch.Tensor]]] = {}
    peaks: dict[str, torch.Tensor] = {}

    def hook(path: str):
        def record(_m: nn.Module, _args: tuple, h: torch.Tensor) -> None:
            per = h.detach().transpose(0, 1).reshape(h.shape[1], -1).cpu().float()
            if percentile is None:
                top = per.max(1).values if per.shape[1] else torch.zeros(per.shape[0])
                peaks[path] = top if path not in peaks else torch.maximum(peaks[path], top)
                return
            rows = samples.setdefault(path, [[] for _ in range(per.shape[0])])
            for c, row in enumerate(per):
                vals = row if zeros else row[row > 0]
                if vals.numel() > _MAX_PER_CHANNEL:
                    vals = vals[torch.randperm(vals.numel(), generator=gen)[:_MAX_PER_CHANNEL]]
                rows[c].append(vals)
        return record

    run_hooked(gm, {r: hook(r) for r in relus}, calibration, device)
    out: dict[str, np.ndarray] = {}
    for r in relus:
        if percentile is None:
            v = peaks.get(r)
            out[r] = np.where(v.numpy() > 0, v.numpy(), np.nan) if v is not None else np.zeros(0)
            continue
        vals = []
        for chunks in samples.get(r, []):
            v = torch.cat(chunks).numpy() if chunks else np.zeros(0)
            p = float(np.percentile(v, percentile)) if v.size else float("nan")
            vals.append(p if p > 0 else float("nan"))
        out[r] = np.asarray(vals, dtype=np.float64)
    return out


@torch.no_grad()
def _layer_dims(gm: fx.GraphModule, x: torch.Tensor | None, device: torch.device) -> dict[str, tuple[int, int]]:
    """``(input ndim, output ndim)`` of every synaptic layer on one calibration batch."""
    dims: dict[str, tuple[int, int]] = {}
    if x is None:
        return dims
    hooks = {k: (lambda _m, a, h, k=k: dims.__setitem__(k, (a[0].dim(), h.dim())))
             for k, m in gm.named_modules() if isinstance(m, SYNAPTIC)}
    run_hooked(gm, hooks, [x], device)
    return dims


def _fits(gm: fx.GraphModule, g: _Group, dims: dict[str, tuple[int, int]]) -> bool:
    """The group's channel is dimension 1 everywhere: a Linear producing it or reading it
    unflattened works on ``[B, features]``; a flattened read has a whole number of features per
    channel; every producer has the same width."""
    widths = {int(gm.get_submodule(p).weight.shape[0]) for p in g.producers}
    if len(widths) != 1:
        return False
    width = next(iter(widths))
    for p in g.producers:
        if isinstance(gm.get_submodule(p), nn.Linear) and dims.get(p, (0, 0))[1] != 2:
            return False
    for c, flat in g.consumers:
        layer = gm.get_submodule(c)
        if flat and (not isinstance(layer, nn.Linear) or layer.weight.shape[1] % width):
            return False
        if not flat and (layer.weight.shape[1] != width or (isinstance(layer, nn.Linear) and dims.get(c, (0, 0))[0] != 2)):
            return False
    return True


def _scale_rows(layer: nn.Module, d: torch.Tensor) -> None:
    w = layer.weight
    shape = (-1,) + (1,) * (w.dim() - 1)
    w.copy_((w.detach().double() / d.view(shape).to(w.device)).to(w.dtype))
    if layer.bias is not None:
        layer.bias.copy_((layer.bias.detach().double() / d.to(w.device)).to(w.dtype))


def _scale_columns(layer: nn.Module, d: torch.Tensor, flat: bool) -> None:
    w = layer.weight
    if flat:
        per = w.shape[1] // d.numel()
        d = d.repeat_interleave(per)
    shape = (1, -1) + (1,) * (w.dim() - 2)
    w.copy_((w.detach().double() * d.view(shape).to(w.device)).to(w.dtype))


@torch.no_grad()
def equalise_channels(gm: fx.GraphModule, calibration: CalibrationData, percentile: float | None,
                      device: torch.device, zeros: bool = False) -> dict[str, np.ndarray]:
    """Rescale the weights of ``gm`` so that, in every group that can be equalised, each
    channel's calibration statistic is the same (module docstring). Returns the applied scales
    ``d`` by the group's first producer; ``gm`` is edited in place."""
    groups = [g for g in channel_groups(gm) if not g.fixed and g.relus]
    dims = _layer_dims(gm, calibration.first(), device) if groups else {}
    groups = [g for g in groups if _fits(gm, g, dims)]
    if not groups:
        return {}
    stats = channel_scales(gm, sorted({r for g in groups for r in g.relus}), calibration, percentile, device, zeros)
    applied: dict[str, np.ndarray] = {}
    for g in groups:
        width = int(gm.get_submodule(g.producers[0]).weight.shape[0])
        per_relu = [stats[r] for r in g.relus if stats[r].size]
        if not per_relu or any(s.size != width for s in per_relu):
            continue
        d = np.fmax.reduce(np.stack(per_relu), axis=0)  # NaN only where no ReLU measured the channel
        live = d[np.isfinite(d) & (d > 0)]
        if not live.size:
            continue
        d = np.where(np.isfinite(d) & (d > 0), d, np.median(live))
        d = d / np.exp(np.mean(np.log(d)))  # geometric mean 1: the layers' overall size is kept
        dt = torch.as_tensor(d, dtype=torch.float64)
        for p in g.producers:
            _scale_rows(gm.get_submodule(p), dt)
        for c, flat in g.consumers:
            _scale_columns(gm.get_submodule(c), dt, flat)
        applied[g.producers[0]] = d
    return applied

