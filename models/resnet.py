"""A small residual CNN (ResNet-style basic blocks) for 1x28x28 images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "ResCNN", "res_cnn"]


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``conv1`` is a 3x3 convolution with ``stride``, ``conv2`` a 3x3 convolution with stride 1,
    both bias-free and followed by BatchNorm. The shortcut is ``nn.Identity`` when the input
    and output shapes match (``stride == 1`` and ``in_channels == out_channels``), and otherwise
    a projection: a bias-free 1x1 convolution with ``stride`` followed by BatchNorm.

    The first ReLU is the module ``relu1``; the ReLU after the addition is ``F.relu`` in
    :meth:`forward`, so both forms appear in a traced graph.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of ``conv1`` and of the projection shortcut.

    Shape:
        input ``[B, in_channels, H, W]``, output ``[B, out_channels, ceil(H/stride),
        ceil(W/stride)]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output ``relu(residual(x) + shortcut(x))``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResCNN(nn.Module):
    """Stem, three basic blocks, global average pooling, Linear head.

    Layers (``w`` = ``width``)::

        stem.0    Conv2d(1, w, 3, padding=1, bias=False)   [B, w, 28, 28]
        stem.1    BatchNorm2d(w)
        stem.2    ReLU
        layer1    BasicBlock(w, 2w, stride=2)  projection  [B, 2w, 14, 14]
        layer2    BasicBlock(2w, 2w)           identity    [B, 2w, 14, 14]
        layer3    BasicBlock(2w, 4w, stride=2) projection  [B, 4w, 7, 7]
        (F.adaptive_avg_pool2d(x, 1), torch.flatten(x, 1)) [B, 4w]
        fc        Linear(4w, classes)                      [B, classes]

    With the defaults (``width=16``, 10 classes) it has 91,642 trainable parameters. Only
    ``fc`` has a bias; the convolutions are bias-free in front of BatchNorm.

    Args:
        classes: output classes.
        width: channels of the stem (the blocks have ``2 * width`` and ``4 * width``).

    Shape:
        input ``[B, 1, 28, 28]``, output logits ``[B, classes]``.
    """

    def __init__(self, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.layer1 = BasicBlock(width, 2 * width, stride=2)
        self.layer2 = BasicBlock(2 * width, 2 * width)
        self.layer3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, classes]`` for images ``[B, 1, 28, 28]``."""
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.fc(x)


def res_cnn(classes: int = 10, width: int = 16) -> ResCNN:
    """Small residual CNN (zoo name ``"res-cnn"``).

    See :class:`ResCNN` for the layer list; 91,642 parameters with the defaults. Trained 3 epochs
    with Adam (lr 1e-3, batch 64, seed 0) by ``python -m xbar.experiments.graph_acceptance``, it
    reached 99.06% on the MNIST test set.

    Args:
        classes: output classes.
        width: channels of the stem (the blocks have ``2 * width`` and ``4 * width``).

    Returns:
        :class:`ResCNN`; input ``[B, 1, 28, 28]``, output logits ``[B, classes]``.
    """
    return ResCNN(classes=classes, width=width)
