"""The 784-100-10 bias-free MLP of the EE 518 study."""

from __future__ import annotations

from torch import nn

__all__ = ["mlp"]


def mlp(
    hidden: int = 100, in_features: int = 784, classes: int = 10, bias: bool = False
) -> nn.Sequential:
    """Two-layer perceptron: Flatten, Linear, ReLU, Linear.

    With the defaults this is the EE 518 study's 784-100-10 network without biases, which maps
    onto two crossbars and one layer of IF neurons.

    Args:
        hidden: hidden units.
        in_features: input size after flattening (784 for 1x28x28 images).
        classes: output classes.
        bias: give the Linear layers biases.

    Returns:
        ``nn.Sequential``; input ``[B, ...]`` with ``in_features`` elements per sample,
        output logits ``[B, classes]``.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden, bias=bias),
        nn.ReLU(),
        nn.Linear(hidden, classes, bias=bias),
    )
