"""Bias correction: after conversion, each IF layer's mean firing error is moved into a bias.

A rate-coded IF layer does not fire exactly ``clip(a, 0, lambda) / lambda`` in ``T`` steps:
spikes arrive late from the layers before it, a neuron whose input is negative on average
still fires on its positive transients (the "unevenness" error), and the rounding of every
layer adds up. These errors are largely systematic per channel, so in a deep network they add
up layer after layer into offsets of the logits. Li et al. (ICML 2021, "A free lunch from ANN:
towards efficient, accurate spiking neural networks calibration", the "bias correction" of
their light calibration pipeline) measure that error on calibration data and cancel its mean.
This module does that:

for each IF layer, in execution order (each one measured with the layers before it already
corrected), on the first ``correction_samples`` calibration images,

    e[c] = mean over images and positions of clip(a, 0, lambda) / lambda   (the ANN, float)
         - mean over images and positions of  spikes / T                   (the SNN, T steps)

for every channel ``c`` (feature of a Linear, channel of a convolution), and ``e[c] *
threshold`` (weight units) is added to the bias of the synaptic layer that feeds the IF layer
(through average pooling, or as the reference input of a residual merge, or the part of a
channel concatenation). Then each step the neuron integrates ``e[c]`` of a threshold more and
its rate rises by ``e[c]``, about.

The correction is digital and counted: the bias adds one digital add per output per read
(``bias_adds`` of the energy meter); a layer without a bias gets one (a zero bias plus the
correction) and its adds are counted from then on. It is calibrated for the network's ``T``
and encoder: the same network run at another ``T`` keeps the biases of this one.
The encoder's random state is restored afterwards, so the network then draws the spikes it
would have drawn without the calibration.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import fx, nn

from ..graph import Node
from ..layers import CROSSBAR_TYPES
from ..neurons import IFNeuron
from .balance import CalibrationData, run_hooked
from .normalise import POOLS, SYNAPTIC

__all__ = ["channel_means", "check_samples", "correct_biases", "feeders"]

_AVG_POOLS = tuple(p for p in POOLS if not issubclass(p, (nn.MaxPool1d, nn.MaxPool2d)))


def channel_means(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, C, ...]`` over everything but dimension 1 (float64, shape ``[C]``)."""
    if x.dim() < 2:
        raise ValueError(f"x: expected [B, C, ...], got shape {tuple(x.shape)}")
    dims = [0, *range(2, x.dim())]
    return x.double().mean(dims)


def check_samples(correction_samples: Any) -> int:
    """``correction_samples`` as an integer >= 1; ValueError naming it otherwise."""
    if isinstance(correction_samples, bool) or not isinstance(correction_samples, int) or correction_samples < 1:
        raise ValueError(f"correction_samples: expected an integer >= 1, got {correction_samples!r}")
    return correction_samples


def feeders(snn: Any, node: Node, reference: dict[str, int],
            widths: dict[str, int]) -> list[tuple[nn.Module, slice]] | None:
    """The synaptic layers whose bias reaches the input of the IF node ``node`` unchanged, each
    with the channels of the IF layer it feeds; None when there is no such layer.

    The path may go through average pooling, through the reference input of an ``add`` (the
    other inputs are scaled into its units) and through one concatenation along the channels
    (``widths``: the channels of every node's value); every node on it must have no other user,
    so that a bias change moves nothing but this IF layer.
    """
    graph = snn.graph

    def walk(name: str, channels: slice, through_cat: bool) -> list[tuple[nn.Module, slice]] | None:
        n = graph.node(name)
        if len(graph.users(name)) != 1:
            return None
        if n.op == "module":
            m = snn.get_submodule(n.target)
            if isinstance(m, (*SYNAPTIC, *CROSSBAR_TYPES)):
                return [(m, channels)]
            if isinstance(m, _AVG_POOLS):
                return walk(n.inputs[0], channels, through_cat)
            return None
        if n.op == "add" and n.name in reference:
            return walk(n.inputs[reference[n.name]], channels, through_cat)
        if n.op == "cat" and int(n.arg("dim")) == 1 and not through_cat:
            out, start = [], 0
            for name_in in n.inputs:
                part = walk(name_in, slice(start, start + widths[name_in]), True)
                if part is None:
                    return None
                out.extend(part)
                start += widths[name_in]
            return out
        return None

    return walk(node.inputs[0], slice(None), False)


def _add_bias(layer: nn.Module) -> None:
    """Give ``layer`` a zero bias (one per output channel)."""
    w = layer.weight
    layer.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))


class _RandomState:
    """Saves the encoder's random state (its generator, else torch's default) and restores it."""

    def __init__(self, encoder: Any) -> None:
        gen = getattr(encoder, "generator", None)
        self.gen = gen if isinstance(gen, torch.Generator) else None
        self.state = self.gen.get_state() if self.gen is not None else torch.get_rng_state()

    def restore(self) -> None:
        if self.gen is not None:
            self.gen.set_state(self.state)
        else:
            torch.set_rng_state(self.state)


def _rate_means(snn: Any, images: list[torch.Tensor], node: str) -> torch.Tensor:
    """Per-channel mean firing rate of IF node ``node`` over ``images`` (float64 ``[C]``)."""
    total: list[Any] = [0.0, 0]

    def take(v: torch.Tensor) -> None:  # v: [steps, samples, C, ...] of one tile
        total[0] = total[0] + channel_means(v.flatten(0, 1)) * (v.shape[0] * v.shape[1])
        total[1] += v.shape[0] * v.shape[1]

    for x in images:
        snn.capture(x, node, take)
    return total[0] / total[1]


@torch.no_grad()
def _ann_means(reference: fx.GraphModule, images: list[torch.Tensor], lambdas: dict[str, tuple[str, float]],
               device: torch.device) -> dict[str, torch.Tensor]:
    """Per-channel mean of ``clip(a, 0, lambda) / lambda`` at every ReLU of ``reference``."""
    sums: dict[str, torch.Tensor] = {}
    hooks = {}
    for name, (target, lam) in lambdas.items():
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = name, lam: float = lam) -> None:
            s = channel_means(out.clamp(0.0, lam) / lam) * out.shape[0]
            sums[name] = s if name not in sums else sums[name] + s
        hooks[target] = hook
    count = run_hooked(reference, hooks, images, device)
    return {k: v / count for k, v in sums.items()}


@torch.no_grad()
def correct_biases(snn: Any, reference: fx.GraphModule, calibration: Any, correction_samples: int = 512,
                   progress: bool = False, batch: int = 256) -> dict[str, float]:
    """Bias correction of a converted network, IF layer by IF layer (module docstring).

    Args:
        snn: a :class:`~xbar.SpikingNetwork` from :func:`xbar.to_snn` (its output in ANN
            units); changed in place.
        reference: the ANN it was converted from, as the normalised graph the conversion
            balanced (:func:`xbar.convert.normalised_ann`, after any channel equalisation),
            with its own biases (not those of ``snn``).
        calibration: calibration images (as ``to_snn``'s ``calibration``); the first
            ``correction_samples`` images are used.
        correction_samples: number of calibration images (>= 1).
        progress: show a progress bar over the IF layers.
        batch: images per simulation call.

    Returns:
        ``{IF layer: mean |e| over its channels before its correction}`` for the corrected
        layers; ``snn.conversion["bias_correction"]`` (when ``snn`` has that record) becomes the
        number of images used. IF layers with no synaptic layer feeding them alone are left as they are, with
        one warning naming them.

    Raises:
        ValueError: ``correction_samples < 1``, or an IF layer whose scale is unknown (per-channel
            thresholds).
    """
    from tqdm.auto import tqdm

    samples = check_samples(correction_samples)
    device = next((p.device for p in snn.parameters()), torch.device("cpu"))
    images, have = [], 0
    data = calibration if isinstance(calibration, CalibrationData) else CalibrationData(calibration)
    for x in data:
        x = x[: samples - have]
        images.extend(x.to(device).split(batch))
        have += x.shape[0]
        if have >= samples:
            break
    wiring = snn.sync_thresholds()
    nodes = [n for n in snn.graph.module_nodes() if isinstance(snn.get_submodule(n.target), IFNeuron)]
    lambdas = {}
    for n in nodes:
        lam = wiring.gains[n.name][0]
        if lam is None:
            raise ValueError(f"bias_correction: the scale of IF layer {n.name!r} is unknown (per-channel thresholds?)")
        lambdas[n.name] = (n.target, float(lam))
    target = _ann_means(reference, images, lambdas, device)
    widths = _widths(snn, images[0])
    state = _RandomState(snn.encoder)
    out: dict[str, float] = {}
    skipped: list[str] = []
    try:
        for n in tqdm(nodes, desc="bias correction", disable=not progress, leave=False):
            parts = feeders(snn, n, wiring.reference, widths)
            if parts is None:
                skipped.append(n.name)
                continue
            state.restore()
            e = target[n.name] - _rate_means(snn, images, n.name)
            out[n.name] = float(e.abs().mean())
            m = snn.get_submodule(n.target)
            th = (m.weight_threshold if m.weight_threshold is not None else m.threshold).detach().double().cpu()
            delta = e * (th if th.numel() == 1 else th.flatten())
            for layer, channels in parts:
                if layer.bias is None:
                    _add_bias(layer)
                layer.bias += delta[channels].to(layer.bias.device, layer.bias.dtype)
            wiring = snn.sync_thresholds()
    finally:
        state.restore()
    if isinstance(getattr(snn, "conversion", None), dict):
        snn.conversion["bias_correction"] = have
    if skipped:
        warnings.warn("bias_correction: IF layers left uncorrected (no synaptic layer alone feeds them): "
                      + ", ".join(skipped), stacklevel=3)
    return out


def _widths(snn: Any, x: torch.Tensor) -> dict[str, int]:
    """Channels (dimension 1 of ``[B, ...]``) of every node's value for images like ``x``."""
    from ..shapes import node_shapes

    shapes = node_shapes(snn.graph, snn.graph_modules(), tuple(x.shape[1:]))
    return {name: int(s[1]) if len(s) > 1 else 1 for name, s in shapes.items()}
