"""A LeNet-5-style CNN for 1x28x28 images, built from crossbar- and SNN-friendly layers."""

from __future__ import annotations

from torch import nn

__all__ = ["lenet"]


def lenet(classes: int = 10, bias: bool = False) -> nn.Sequential:
    """LeNet-5-style CNN using only Conv2d, ReLU, AvgPool2d, Flatten and Linear.

    Layers: Conv2d(1, 6, 5, padding=2) -> ReLU -> AvgPool2d(2) -> Conv2d(6, 16, 5) -> ReLU ->
    AvgPool2d(2) -> Flatten -> Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU ->
    Linear(84, classes). Average pooling (not max) keeps the network convertible to
    integrate-and-fire neurons.

    Args:
        classes: output classes.
        bias: give the Conv2d and Linear layers biases.

    Returns:
        ``nn.Sequential``; input ``[B, 1, 28, 28]``, output logits ``[B, classes]``.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2, bias=bias),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5, bias=bias),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, bias=bias),
        nn.ReLU(),
        nn.Linear(120, 84, bias=bias),
        nn.ReLU(),
        nn.Linear(84, classes, bias=bias),
    )
