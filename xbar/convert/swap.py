"""``to_crossbar``: swap a model's ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers for crossbar layers.

A layer is swapped when it is one of these torch layers, or a subclass whose ``forward`` is
the stock torch one (spikingjelly's ``layer.Linear``, a user's ``class MyLinear(nn.Linear):
pass``; :func:`~xbar.convert.capture.stock_base`), and the ``include`` / ``exclude`` selection
lets it. Every other module holding a weight tensor stays float, and one ``UserWarning``
lists them all with the reason, so that nothing is silently left off the crossbars.
"""

from __future__ import annotations

import copy
import warnings
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable, NamedTuple

from torch import nn

from ..device import DeviceProfile
from ..layers import CROSSBAR_TYPES, CrossbarConv1d, CrossbarConv2d, CrossbarLinear, _resolve_profile
from ..mapping import check_mapping
from ..validation import check_parameters_finite
from .capture import is_stock

__all__ = ["to_crossbar"]

# torch layer -> the constructor of its crossbar layer (first match wins)
_SWAPS: tuple[tuple[type, Callable[..., nn.Module]], ...] = (
    (nn.Linear, CrossbarLinear.from_linear),
    (nn.Conv1d, CrossbarConv1d.from_conv1d),
    (nn.Conv2d, CrossbarConv2d.from_conv2d),
)

# Hold per-channel affine parameters, not synaptic weights: never reported as left in float.
_NOT_WEIGHT_LAYERS: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.PReLU,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


class _Selection(NamedTuple):
    """A parsed ``include`` / ``exclude``: path patterns and module types."""

    patterns: tuple[str, ...]
    types: tuple[type, ...]

    def matches(self, path: str, module: nn.Module) -> bool:
        return isinstance(module, self.types) or any(fnmatchcase(path, p) for p in self.patterns)


def to_crossbar(model: nn.Module, device: DeviceProfile | str, inplace: bool = False,
                mapping: str = "differential", include: Iterable[str | type] | str | type | None = None,
                exclude: Iterable[str | type] | str | type | None = None) -> nn.Module:
    """Swap every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` for a programmed crossbar layer.

    Subclasses of those layers are swapped too when their ``forward`` is the stock torch one
    (the subclass's extra attributes are not carried over); a subclass with its own
    ``forward`` stays float. Crossbar layers are left as they are.

    ``include`` and ``exclude`` select by module path and by type. Each is a module-path
    pattern (``fnmatch`` style, matched against the names of ``model.named_modules()``:
    ``"features.0"``, ``"classifier.*"``), a module type (matched with ``isinstance``), or an
    iterable of them. A pattern or type that matches a module applies to everything inside it
    (``exclude="classifier"`` keeps the whole classifier float). With ``include``, only the
    layers it selects are swapped; ``exclude`` wins over ``include``.

    After the swap, if any module holding a weight tensor stays float, one ``UserWarning``
    lists each with its path, type and reason: ``excluded``, ``not included``, ``custom
    forward``, or ``unsupported type`` (``Conv3d``, ``ConvTranspose2d``, ``Embedding``,
    ``MultiheadAttention``, a user module with its own weight parameter, ...). Norm layers
    and ``PReLU`` hold per-channel affine parameters, not weights, and are not listed.

    Args:
        model: any module; a bare ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` is converted
            itself (and returned as a new module even with ``inplace``).
        device: device profile, shipped profile name, or YAML path.
        inplace: modify ``model`` instead of a deep copy.
        mapping: ``"differential"`` (default) or ``"clip"``.
        include: the layers to swap (default: all); see above.
        exclude: the layers to keep float (default: none); see above.

    Returns:
        The converted model (a copy unless ``inplace``). Each crossbar layer keeps the float
        layer's master weight, bias, ``requires_grad`` and train/eval mode. Inside a
        :class:`~xbar.SpikingNetwork`, the crossbars that feed IF layers are read as currents
        and those thresholds become currents.

    Raises:
        DeviceProfileError: unknown ``device`` name (close names suggested) or a bad file.
        TypeError: an ``include`` / ``exclude`` entry that is neither a string nor a module type.
        ValueError: unknown ``mapping``, or a NaN / infinite parameter of ``model`` (named).

    Warns:
        UserWarning: once, listing every weight layer left in float and why; and for every
            ``include`` / ``exclude`` pattern that matches no module.
    """
    profile = _resolve_profile(device)
    check_mapping(mapping)
    inc = None if include is None else _selection(include, "include")
    exc = _selection(() if exclude is None else exclude, "exclude")
    check_parameters_finite(model, "model")
    if not inplace:
        model = copy.deepcopy(model)
    paths = [n for n, _ in model.named_modules()]
    for sel, name in ((inc, "include"), (exc, "exclude")):
        for pattern in sel.patterns if sel is not None else ():
            if not any(fnmatchcase(p, pattern) for p in paths):
                warnings.warn(f"to_crossbar: {name} pattern {pattern!r} matches no module of the model "
                              f"(paths look like {', '.join(repr(p) for p in paths[1:4])})", UserWarning,
                              stacklevel=2)
    left: list[str] = []
    swapped = _convert(model, "", profile, mapping, inc, exc, inc is None, False, left)
    if left:
        warnings.warn(f"to_crossbar: {len(left)} layer(s) with weights stay in float: {'; '.join(left)}. "
                      "Convert them yourself, or adjust include=/exclude=", UserWarning, stacklevel=2)
    if swapped is not None:
        return swapped
    for m in model.modules():
        if getattr(m, "accepts_observers", False) and hasattr(m, "_rewire"):
            m._rewire()
    return model


def _selection(value: Any, name: str) -> _Selection:
    """Parse ``include`` / ``exclude``: a string, a module type, or an iterable of them."""
    items = [value] if isinstance(value, (str, type)) else value
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"{name}: expected module-path patterns (str) and/or nn.Module subclasses, "
                        f"got {type(value).__name__} {value!r}") from None
    for item in items:
        if not isinstance(item, str) and not (isinstance(item, type) and issubclass(item, nn.Module)):
            raise TypeError(f"{name}: expected module-path patterns (str) and/or nn.Module subclasses, "
                            f"got {type(item).__name__} {item!r}")
    return _Selection(tuple(i for i in items if isinstance(i, str)), tuple(i for i in items if isinstance(i, type)))


def _convert(module: nn.Module, path: str, profile: DeviceProfile, mapping: str, inc: _Selection | None,
             exc: _Selection, included: bool, excluded: bool, left: list[str]) -> nn.Module | None:
    """The crossbar layer replacing ``module``, or None after converting inside it.

    ``included`` / ``excluded`` say whether an enclosing module was selected; every weight
    layer that stays float is appended to ``left`` as ``"path (Type: reason)"``.
    """
    if isinstance(module, CROSSBAR_TYPES):
        return None
    included = included or (inc is not None and inc.matches(path, module))
    excluded = excluded or exc.matches(path, module)
    base = next(((b, make) for b, make in _SWAPS if isinstance(module, b)), None)
    reason = None
    if base is not None:
        reason = ("excluded" if excluded else "not included" if not included
                  else None if is_stock(module, base[0]) else "custom forward")
        if reason is None:
            new = base[1](module, profile, mapping)
            return new.train(module.training)
    elif _holds_weight(module):
        reason = "unsupported type"
    if reason is not None:
        left.append(f"{path or '<model>'} ({type(module).__name__}: {reason})")
        if base is None and type(module).__module__.startswith("torch.nn"):
            return None  # a torch layer may read its children's weights directly (MultiheadAttention.out_proj)
    for name, child in list(module.named_children()):
        new = _convert(child, f"{path}.{name}" if path else name, profile, mapping, inc, exc, included,
                       excluded, left)
        if new is not None:
            setattr(module, name, new)
    return None


def _holds_weight(module: nn.Module) -> bool:
    """``module`` has a weight parameter of its own (``weight``, ``in_proj_weight``,
    ``weight_ih_l0``, ...) and is not a norm / PReLU layer."""
    if isinstance(module, _NOT_WEIGHT_LAYERS):
        return False
    return any(p is not None and "weight" in name for name, p in module._parameters.items())
