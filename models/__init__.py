"""Model zoo: small bias-free networks that convert to crossbars and spiking networks.

Every model is a plain ``nn.Sequential`` of Flatten, Linear, Conv2d, ReLU and AvgPool2d, the
layers that ``xbar.to_crossbar`` and ``xbar.to_snn`` convert.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .lenet import lenet
from .mlp import mlp

__all__ = ["MODELS", "build_model", "lenet", "mlp"]

#: Model builders by name.
MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "lenet": lenet}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name.

    Args:
        name: a key of :data:`MODELS` (``"mlp"`` or ``"lenet"``).
        **kwargs: passed to the builder, e.g. ``hidden=200`` for ``"mlp"``.

    Returns:
        The freshly initialised model.

    Raises:
        ValueError: ``name`` is not a known model.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"build_model: unknown model name={name!r}; known: {known}") from None
    return builder(**kwargs)
