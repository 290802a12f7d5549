"""Input encoders: images in ``[0, 1]`` to ``T`` steps of crossbar row drive.

``PoissonEncoder``: at every step each pixel spikes with probability ``max_rate * pixel``
(binary row drive, so the crossbar does accumulates). ``ConstantEncoder``: the pixel value
itself drives the row at every step (an analog current, so the crossbar does multiply-
accumulates).
"""

from __future__ import annotations

import torch


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor in [0, 1], got dtype {images.dtype}")
    if images.numel() and not torch.isfinite(images).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


def _check_timesteps(timesteps: int) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps: must be an integer >= 1, got {timesteps!r}")
    return timesteps


class PoissonEncoder:
    """Poisson (Bernoulli-per-step) rate coding.

    Args:
        max_rate: spike probability per step of a pixel of value 1, in ``(0, 1]``.
        generator: ``torch.Generator`` for the random draws (same seed, same spikes).

    Shape:
        ``images [B, ...]`` in ``[0, 1]`` -> spikes ``[T, B, ...]`` in ``{0, 1}``.
    """

    binary = True

    def __init__(self, max_rate: float = 1.0, generator: torch.Generator | None = None) -> None:
        if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) or not 0 < max_rate <= 1:
            raise ValueError(f"max_rate: must be in (0, 1], got {max_rate!r}")
        self.max_rate = float(max_rate)
        self.generator = generator

    def __call__(self, images: torch.Tensor, timesteps: int) -> torch.Tensor:
        """Encode ``images`` into ``timesteps`` steps of spikes."""
        _check_images(images)
        _check_timesteps(timesteps)
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"images: Poisson input must lie in [0, 1], got range "
                f"[{images.min().item():.4g}, {images.max().item():.4g}]")
        p = images * self.max_rate
        gen = self.generator
        if gen is not None and gen.device != images.device:
            raise ValueError(f"generator: lives on {gen.device}, images on {images.device}")
        u = torch.rand((timesteps, *images.shape), generator=gen, device=images.device, dtype=images.dtype)
        return (u < p).to(images.dtype)

    def __repr__(self) -> str:
        return f"PoissonEncoder(max_rate={self.max_rate})"


class ConstantEncoder:
    """Constant-current coding: the image drives the rows unchanged at every step.

    Args:
        gain: multiplier on the pixel value (row drive per unit pixel), > 0.

    Shape:
        ``images [B, ...]`` -> ``[T, B, ...]`` (an expanded view, no copy).
    """

    binary = False

    def __init__(self, gain: float = 1.0) -> None:
        if not gain > 0:
            raise ValueError(f"gain: must be > 0, got {gain!r}")
        self.gain = float(gain)

    def __call__(self, images: torch.Tensor, timesteps: int) -> torch.Tensor:
        """Repeat ``gain * images`` over ``timesteps`` steps."""
        _check_images(images)
        _check_timesteps(timesteps)
        x = images * self.gain if self.gain != 1.0 else images
        return x.unsqueeze(0).expand(timesteps, *x.shape)

    def __repr__(self) -> str:
        return f"ConstantEncoder(gain={self.gain})"
