"""Fold BatchNorm (eval statistics) into a neighbouring Linear / Conv before any mapping.

In eval mode ``BatchNorm`` is the per-channel affine map ``y = a x + c`` with
``a = gamma / sqrt(running_var + eps)`` and ``c = beta - a * running_mean``. Folded

* **backward**, into the synaptic layer that feeds it (Conv-BN, Linear-BN): ``W' = a W`` per
  output channel, ``b' = a b + c`` (a bias is created when the layer had none);
* **forward**, when it follows no synaptic layer (BN on the input, ReLU-BN-Conv): into the one
  layer it feeds, directly or through a ``Flatten``: ``W' = W a`` per input channel and
  ``b' = b + W c``. Exact only where the constant ``c`` reaches every tap the same way: a
  ``Linear``, or a convolution without padding; anything else is refused.

The folded network equals the original to float rounding (``tests/test_batchnorm.py``); the
arithmetic runs in float64. A crossbar layer that absorbs a BatchNorm gets a new master weight
and re-programs itself on its next read (programming noise drawn anew, from the global
generator; :func:`xbar.program_model` programs a whole network from a seed afterwards).
"""

from __future__ import annotations

import torch
from torch import fx, nn

from .capture import ConversionError, source_of
from .normalise import SYNAPTIC, _clean

__all__ = ["bn_affine", "fold_batchnorm"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, c)`` of a BatchNorm in eval mode, float64, one value per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise ConversionError(f"ann: BatchNorm {bn} has no running statistics (track_running_stats=False); "
                              "it cannot be folded into a crossbar")
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    a = gamma / torch.sqrt(var + bn.eps)
    return a, beta - a * mean


def _set_bias(layer: nn.Module, value: torch.Tensor) -> None:
    w = layer.weight
    value = value.to(dtype=w.dtype, device=w.device)
    with torch.no_grad():
        if layer.bias is None:
            layer.bias = nn.Parameter(value, requires_grad=w.requires_grad)
        else:
            layer.bias.copy_(value)


def _fold_back(layer: nn.Module, a: torch.Tensor, c: torch.Tensor) -> None:
    w = layer.weight
    shape = (-1,) + (1,) * (w.dim() - 1)
    b = layer.bias.detach().double() if layer.bias is not None else torch.zeros_like(a)
    with torch.no_grad():
        w.copy_((w.detach().double() * a.view(shape).to(w.device)).to(w.dtype))
    _set_bias(layer, a.to(w.device) * b.to(w.device) + c.to(w.device))


def _fold_forward(layer: nn.Module, a: torch.Tensor, c: torch.Tensor, per: int, node: fx.Node) -> None:
    """``layer(a x + c)`` as ``layer'(x)``; ``per``: inputs of ``layer`` per BN channel (H*W
    when a Flatten sits between)."""
    w = layer.weight
    wd = w.detach().double()
    a, c = a.to(w.device), c.to(w.device)
    b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                                 device=w.device)
    if isinstance(layer, nn.Linear):
        if layer.in_features != a.numel() * per:
            raise ConversionError(f"ann: BatchNorm at {_where(node)} has {a.numel()} channels, "
                                  f"the Linear after it {layer.in_features} inputs; cannot fold it forward")
        a_in, c_in = a.repeat_interleave(per), c.repeat_interleave(per)
        new_b = b + wd @ c_in
        new_w = wd * a_in
    else:
        if any(p != 0 for p in layer.padding) or isinstance(layer.padding, str) or layer.groups != 1:
            raise ConversionError(f"ann: BatchNorm at {_where(node)} feeds a padded or grouped "
                                  "convolution; its shift would not reach the padded taps: fold it into the "
                                  "layer before it (Conv-BN order) instead")
        view = (1, -1) + (1,) * (w.dim() - 2)
        new_w = wd * a.view(view)
        new_b = b + (wd * c.view(view)).flatten(1).sum(1)
    with torch.no_grad():
        w.copy_(new_w.to(w.dtype))
    _set_bias(layer, new_b)


def _where(node: fx.Node) -> str:
    """``'path'`` of a BatchNorm node, with its source line when there is one."""
    src = source_of(node)
    return f"{node.target!r}" + (f" ({src})" if src else "")


def _calls(gm: fx.GraphModule, target: str) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == target)


def fold_batchnorm(gm: fx.GraphModule) -> fx.GraphModule:
    """Fold every BatchNorm of a normalised graph (module docstring); returns ``gm``.

    Raises:
        ConversionError: a BatchNorm that can be folded neither way, named with its source line.
    """
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), _BN):
            continue
        a, c = bn_affine(gm.get_submodule(node.target))
        src = node.args[0]
        src_mod = gm.get_submodule(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
        if isinstance(src_mod, SYNAPTIC) and len(src.users) == 1 and _calls(gm, src.target) == 1:
            if src_mod.weight.shape[0] != a.numel():
                raise ConversionError(f"ann: BatchNorm at {_where(node)} has {a.numel()} channels, "
                                      f"the layer before it {src_mod.weight.shape[0]} outputs")
            _fold_back(src_mod, a, c)
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
            continue
        users = list(node.users)
        nxt, per = (users[0] if len(users) == 1 else None), 1
        if nxt is not None and nxt.op == "call_module" and isinstance(gm.get_submodule(nxt.target), nn.Flatten) \
                and len(nxt.users) == 1:
            flat = nxt
            nxt = next(iter(nxt.users))
            per = -1
        else:
            flat = None
        dst = gm.get_submodule(nxt.target) if nxt is not None and nxt.op == "call_module" else None
        if not isinstance(dst, SYNAPTIC) or _calls(gm, nxt.target) != 1:
            raise ConversionError(f"ann: BatchNorm at {_where(node)} follows no Linear/Conv and "
                                  "does not feed exactly one; it cannot be folded into the crossbars")
        if per == -1:
            per = dst.in_features // max(1, a.numel()) if isinstance(dst, nn.Linear) else 1
        _fold_forward(dst, a, c, per, node)
        node.replace_all_uses_with(node.args[0])
        gm.graph.erase_node(node)
        del flat
    _clean(gm)
    return gm
