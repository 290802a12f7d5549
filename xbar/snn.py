"""``SpikingNetwork``: a converted (or hand-built) body run over ``T`` timesteps.

The body is a flat sequence of stages: synaptic stages (crossbar or float ``Linear`` /
``Conv2d``, ``AvgPool2d``, ``Flatten``) and :class:`~xbar.neurons.IFNeuron` layers. It runs in
multi-step form: a synaptic stage sees all ``T`` timesteps of its input at once (one matrix
product over ``[T*B, ...]``, exact because the stage is stateless), and each IF layer scans over
``T``. This equals running the whole network one timestep at a time (``tests/test_snn.py``).

Inside a network built by :func:`xbar.to_snn` from crossbar layers, a crossbar stage feeding an
IF layer outputs column currents (amperes) and that IF layer's threshold is a current,
``theta = lambda * scale * V_read`` with ``lambda`` the threshold in weight units
(``IFNeuron.weight_threshold``). The output layer is read in weight units; the logits are its
output averaged over ``T``.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from .encoding import PoissonEncoder, _check_timesteps
from .layers import CROSSBAR_TYPES
from .neurons import IFNeuron


class CurrentReadout(nn.Module):
    """Reads a crossbar layer as column currents (amperes) instead of weight units.

    Args:
        layer: a :class:`~xbar.CrossbarLinear` or :class:`~xbar.CrossbarConv2d`.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, CROSSBAR_TYPES):
            raise TypeError(f"layer: expected a crossbar layer, got {type(layer).__name__}")
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Column currents, amperes."""
        return self.layer.currents(x)

    def current_scale(self) -> torch.Tensor:
        """Amperes per weight unit of the wrapped layer."""
        return self.layer.current_scale()


class _Body(nn.Module):
    """The stages, run in multi-step form (the meter counts samples at this module's input)."""

    def __init__(self, stages: Iterable[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x_seq: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Run ``x_seq`` ``[T, B, ...]`` through the first ``upto`` stages (all by default)."""
        t, b = x_seq.shape[:2]
        h = x_seq
        for stage in list(self.stages)[:upto]:
            if isinstance(stage, IFNeuron):
                h = stage(h) if stage.step_mode == "m" else torch.stack([stage(h[i]) for i in range(t)])
            else:
                y = stage(h.reshape(t * b, *h.shape[2:]))
                h = y.reshape(t, b, *y.shape[1:])
        return h


class SpikingNetwork(nn.Module):
    """A spiking network: encoder, then the body over ``timesteps`` steps, logits averaged.

    Args:
        stages: the body's stages in order (synaptic modules and :class:`IFNeuron` layers).
        timesteps: number of simulation steps ``T`` (>= 1).
        encoder: turns images ``[B, ...]`` into ``[T, B, ...]`` row drive
            (default ``PoissonEncoder(max_rate=1.0)``).

    Shape:
        ``forward(images)``: ``[B, ...]`` -> logits ``[B, classes]``;
        ``run(spike_seq)``: ``[T, B, ...]`` -> logits ``[B, classes]``.
    """

    def __init__(self, stages: Iterable[nn.Module], timesteps: int = 32, encoder: Any = None) -> None:
        super().__init__()
        self.body = _Body(stages)
        self.timesteps = _check_timesteps(timesteps)
        self.encoder = encoder if encoder is not None else PoissonEncoder(1.0)

    @property
    def stages(self) -> nn.ModuleList:
        """The body's stages, in order."""
        return self.body.stages

    def neurons(self) -> list[IFNeuron]:
        """The IF layers, in order."""
        return [m for m in self.stages if isinstance(m, IFNeuron)]

    def reset(self) -> None:
        """Reset every neuron's membrane potential."""
        for n in self.neurons():
            n.reset()

    @torch.no_grad()
    def sync_thresholds(self) -> None:
        """Set current thresholds from weight-unit ones: ``theta = lambda * scale * V_read``.

        Runs before every simulation, so thresholds follow a crossbar that was re-programmed
        (its ``scale`` changes when ``max|W|`` does).
        """
        prev: nn.Module | None = None
        for stage in self.stages:
            if isinstance(stage, IFNeuron) and isinstance(prev, CurrentReadout) \
                    and getattr(stage, "weight_threshold", None) is not None:
                th = stage.weight_threshold * prev.current_scale()
                stage.threshold.copy_(th.to(stage.threshold.dtype))
            if not isinstance(stage, (nn.Flatten, nn.Identity, nn.Dropout)):
                prev = stage

    def run(self, spike_seq: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        """Run on encoded input.

        Args:
            spike_seq: row drive ``[T, B, ...]`` (spikes from an encoder, or analog values).
            return_sequence: return the output layer's value at every step ``[T, B, C]``
                instead of its average over ``T``.

        Returns:
            Logits ``[B, C]`` (the output layer averaged over ``T``), weight units.
        """
        if not isinstance(spike_seq, torch.Tensor) or not spike_seq.is_floating_point():
            raise TypeError("spike_seq: expected a floating-point tensor [T, B, ...]")
        if spike_seq.dim() < 3:
            raise ValueError(f"spike_seq: expected shape [T, B, ...], got {tuple(spike_seq.shape)}")
        self.reset()
        self.sync_thresholds()
        out = self.body(spike_seq)
        self.reset()
        return out if return_sequence else out.mean(0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode ``images`` over ``timesteps`` steps and run; returns logits ``[B, C]``."""
        return self.run(self.encoder(images, self.timesteps))

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, encoder={self.encoder!r}"
