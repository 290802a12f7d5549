"""A CNN with batch normalisation and max-pooling for 1x28x28 images."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BNCNN", "bn_cnn"]


class BNCNN(nn.Module):
    """Two Conv-BN-ReLU-MaxPool blocks and a two-layer classifier, every layer with a bias.

    Layers (``w`` = ``width``)::

        features.0    Conv2d(1, w, 3, padding=1)       [B, w, 28, 28]
        features.1    BatchNorm2d(w)
        features.2    ReLU
        features.3    MaxPool2d(2)                     [B, w, 14, 14]
        features.4    Conv2d(w, 2w, 3, padding=1)      [B, 2w, 14, 14]
        features.5    BatchNorm2d(2w)
        features.6    ReLU
        features.7    MaxPool2d(2)                     [B, 2w, 7, 7]
        classifier.0  Flatten                          [B, 2w*49]
        classifier.1  Linear(2w*49, hidden)
        classifier.2  BatchNorm1d(hidden)
        classifier.3  ReLU
        classifier.4  Linear(hidden, classes)          [B, classes]

    With the defaults (``width=32``, ``hidden=128``, 10 classes) it has 422,090 trainable
    parameters (BatchNorm running statistics are buffers, not counted). The Conv2d/Linear
    biases are redundant in front of BatchNorm while training, but they are kept on purpose:
    folding BatchNorm into the preceding layer (as ``xbar.to_snn`` does) must carry them.

    Args:
        classes: output classes.
        width: channels of the first convolution; the second has ``2 * width``.
        hidden: units of the hidden Linear layer.

    Shape:
        input ``[B, 1, 28, 28]``, output logits ``[B, classes]``.
    """

    def __init__(self, classes: int = 10, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, hidden, bias=True),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, classes]`` for images ``[B, 1, 28, 28]``."""
        return self.classifier(self.features(x))


def bn_cnn(classes: int = 10, width: int = 32, hidden: int = 128) -> BNCNN:
    """CNN of Conv-BN-ReLU-MaxPool blocks with biases (zoo name ``"bn-cnn"``).

    See :class:`BNCNN` for the layer list; 422,090 parameters with the defaults. Trained 3 epochs
    with Adam (lr 1e-3, batch 64, seed 0) by ``python -m xbar.experiments.graph_acceptance``, it
    reached 99.06% on the MNIST test set.

    Args:
        classes: output classes.
        width: channels of the first convolution (the second has ``2 * width``).
        hidden: units of the hidden Linear layer.

    Returns:
        :class:`BNCNN`; input ``[B, 1, 28, 28]``, output logits ``[B, classes]``.
    """
    return BNCNN(classes=classes, width=width, hidden=hidden)
