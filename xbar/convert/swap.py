"""``to_crossbar``: swap a model's ``nn.Linear`` / ``nn.Conv2d`` layers for crossbar layers."""

from __future__ import annotations

import copy

from torch import nn

from ..device import DeviceProfile
from ..layers import CrossbarConv2d, CrossbarLinear, _resolve_profile
from ..mapping import check_mapping
from ..validation import check_parameters_finite

__all__ = ["to_crossbar"]


def to_crossbar(model: nn.Module, device: DeviceProfile | str, inplace: bool = False,
                mapping: str = "differential") -> nn.Module:
    """Swap every ``nn.Linear`` and ``nn.Conv2d`` (exact type) for a programmed crossbar layer.

    Args:
        model: any module; a bare ``nn.Linear`` / ``nn.Conv2d`` is converted itself.
        device: device profile, shipped profile name, or YAML path.
        inplace: modify ``model`` instead of a deep copy.
        mapping: ``"differential"`` (default) or ``"clip"``.

    Returns:
        The converted model (a copy unless ``inplace``). Subclasses of the torch layers,
        crossbar layers included, are left alone. Inside a :class:`~xbar.SpikingNetwork`, the
        crossbars that feed IF layers are read as currents and those thresholds become currents.

    Raises:
        DeviceProfileError: unknown ``device`` name (close names suggested) or a bad file.
        ValueError: unknown ``mapping``, or a NaN / infinite parameter of ``model`` (named).
    """
    profile = _resolve_profile(device)
    check_mapping(mapping)
    check_parameters_finite(model, "model")
    if not inplace:
        model = copy.deepcopy(model)
    swapped = _swap(model, profile, mapping)
    if swapped is not None:
        return swapped
    _swap_children(model, profile, mapping)
    for m in model.modules():
        if getattr(m, "accepts_observers", False) and hasattr(m, "_rewire"):
            m._rewire()
    return model


def _swap_children(model: nn.Module, profile: DeviceProfile, mapping: str) -> None:
    for name, child in list(model.named_children()):
        new = _swap(child, profile, mapping)
        if new is not None:
            setattr(model, name, new)
        else:
            _swap_children(child, profile, mapping)


def _swap(module: nn.Module, profile: DeviceProfile, mapping: str) -> nn.Module | None:
    if type(module) is nn.Linear:
        return CrossbarLinear.from_linear(module, profile, mapping)
    if type(module) is nn.Conv2d:
        return CrossbarConv2d.from_conv2d(module, profile, mapping)
    return None
