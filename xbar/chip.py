"""A chip: operations on every crossbar layer of a model at once.

:func:`program_model` programs a model as one chip from one seed, :func:`fix_faults` pins the
chip's defect map, :func:`drift` reads every array ``t`` seconds after programming, and
:func:`calibrate_periphery` sets the converters' ranges from data. The physics they apply lives
below, in :mod:`xbar.nonideal` and :mod:`xbar.periphery`, which import nothing above them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .layers import CROSSBAR_TYPES
from .nonideal import draw_faults
from .periphery import _Calibration

__all__ = ["calibrate_periphery", "drift", "fix_faults", "hold_read_noise", "program_model"]


@torch.no_grad()
def drift(model: nn.Module, t_seconds: float, compensate: bool | str = True) -> nn.Module:
    """Let every crossbar layer of ``model`` drift to ``t_seconds`` after programming.

    Args:
        model: any module holding :class:`~xbar.CrossbarLinear` / :class:`~xbar.CrossbarConv2d`.
        t_seconds: time since programming, seconds.
        compensate: ``True`` / ``"global"``: global drift compensation (one reference read per
            layer rescales its output by ``sum(G0) / sum(G(t))``); ``"column"``: per output
            column (see :meth:`xbar.CrossbarLinear.drift`); ``False``: none.

    Returns:
        ``model`` (modified in place). Re-programming a layer undoes its drift.
    """
    for m in model.modules():
        if isinstance(m, CROSSBAR_TYPES):
            m.drift(t_seconds, compensate=compensate)
    return model


@contextlib.contextmanager
def hold_read_noise(model: nn.Module, samples: int) -> Iterator[nn.Module]:
    """Within the block, the 1/f read noise of every crossbar layer of ``model`` whose profile has
    it (``noise.flicker_q > 0``) is drawn once per sample and held through that sample's reads:
    reads of ``steps x samples`` rows, step-major (as a :class:`~xbar.SpikingNetwork` reads a
    tile). Entering again draws afresh. Layers without 1/f noise are untouched (their read
    generators advance as without the block).

    Args:
        model: any module holding crossbar layers.
        samples: samples per read (the tile's batch).
    """
    hold = ReadNoiseHold(model)
    hold.start(samples)
    try:
        yield model
    finally:
        hold.stop()


class ReadNoiseHold:
    """:func:`hold_read_noise` for a loop over tiles of samples (the SNN executor): ``start(n)``
    holds fresh 1/f draws for the next ``n`` samples, ``stop()`` ends the hold."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, CROSSBAR_TYPES) and m.profile.flicker_q > 0]

    def start(self, samples: int) -> None:
        for m in self.layers:
            m.hold_read_noise(samples)

    def stop(self) -> None:
        for m in self.layers:
            m.hold_read_noise(None)


@torch.no_grad()
def program_model(model: nn.Module, seed: int | None = 0) -> nn.Module:
    """Program every crossbar layer of ``model`` as one chip: programming errors drawn from a
    generator seeded with ``seed`` (layers in module order), and each layer's read noise from
    its own generator seeded with ``seed + 1 + index``. Same seed, same chip and same reads.

    Args:
        model: any module holding crossbar layers.
        seed: the chip's seed; None draws from the global generator (and global read noise).

    Returns:
        ``model``, re-programmed in place (any drift is undone).
    """
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    layers = [m for m in model.modules() if isinstance(m, CROSSBAR_TYPES)]
    for i, m in enumerate(layers):
        m.program(generator=gen)
        m.read_generator = None if seed is None else torch.Generator(m.g_pos.device).manual_seed(seed + 1 + i)
    return model


@torch.no_grad()
def fix_faults(model: nn.Module, seed: int | None = 0) -> nn.Module:
    """Give every crossbar layer of ``model`` a fixed defect map drawn from its profile's
    ``stuck_off`` / ``stuck_on`` fractions (generator seeded with ``seed``; layers in module
    order). Later programming, training included, keeps these devices stuck: the chip's
    faults, known to fault-aware finetuning. ``seed=None`` removes the maps (fresh draws at
    every programming again).

    Returns:
        ``model``, its layers marked for re-programming.
    """
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, CROSSBAR_TYPES):
            dev = m.profile
            m.fault_map = None if seed is None else tuple(
                draw_faults(m.weight.shape, dev.stuck_off, dev.stuck_on, gen) for _ in range(2))
            m._profile_token += 1
    return model


def _batches(data, max_batches: int | None):
    if isinstance(data, torch.Tensor):
        yield data
        return
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            return
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def calibrate_periphery(model: torch.nn.Module, data, method: str = "percentile", percentile: float = 99.99,
                        max_batches: int | None = None, seed: int = 0) -> dict[str, tuple[torch.Tensor, float]]:
    """Set the ADC (and DAC) ranges of every crossbar layer of ``model`` from data.

    The model runs on ``data`` with ideal reads; each array's range becomes the largest
    magnitude of its partial column outputs (``method="max"``) or the ``percentile`` of the
    non-zero ones (``"percentile"``: clips rare outliers for a finer step). The DAC range is set
    the same way from the row drives. Calibrate after conversion (an SNN's reads are its
    per-step spike drives) and again after re-mapping to another device.

    Args:
        model: any module holding crossbar layers (an ANN or a :class:`~xbar.SpikingNetwork`).
        data: a tensor of inputs, or an iterable of batches (``(x, y)`` tuples or tensors).
        method: ``"max"`` or ``"percentile"``.
        percentile: in (0, 100], for ``method="percentile"``.
        max_batches: use at most this many batches of an iterable.
        seed: seeds the subsampling of values for a percentile.

    Returns:
        ``{layer name: (adc_range [row tiles, column tiles] in weight units, dac_range)}``; the
        same values are stored on the layers (``layer.adc_range``, ``layer.dac_range``).

    Raises:
        ValueError: naming ``method``, ``percentile`` or ``data`` when they are unusable.
    """
    if method not in ("max", "percentile"):
        raise ValueError(f"method: must be 'max' or 'percentile', got {method!r}")
    if isinstance(percentile, bool) or not (isinstance(percentile, (int, float)) and 0 < percentile <= 100):
        raise ValueError(f"percentile: must be a number in (0, 100], got {percentile!r}")
    layers = {name: m for name, m in model.named_modules() if isinstance(m, CROSSBAR_TYPES)}
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    for m in layers.values():
        m._calibration = _Calibration(method, float(percentile), gen)
    seen = 0
    try:
        for xb in _batches(data, max_batches):
            model(xb)
            seen += 1
    finally:
        calib = {name: m._calibration for name, m in layers.items()}
        for m in layers.values():
            m._calibration = None
        model.train(was_training)
    if seen == 0:
        raise ValueError("data: no batches to calibrate on")
    out = {}
    for name, m in layers.items():
        adc, dac = calib[name].ranges()
        if adc is None:
            continue
        m.adc_range, m.dac_range = adc, dac
        out[name] = (adc, dac)
    return out
