"""Capture: an ANN as a ``torch.fx`` graph, with the user's source line on every node.

:func:`capture` traces any module ``torch.fx`` can trace symbolically: custom ``forward`` s,
nested modules, ``nn.Sequential`` subclasses (traced through their own ``forward``, never
flattened). Leaves (modules kept whole, as one node) are the crossbar layers, xbar's IF
neurons, the layers of ``torch.nn`` and subclasses of them whose ``forward`` is the stock one
(spikingjelly's ``layer.Linear``, a user's ``class MyLinear(nn.Linear)`` without its own
``forward``). A module with its own ``forward`` is traced through. A model that cannot be
traced raises :class:`ConversionError` naming the line of its ``forward`` where tracing failed.
"""

from __future__ import annotations

import copy
import os
import re
import traceback
from typing import Any

import torch
from torch import fx, nn

from ..layers import CROSSBAR_TYPES
from ..neurons import IFNeuron

__all__ = ["ConversionError", "capture", "is_stock", "source_of", "stock_base"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_XBAR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class ConversionError(TypeError):
    """A model ``to_snn`` cannot convert: the message names the op and the source line."""


def stock_base(module: nn.Module) -> type | None:
    """The ``torch.nn`` class whose ``forward`` ``module`` runs unchanged, or None when its
    class (or a class between) defines its own ``forward``."""
    for cls in type(module).__mro__:
        if "forward" in cls.__dict__:
            if cls.__module__.startswith("torch.nn") and cls is not nn.Module and not issubclass(cls, _CONTAINERS):
                return cls
            return None
    return None


def is_stock(module: nn.Module, base: type) -> bool:
    """``module`` is a ``base`` (or a subclass) running ``base``'s own ``forward``."""
    return isinstance(module, base) and type(module).forward is base.forward


class _Tracer(fx.Tracer):
    """Leaves: crossbar layers, IF neurons, stock-forward torch layers (module docstring)."""

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        """Every node with the user's line that made it (``meta["xbar_source"]``); a plain
        ``traceback`` walk, cheaper than fx's ``record_stack_traces`` (which imports the
        compiler stack)."""
        node = super().create_node(*args, **kwargs)
        frames = [f for f in traceback.extract_stack()
                  if not os.path.abspath(f.filename).startswith((_TORCH_DIR, _XBAR_DIR))]
        if frames and node.op not in ("placeholder", "output"):
            f = frames[-1]
            node.meta["xbar_source"] = f"{f.filename}:{f.lineno} ({f.name}): {(f.line or '').strip()}"
        return node

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (*CROSSBAR_TYPES, IFNeuron)):
            return True
        if isinstance(m, _CONTAINERS):
            return False
        return stock_base(m) is not None


def _user_frame(tb: Any) -> str:
    """``file:line: code`` of the innermost frame outside torch and xbar, or ''."""
    frames = [f for f in traceback.extract_tb(tb)
              if not os.path.abspath(f.filename).startswith((_TORCH_DIR, _XBAR_DIR))]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename}:{f.lineno} ({f.name}): {(f.line or '').strip()}"


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>[^\n]+)\n(?P<code>[^\n]*)')


def source_of(node: fx.Node) -> str:
    """Where ``node`` came from in the user's code, as ``file:line (function): code`` (the
    innermost frame of its recorded stack outside torch and xbar), or ''."""
    if node.meta.get("xbar_source"):
        return node.meta["xbar_source"]
    frames = [m for m in _FRAME.finditer(node.stack_trace or "")
              if not os.path.abspath(m["file"]).startswith((_TORCH_DIR, _XBAR_DIR))]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f['file']}:{f['line']} ({f['func'].strip()}): {f['code'].strip()}"


def _defaults(model: nn.Module) -> dict[str, Any]:
    """``forward`` arguments after the first that have defaults: traced at those values."""
    import inspect

    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params[1:]
            if p.default is not inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD}


def capture(model: nn.Module) -> fx.GraphModule:
    """Trace a copy of ``model`` (in eval mode) into a ``GraphModule``.

    Returns:
        The traced copy; its submodules keep the model's paths (``features.0``).

    Raises:
        ConversionError: the model cannot be traced (data-dependent control flow, an
            untraceable call, ...), naming the line of its ``forward``.
    """
    if not isinstance(model, nn.Module):
        raise ConversionError(f"ann: expected an nn.Module, got {type(model).__name__}")
    root = copy.deepcopy(model).eval()
    tracer = _Tracer()
    concrete = _defaults(root)
    try:
        graph = tracer.trace(root, concrete_args=concrete or None)
    except Exception as exc:  # fx raises many kinds: TraceError, TypeError, RuntimeError, ...
        where = _user_frame(exc.__traceback__)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConversionError(f"ann: cannot be traced by torch.fx ({type(exc).__name__}: {msg})"
                              + (f" at {where}" if where else "")
                              + "; to_snn needs a forward without data-dependent control flow") from None
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        names = ", ".join(n.target for n in placeholders)
        raise ConversionError(f"ann: forward takes {len(placeholders)} inputs ({names}); to_snn converts "
                              "models with one input tensor")
    return fx.GraphModule(root, graph, class_name=type(model).__name__)
