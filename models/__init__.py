"""Model zoo: small networks for 1x28x28 images that convert to crossbars and spiking networks.

- ``"mlp"`` (:func:`mlp`) and ``"lenet"`` (:func:`lenet`): plain ``nn.Sequential`` models of
  Flatten, Linear, Conv2d, ReLU and AvgPool2d, bias-free by default (``bias=True`` adds
  biases).
- ``"bn-cnn"`` (:func:`bn_cnn`): an ``nn.Module`` with Conv2d-BatchNorm2d-ReLU-MaxPool2d blocks
  and a Linear-BatchNorm1d-ReLU-Linear classifier; every Conv2d and Linear has a bias.
- ``"res-cnn"`` (:func:`res_cnn`): an ``nn.Module`` with residual :class:`BasicBlock` s
  (BatchNorm, identity and 1x1-projection shortcuts joined by an addition, ``F.relu`` in the
  blocks' ``forward``), global average pooling and a Linear head.

``xbar.to_crossbar`` swaps the Linear and Conv2d layers of any of them. ``xbar.to_snn``
converts them as graphs: it traces the model with ``torch.fx``, folds BatchNorm into the
preceding layer, and turns ReLU (module or functional) into IF neurons, max-pooling into a
spiking max-pool and residual additions into merges of rescaled inputs.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .cnn import BNCNN, bn_cnn
from .lenet import lenet
from .mlp import mlp
from .resnet import BasicBlock, ResCNN, res_cnn

__all__ = [
    "BNCNN",
    "MODELS",
    "BasicBlock",
    "ResCNN",
    "bn_cnn",
    "build_model",
    "lenet",
    "mlp",
    "res_cnn",
]

#: Model builders by name.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "lenet": lenet,
    "bn-cnn": bn_cnn,
    "res-cnn": res_cnn,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name.

    Args:
        name: a key of :data:`MODELS` (``"mlp"``, ``"lenet"``, ``"bn-cnn"`` or ``"res-cnn"``).
        **kwargs: passed to the builder, e.g. ``hidden=200`` for ``"mlp"`` or ``width=8`` for
            ``"res-cnn"``.

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
