"""Normalise: a captured ANN graph rewritten into a small vocabulary, pass by pass.

Each pass is a function ``GraphModule -> GraphModule`` (it edits and returns its argument).
After :func:`canonicalize` every ``call_module`` node calls one of :data:`MODULES` and every
``call_function`` node one of the functions of :mod:`xbar.convert.ops`:

* ``F.relu`` / ``torch.relu`` / ``x.relu()`` / ``x.relu_()`` / ``x.clamp(min=0)`` and
  ``nn.ReLU`` (``inplace`` or not) -> an ``nn.ReLU`` module of its own per call site (a module
  called twice gets two IF layers later);
* ``torch.flatten(x, 1)`` / ``x.flatten(1)`` / ``x.view(x.size(0), -1)`` /
  ``x.reshape(x.shape[0], -1)`` -> ``nn.Flatten``; other ``view`` / ``reshape`` / ``squeeze`` /
  ``unsqueeze`` -> :func:`~xbar.convert.ops.reshape` with the per-sample shape measured on
  example batches of two and three samples (so a view that mixes samples is refused);
* ``F.avg_pool1d/2d``, ``F.max_pool1d/2d``, ``F.adaptive_avg_pool1d/2d`` -> their modules;
  ``F.linear`` / ``F.conv1d`` / ``F.conv2d`` on a module's parameters -> ``nn.Linear`` /
  ``nn.Conv1d`` / ``nn.Conv2d`` holding them (at that module's path);
* ``+``, ``-``, ``+=``, ``torch.add`` (``alpha``), ``torch.sub`` of two tensors ->
  :func:`~xbar.convert.ops.merge`; ``torch.cat`` -> :func:`~xbar.convert.ops.cat`;
  multiplication or division by a number, ``-x`` -> :func:`~xbar.convert.ops.scale`;
  ``x.mean(dims)`` -> :func:`~xbar.convert.ops.mean`; ``permute`` / ``transpose`` ->
  :func:`~xbar.convert.ops.permute`;
* Dropout (module or functional), ``nn.Identity``, ``contiguous`` / ``clone`` / ``detach``:
  removed;
* a trailing ``softmax`` / ``log_softmax`` (module, function or method): removed. Both are
  monotonic, so the argmax is unchanged; the spiking network returns the logits before it.

Anything else (LeakyReLU, GELU, sigmoid, a product or quotient of two tensors, an op on the
batch dimension, ...) raises :class:`~xbar.convert.capture.ConversionError` naming the op and
the line of the user's ``forward``. :func:`swap_maxpool_relu` then moves a ReLU that follows a
max-pool in front of it (they commute), so that max-pooling always acts on spikes.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layers import CROSSBAR_TYPES
from . import ops
from .capture import ConversionError, is_stock, source_of

__all__ = ["MODULES", "canonicalize", "swap_maxpool_relu", "unique_path"]

SYNAPTIC = (nn.Linear, nn.Conv1d, nn.Conv2d)
POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.MaxPool1d, nn.MaxPool2d)
#: module types a normalised graph may call (BatchNorm until it is folded)
MODULES = (*SYNAPTIC, nn.ReLU, nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, *POOLS)

_RELU_FN = {F.relu, torch.relu, torch.relu_, F.relu_}
_DROP_FN = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
            torch.dropout, torch.clone, torch.detach}
_DROP_METHODS = {"contiguous", "clone", "detach"}
_SOFTMAX_FN = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
_ADD_FN = {operator.add, operator.iadd, torch.add}
_SUB_FN = {operator.sub, operator.isub, torch.sub}
_MUL_FN = {operator.mul, operator.imul, torch.mul}
_DIV_FN = {operator.truediv, operator.itruediv, torch.div, torch.true_divide}
_CAT_FN = {torch.cat, torch.concat, torch.concatenate}
_RESHAPE_FN = {torch.reshape, torch.squeeze, torch.unsqueeze}
_RESHAPE_METHODS = {"view", "reshape", "squeeze", "unsqueeze", "squeeze_", "unsqueeze_"}
_POOL_FN = {F.avg_pool1d: nn.AvgPool1d, F.avg_pool2d: nn.AvgPool2d, F.max_pool1d: nn.MaxPool1d,
            F.max_pool2d: nn.MaxPool2d, F.adaptive_avg_pool1d: nn.AdaptiveAvgPool1d,
            F.adaptive_avg_pool2d: nn.AdaptiveAvgPool2d}
_POOL_ARGS = {nn.AvgPool1d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
              nn.AvgPool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
              nn.MaxPool1d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
              nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
              nn.AdaptiveAvgPool1d: ("output_size",), nn.AdaptiveAvgPool2d: ("output_size",)}
_SYN_FN = {F.linear: nn.Linear, F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d}
_ASSERTS = {torch._assert, getattr(torch.fx._symbolic_trace, "_assert_is_none", None)}


def _fail(node: fx.Node, what: str) -> ConversionError:
    where = source_of(node)
    return ConversionError(f"ann: {what} has no spiking equivalent in xbar" + (f", at {where}" if where else "")
                           + " (to_snn converts ReLU networks of Linear/Conv, pooling, BatchNorm, "
                           "flatten/reshape, residual adds and concatenations)")


def _op_name(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"module {type(gm.get_submodule(node.target)).__name__} ({node.target!r})"
    if node.op == "call_method":
        return f"method .{node.target}()"
    t = node.target
    mod = getattr(t, "__module__", None) or ""
    return f"function {mod + '.' if mod else ''}{getattr(t, '__name__', repr(t))}"


def scope_of(node: fx.Node) -> str:
    """Path of the innermost module whose ``forward`` produced ``node`` ('' at the top)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    last = list(stack.values())[-1]
    path = last[0] if isinstance(last, tuple) else str(last)
    if node.op == "call_module" and path == node.target:  # the leaf itself
        paths = [v[0] if isinstance(v, tuple) else str(v) for v in stack.values()]
        return paths[-2] if len(paths) > 1 else ""
    return path


def op_base(node: fx.Node) -> str:
    """The name of the op a node came from, without fx's numeric suffix (``relu_3`` -> ``relu``)."""
    import re

    name = node.meta.get("xbar_name") or node.name
    return re.sub(r"_\d+$", "", name)


def unique_path(gm: fx.GraphModule, scope: str, base: str) -> str:
    """A free submodule path ``scope.base`` (``_1``, ``_2``, ... appended when taken)."""
    taken = {n for n, _ in gm.named_modules()}
    stem = f"{scope}.{base}" if scope else base
    path, k = stem, 0
    while path in taken:
        k += 1
        path = f"{stem}_{k}"
    return path


def _add_module(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    scope: nn.Module = gm
    for part in parent.split(".") if parent else []:
        if not hasattr(scope, part):
            scope.add_module(part, nn.Module())
        scope = getattr(scope, part)
    scope.add_module(name, module)


def _bind(node: fx.Node, names: tuple[str, ...], first: int = 1) -> dict[str, Any]:
    """``node``'s arguments after the first ``first`` as ``{name: value}``."""
    out = dict(zip(names, node.args[first:]))
    out.update({k: v for k, v in node.kwargs.items() if k in names})
    return out


def _is_tensor(a: Any, ints: set) -> bool:
    return isinstance(a, fx.Node) and a not in ints


# -- the pass ---------------------------------------------------------------------------------

class _Rewriter:
    def __init__(self, gm: fx.GraphModule, shapes: Callable[[], dict] | None) -> None:
        self.gm, self.graph = gm, gm.graph
        self.ints: set[fx.Node] = set()
        self._shapes_fn, self._shapes = shapes, None
        self.calls: dict[str, int] = {}

    def shapes(self, node: fx.Node) -> dict:
        if self._shapes is None:
            if self._shapes_fn is None:
                raise ConversionError(f"calibration: needed to resolve {_op_name(node, self.gm)} at "
                                      f"{source_of(node) or '?'} (the per-sample shape comes from example "
                                      "inputs); give calibration data")
            self._shapes = self._shapes_fn()
        return self._shapes

    def replace(self, node: fx.Node, fn: Callable[[], fx.Node] | fx.Node | None) -> None:
        if isinstance(fn, fx.Node) or fn is None:
            new = fn
        else:
            with self.graph.inserting_before(node):
                new = fn()
        if new is not None:
            new.meta = dict(node.meta)
            new.meta["xbar_name"] = op_base(node)
        node.replace_all_uses_with(new if new is not None else node.args[0])
        self.graph.erase_node(node)

    def module_node(self, node: fx.Node, module: nn.Module, base: str, arg: Any) -> fx.Node:
        path = unique_path(self.gm, scope_of(node), base)
        _add_module(self.gm, path, module)
        return self.graph.call_module(path, (arg,))

    def function_node(self, fn: Callable, args: tuple, kwargs: dict | None = None) -> fx.Node:
        return self.graph.call_function(fn, args, kwargs or {})

    # -- per kind ---------------------------------------------------------------------------
    def run(self) -> None:
        for node in list(self.graph.nodes):
            if node.op == "call_module":
                self.visit_module(node)
            elif node.op in ("call_function", "call_method"):
                self.visit_call(node)

    def visit_module(self, node: fx.Node) -> None:
        m = self.gm.get_submodule(node.target)
        if isinstance(m, CROSSBAR_TYPES) or any(is_stock(m, t) for t in SYNAPTIC):
            return
        if is_stock(m, nn.ReLU):
            count = self.calls.get(node.target, 0)
            self.calls[node.target] = count + 1
            if count or type(m) is not nn.ReLU:  # every call site its own (plain) ReLU module
                self.replace(node, lambda: self.module_node(node, nn.ReLU(), node.target.rpartition(".")[2],
                                                            node.args[0]))
            return
        if any(is_stock(m, t) for t in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                                          nn.Identity)):
            self.replace(node, None)
            return
        if any(is_stock(m, t) for t in (nn.Softmax, nn.LogSoftmax)):
            self.drop_softmax(node)
            return
        if any(is_stock(m, t) for t in (nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, *POOLS)):
            if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) and m.return_indices:
                raise _fail(node, "a max-pool that returns indices")
            if isinstance(m, nn.Flatten) and m.start_dim == 0:
                raise _fail(node, "nn.Flatten(start_dim=0) (it flattens the batch)")
            return
        if getattr(m, "weight", None) is not None or True:
            raise _fail(node, _op_name(node, self.gm))

    def visit_call(self, node: fx.Node) -> None:
        t, method = node.target, node.op == "call_method"
        a = node.args
        if t in _ASSERTS:
            self.graph.erase_node(node)
            return
        if (method and t in ("size", "dim")) or (not method and t is getattr and a[1] in ("shape", "ndim")):
            self.ints.add(node)
            return
        if not method and t in (operator.getitem, operator.mul, operator.floordiv, operator.eq) \
                and not any(_is_tensor(x, self.ints) for x in a):
            self.ints.add(node)
            return
        if (method and t in ("relu", "relu_")) or (not method and t in _RELU_FN) or self._is_clamp_relu(node):
            self.replace(node, lambda: self.module_node(node, nn.ReLU(), op_base(node), a[0]))
        elif (method and t in _DROP_METHODS) or (not method and t in _DROP_FN):
            self.replace(node, None)
        elif (method and t in ("softmax", "log_softmax")) or (not method and t in _SOFTMAX_FN):
            self.drop_softmax(node)
        elif (method and t == "flatten") or (not method and t is torch.flatten):
            self.flatten(node)
        elif (method and t in _RESHAPE_METHODS) or (not method and t in _RESHAPE_FN):
            self.reshape(node)
        elif not method and t in _POOL_FN:
            cls = _POOL_FN[t]
            kw = _bind(node, _POOL_ARGS[cls])
            if kw.get("return_indices"):
                raise _fail(node, "a max-pool that returns indices")
            kw.pop("return_indices", None)
            self.replace(node, lambda: self.module_node(node, cls(**kw), op_base(node), a[0]))
        elif not method and t in _SYN_FN:
            self.synaptic(node, _SYN_FN[t])
        elif (method and t in ("add", "add_", "sub", "sub_")) or (not method and t in _ADD_FN | _SUB_FN):
            self.merge(node, sub=(t in _SUB_FN) or t in ("sub", "sub_"))
        elif (method and t in ("mul", "mul_", "div", "div_")) or (not method and t in _MUL_FN | _DIV_FN | {operator.neg}):
            self.scale(node, div=(t in _DIV_FN) or t in ("div", "div_"))
        elif (method and t == "neg") or (not method and t is torch.neg):
            self.replace(node, lambda: self.function_node(ops.scale, (a[0], -1.0)))
        elif not method and t in _CAT_FN:
            self.cat(node)
        elif (method and t == "mean") or (not method and t is torch.mean):
            self.mean(node)
        elif (method and t in ("permute", "transpose")) or (not method and t in (torch.permute, torch.transpose)):
            self.permute(node)
        elif not method and t in ops.CANONICAL:
            return
        else:
            raise _fail(node, _op_name(node, self.gm))

    # -- helpers per op ------------------------------------------------------------------------
    def _is_clamp_relu(self, node: fx.Node) -> bool:
        if not ((node.op == "call_method" and node.target in ("clamp", "clamp_", "clamp_min", "clamp_min_"))
                or (node.op == "call_function" and node.target in (torch.clamp, torch.clamp_min))):
            return False
        low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
        high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
        return low == 0 and high is None

    def drop_softmax(self, node: fx.Node) -> None:
        users = list(node.users)
        if len(users) != 1 or users[0].op != "output":
            raise _fail(node, f"{_op_name(node, self.gm)} before the output (only a trailing softmax is dropped)")
        self.replace(node, None)

    def flatten(self, node: fx.Node) -> None:
        kw = _bind(node, ("start_dim", "end_dim"))
        start, end = kw.get("start_dim", 0), kw.get("end_dim", -1)
        if start == 0:
            raise _fail(node, f"{_op_name(node, self.gm)} from dimension 0 (it flattens the batch)")
        self.replace(node, lambda: self.module_node(node, nn.Flatten(start, end), op_base(node), node.args[0]))

    def reshape(self, node: fx.Node) -> None:
        t = node.target
        if t in ("view", "reshape", torch.reshape):
            dims = node.args[1:] if node.op == "call_method" else node.args[1:]
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = tuple(dims[0])
            if len(dims) == 2 and dims[1] == -1 and self._is_batch(dims[0]):
                self.replace(node, lambda: self.module_node(node, nn.Flatten(), op_base(node), node.args[0]))
                return
        shapes = self.shapes(node)
        if node.name not in shapes or node.args[0].name not in shapes:
            raise _fail(node, f"{_op_name(node, self.gm)} (its shape could not be measured)")
        per = [shapes[node.name][k] for k in range(len(shapes[node.name]))]
        self.replace(node, lambda: self.function_node(ops.reshape, (node.args[0], tuple(per[0][1:]))))

    def _is_batch(self, d: Any) -> bool:
        if d == -1:
            return True
        if not isinstance(d, fx.Node):
            return False
        if d.op == "call_method" and d.target == "size" and len(d.args) > 1 and d.args[1] == 0:
            return True
        return (d.op == "call_function" and d.target is operator.getitem and d.args[1] == 0
                and isinstance(d.args[0], fx.Node)
                and ((d.args[0].op == "call_function" and d.args[0].target is getattr and d.args[0].args[1] == "shape")
                     or (d.args[0].op == "call_method" and d.args[0].target == "size" and len(d.args[0].args) == 1)))

    def synaptic(self, node: fx.Node, cls: type) -> None:
        names = ("weight", "bias") if cls is nn.Linear else ("weight", "bias", "stride", "padding", "dilation", "groups")
        kw = _bind(node, names)
        w, b = kw.get("weight"), kw.get("bias")
        if not (isinstance(w, fx.Node) and w.op == "get_attr") or not (b is None or (isinstance(b, fx.Node)
                                                                                      and b.op == "get_attr")):
            raise _fail(node, f"{_op_name(node, self.gm)} whose weight is not a parameter of the model")
        weight = self.gm.get_parameter(w.target) if w.target in dict(self.gm.named_parameters()) else None
        bias = self.gm.get_parameter(b.target) if b is not None and b.target in dict(self.gm.named_parameters()) else None
        if weight is None or (b is not None and bias is None):
            raise _fail(node, f"{_op_name(node, self.gm)} on a tensor that is not an nn.Parameter")
        if cls is nn.Linear:
            layer: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        else:
            groups = kw.get("groups", 1)
            layer = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride=kw.get("stride", 1),
                        padding=kw.get("padding", 0), dilation=kw.get("dilation", 1), groups=groups,
                        bias=bias is not None)
        layer.weight = weight
        if bias is not None:
            layer.bias = bias
        owner = w.target.rpartition(".")[0]
        base = owner.rpartition(".")[2] or cls.__name__.lower()
        scope = owner.rpartition(".")[0]
        self.replace(node, lambda: self.module_node_at(scope, base, layer, node.args[0]))

    def module_node_at(self, scope: str, base: str, module: nn.Module, arg: Any) -> fx.Node:
        path = f"{scope}.{base}" if scope else base
        owner = self.gm.get_submodule(path) if path in dict(self.gm.named_modules()) else None
        if owner is not None and (isinstance(owner, SYNAPTIC) or any(True for _ in owner.children())):
            path = unique_path(self.gm, scope, base)
        elif owner is not None:  # a module whose forward only ran this functional layer
            parent = self.gm.get_submodule(scope) if scope else self.gm
            delattr(parent, base)
        _add_module(self.gm, path, module)
        return self.graph.call_module(path, (arg,))

    def merge(self, node: fx.Node, sub: bool) -> None:
        a = node.args
        x, y = a[0], a[1] if len(a) > 1 else node.kwargs.get("other")
        alpha = node.kwargs.get("alpha", a[2] if len(a) > 2 else 1)
        if not (_is_tensor(x, self.ints) and _is_tensor(y, self.ints)):
            raise _fail(node, f"adding a constant ({_op_name(node, self.gm)} with a number)")
        coeffs = (1.0, -float(alpha) if sub else float(alpha))
        self.replace(node, lambda: self.function_node(ops.merge, (x, y), {"coeffs": coeffs}))

    def scale(self, node: fx.Node, div: bool) -> None:
        a = node.args
        if node.target is operator.neg:
            self.replace(node, lambda: self.function_node(ops.scale, (a[0], -1.0)))
            return
        x, y = a[0], a[1] if len(a) > 1 else node.kwargs.get("other")
        tensors = [v for v in (x, y) if _is_tensor(v, self.ints)]
        consts = [v for v in (x, y) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(tensors) != 1 or len(consts) != 1 or (div and not _is_tensor(x, self.ints)):
            what = "division by a tensor" if div else "multiplication of two tensors"
            raise _fail(node, f"{what} ({_op_name(node, self.gm)})")
        c = float(consts[0])
        if div and c == 0:
            raise _fail(node, "division by zero")
        factor = 1.0 / c if div else c
        if factor == 0:
            raise _fail(node, "multiplication by zero")
        self.replace(node, lambda: self.function_node(ops.scale, (tensors[0], factor)))

    def cat(self, node: fx.Node) -> None:
        xs = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim == 0:
            raise _fail(node, "concatenation along the batch dimension")
        self.replace(node, lambda: self.function_node(ops.cat, tuple(xs), {"dim": int(dim)}))

    def mean(self, node: fx.Node) -> None:
        kw = _bind(node, ("dim", "keepdim"))
        dims = kw.get("dim")
        if dims is None:
            raise _fail(node, "a mean over every dimension (the batch included)")
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if 0 in dims:
            raise _fail(node, "a mean over the batch dimension")
        self.replace(node, lambda: self.function_node(ops.mean, (node.args[0], dims, bool(kw.get("keepdim", False)))))

    def permute(self, node: fx.Node) -> None:
        if node.target in ("transpose", torch.transpose):
            d0, d1 = node.args[1], node.args[2]
            shapes = self.shapes(node)
            ndim = len(shapes[node.args[0].name][0])
            d0, d1 = d0 % ndim, d1 % ndim
            dims = list(range(ndim))
            dims[d0], dims[d1] = dims[d1], dims[d0]
        else:
            dims = list(node.args[1:]) if node.op == "call_method" else list(node.args[1])
            if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
                dims = list(dims[0])
            dims = [d % len(dims) for d in dims]
        if dims[0] != 0:
            raise _fail(node, f"{_op_name(node, self.gm)} that moves the batch dimension")
        self.replace(node, lambda: self.function_node(ops.permute, (node.args[0], tuple(dims))))


def _example_shapes(gm: fx.GraphModule, example: torch.Tensor) -> dict[str, list[tuple]]:
    """Each node's output shape on example batches of 2 and 3 samples: ``{name: [shape2, shape3]}``,
    kept only for nodes whose leading dimension is the batch in both."""
    from torch.fx.passes.shape_prop import ShapeProp

    found: dict[str, list[tuple]] = {}
    for n in (2, 3):
        x = example[:1].expand(n, *example.shape[1:]).contiguous()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            ShapeProp(gm).propagate(x)
        for node in gm.graph.nodes:
            meta = node.meta.get("tensor_meta")
            if meta is not None and hasattr(meta, "shape"):
                found.setdefault(node.name, []).append(tuple(meta.shape))
    out = {}
    for name, (s2, s3) in ((k, v) for k, v in found.items() if len(v) == 2):
        if s2 and s3 and s2[0] == 2 and s3[0] == 3 and s2[1:] == s3[1:]:
            out[name] = [s2]
    return out


def canonicalize(gm: fx.GraphModule, example: torch.Tensor | None = None) -> fx.GraphModule:
    """Rewrite every op into the normalised vocabulary (module docstring).

    Args:
        gm: a captured graph (:func:`~xbar.convert.capture.capture`).
        example: an input batch, used only when a reshape needs measured shapes.

    Raises:
        ConversionError: naming the op and source line of anything that has no spiking form.
    """
    shapes = (lambda: _example_shapes(gm, example)) if example is not None else None
    _Rewriter(gm, shapes).run()
    for node in list(gm.graph.nodes):
        if node.op == "placeholder" and not node.users and node is not next(iter(gm.graph.nodes)):
            gm.graph.erase_node(node)
    _clean(gm)
    return gm


def _clean(gm: fx.GraphModule) -> None:
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def swap_maxpool_relu(gm: fx.GraphModule) -> fx.GraphModule:
    """``relu(maxpool(x))`` -> ``maxpool(relu(x))`` (equal: both are monotonic), so that every
    max-pool reads spikes once ReLUs become IF layers."""
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), (nn.MaxPool1d, nn.MaxPool2d)):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" or not isinstance(gm.get_submodule(users[0].target), nn.ReLU):
            continue
        relu = users[0]
        src = node.args[0]
        relu.replace_all_uses_with(node)
        node.args = (relu,)
        relu.args = (src,)
        relu.prepend(node) if False else node.prepend(relu)
    _clean(gm)
    return gm
