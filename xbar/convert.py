"""Model conversion: ``to_crossbar`` (module swap) and ``to_snn`` (ReLU -> IF, threshold balancing).

Threshold balancing keeps the crossbar's raw weights (so every layer uses its device's whole
conductance range) and moves the normalisation into the thresholds. With ``lambda_l`` the
normalisation scale of ReLU layer ``l`` (``lambda_0 = 1`` for the input), the spike rates of
layer ``l`` approximate ``a_l / lambda_l`` when its threshold is ``lambda_l / lambda_{l-1}`` in
weight units and its bias is divided by ``lambda_{l-1}``. This is Rueckauer et al. (2017)'s
weight normalisation written as thresholds.

``norm``:
    ``"none"``        threshold 1, raw weights (the EE 518 study's vanilla mode);
    ``"max"``         ``lambda_l`` = max activation over the calibration data (Diehl et al. 2015);
    ``"percentile"``  ``lambda_l`` = that percentile of the non-zero activations
                      (Rueckauer et al. 2017; 99.9 by default);
    ``"percentile-all"`` that percentile of all activations, zeros included: what
                      spikingjelly's ``RateCodingRecipe(mode="99.9%")`` computes on one
                      calibration batch (a lower threshold when many units are silent);
    ``"spike-norm"``  Sengupta et al. (2019): layer by layer, threshold = max over calibration
                      samples and timesteps of the weighted spike input, with the earlier
                      layers already converted and spiking.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from .device import DeviceProfile
from .encoding import PoissonEncoder, _check_timesteps
from .layers import CROSSBAR_TYPES, CrossbarConv2d, CrossbarLinear, _resolve_profile
from .neurons import IFNeuron
from .snn import CurrentReadout, SpikingNetwork
from .mapping import check_mapping
from .validation import check_finite, check_network_input, check_number, check_parameters_finite

NORMS = ("none", "max", "percentile", "spike-norm", "percentile-all")
_SYNAPTIC = (nn.Linear, nn.Conv2d)
_PASSIVE = (nn.Flatten, nn.AvgPool2d)
_SKIPPED = (nn.Identity, nn.Dropout)
_MAX_PERCENTILE_SAMPLES = 200_000
_MAX_ALL_SAMPLES = 1 << 24  # percentile-all: exact (as torch.quantile) up to 16M values per batch


def to_crossbar(model: nn.Module, device: DeviceProfile | str, inplace: bool = False,
                mapping: str = "differential") -> nn.Module:
    """Swap every ``nn.Linear`` and ``nn.Conv2d`` (exact type) for a programmed crossbar layer.

    Args:
        model: any module; a bare ``nn.Linear`` / ``nn.Conv2d`` is converted itself.
        device: device profile, shipped profile name, or YAML path.
        inplace: modify ``model`` instead of a deep copy.
        mapping: ``"differential"`` (default) or ``"clip"``.

    Returns:
        The converted model (a copy unless ``inplace``). Subclasses of the torch layers,
        crossbar layers included, are left alone.

    Raises:
        DeviceProfileError: unknown ``device`` name (close names suggested) or a bad file.
        ValueError: unknown ``mapping``, or a NaN / infinite parameter of ``model`` (named).
    """
    profile = _resolve_profile(device)
    check_mapping(mapping)
    check_parameters_finite(model, "model")
    if not inplace:
        model = copy.deepcopy(model)
    swapped = _swap(model, profile, mapping)
    if swapped is not None:
        return swapped
    for name, child in list(model.named_children()):
        new = _swap(child, profile, mapping)
        if new is not None:
            setattr(model, name, new)
        else:
            to_crossbar(child, profile, inplace=True, mapping=mapping)
    if isinstance(model, SpikingNetwork):
        _wire_currents(model)
    return model


def _wire_currents(snn: SpikingNetwork) -> None:
    """In a spiking network, make crossbars that feed IF layers output currents.

    The IF thresholds (weight units so far) become ``weight_threshold`` and their current
    equivalents are set, so the network computes exactly what it did before the swap.
    """
    stages = snn.stages
    for i, stage in enumerate(stages):
        if not isinstance(stage, IFNeuron) or stage.weight_threshold is not None:
            continue
        j = i - 1
        while j >= 0 and isinstance(stages[j], _PASSIVE):
            j -= 1
        if j >= 0 and isinstance(stages[j], CROSSBAR_TYPES):
            stages[j] = CurrentReadout(stages[j])
            stage.weight_threshold = stage.threshold.detach().clone()
    snn.sync_thresholds()


def _swap(module: nn.Module, profile: DeviceProfile, mapping: str) -> nn.Module | None:
    if type(module) is nn.Linear:
        return CrossbarLinear.from_linear(module, profile, mapping)
    if type(module) is nn.Conv2d:
        return CrossbarConv2d.from_conv2d(module, profile, mapping)
    return None


def flatten_sequential(model: nn.Module) -> list[nn.Module]:
    """The leaf stages of a (possibly nested) ``nn.Sequential``, dropping Identity/Dropout.

    Raises:
        TypeError: naming the first module that ``to_snn`` cannot convert.
    """
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = []
        for child in model:
            out.extend(flatten_sequential(child))
        return out
    if isinstance(model, _SKIPPED):
        return []
    if isinstance(model, (*_SYNAPTIC, *_PASSIVE, nn.ReLU)):
        return [model]
    raise TypeError(
        f"ann: cannot convert module {type(model).__name__}; to_snn handles nn.Sequential models of "
        "Linear, Conv2d (or crossbar layers), ReLU, AvgPool2d, Flatten, Dropout and Identity")


def _batches(calibration: Any, stages: list[nn.Module]) -> Iterable[torch.Tensor]:
    """The image batches of ``calibration``, each checked: float, finite, fits the first layer."""
    if isinstance(calibration, torch.Tensor):
        items: Iterable[Any] = [calibration]
    elif hasattr(calibration, "__iter__"):
        items = calibration
    else:
        raise TypeError(f"calibration: expected a tensor, a DataLoader or an iterable of batches, "
                        f"got {type(calibration).__name__}")
    for item in items:
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        check_network_input(stages, x, "calibration")
        check_finite(x, "calibration")
        yield x


def _relu_activations(layers: list[nn.Module], calibration: Any, percentile: float | None,
                      device: torch.device, zeros: bool = False) -> list[float]:
    """Max or percentile of each ReLU's output over the calibration data (of the non-zero
    outputs, or of all of them with ``zeros``)."""
    relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
    maxima = [0.0] * len(relus)
    samples: list[list[torch.Tensor]] = [[] for _ in relus]
    gen = torch.Generator().manual_seed(0)
    seen = 0
    with torch.no_grad():
        for x in _batches(calibration, layers):
            seen += x.shape[0]
            h = x.to(device)
            k = 0
            for i, m in enumerate(layers):
                h = m(h)
                if i in relus:
                    maxima[k] = max(maxima[k], float(h.max())) if h.numel() else maxima[k]
                    if percentile is not None:
                        nz = (h.flatten() if zeros else h[h > 0].flatten()).cpu()
                        cap = _MAX_ALL_SAMPLES if zeros else _MAX_PERCENTILE_SAMPLES
                        if nz.numel() > cap:
                            nz = nz[torch.randperm(nz.numel(), generator=gen)[:cap]]
                        samples[k].append(nz)
                    k += 1
    if seen == 0:
        raise ValueError("calibration: the loader yielded no samples")
    if percentile is None:
        return maxima
    out = []
    for vals in samples:
        v = torch.cat(vals).numpy() if vals else np.zeros(0)
        out.append(float(np.percentile(v, percentile)) if v.size else 0.0)
    return out


def _positive(x: float) -> float:
    return x if x > 0 and np.isfinite(x) else 1.0


def to_snn(ann: nn.Module, calibration: Any = None, timesteps: int = 32, norm: str = "percentile",
           percentile: float = 99.9, encoder: Any = None, reset: str = "subtract",
           surrogate: Any = None) -> SpikingNetwork:
    """Convert a ReLU network into a :class:`SpikingNetwork` with balanced thresholds.

    Args:
        ann: an ``nn.Sequential`` (nested allowed) of Linear/Conv2d or crossbar layers, ReLU,
            AvgPool2d, Flatten (Dropout/Identity are dropped). It is not modified.
        calibration: data for threshold balancing (a DataLoader of ``(images, labels)``, an
            iterable of tensors, or one tensor); required unless ``norm="none"``.
        timesteps: ``T``, steps per sample (>= 1).
        norm: ``"none"``, ``"max"``, ``"percentile"``, ``"percentile-all"`` or
            ``"spike-norm"`` (module docstring).
        percentile: the percentile for ``norm="percentile"`` / ``"percentile-all"``, in
            ``(0, 100]``.
        encoder: input encoder (default ``PoissonEncoder(max_rate=1.0)``); spike-norm
            calibrates with it.
        reset: IF reset, ``"subtract"`` (default) or ``"zero"``.
        surrogate: surrogate spike function for training the result (None: plain step).

    Returns:
        The spiking network. When the ANN holds crossbar layers, IF neurons integrate column
        currents and their thresholds are currents.

    Raises:
        ValueError / TypeError: naming the argument: unknown ``norm``, ``percentile`` outside
            ``(0, 100]``, ``timesteps < 1``, NaN / infinite ``ann`` parameters, missing or
            empty ``calibration``, calibration batches that are not finite float tensors of a
            shape the first layer reads, a non-callable ``encoder``.
    """
    if norm not in NORMS:
        raise ValueError(f"norm: unknown normalisation {norm!r}; choose one of {', '.join(NORMS)}")
    check_number(percentile, "percentile", 0.0, 100.0, low_open=True)
    _check_timesteps(timesteps)
    check_parameters_finite(ann, "ann")
    if not callable(encoder) and encoder is not None:
        raise TypeError(f"encoder: expected a callable encoder(images, timesteps), got {type(encoder).__name__}")
    if norm != "none" and calibration is None:
        raise ValueError(f"calibration: norm={norm!r} needs calibration data")
    encoder = encoder if encoder is not None else PoissonEncoder(1.0)
    layers = [copy.deepcopy(m) for m in flatten_sequential(ann)]
    if not any(isinstance(m, _SYNAPTIC) for m in layers):
        raise ValueError("ann: has no Linear or Conv2d layer to convert")
    if isinstance(layers[-1], nn.ReLU):
        raise ValueError("ann: ends in a ReLU; the output layer must be Linear/Conv2d (its average over T is the logits)")
    device = next((p.device for m in layers for p in m.parameters()), torch.device("cpu"))
    for m in layers:
        m.eval()

    if norm in ("max", "percentile", "percentile-all"):
        lams = [_positive(v) for v in _relu_activations(layers, calibration, None if norm == "max" else percentile,
                                                        device, zeros=norm == "percentile-all")]
        thresholds = _rescale_for_thresholds(layers, lams)
    else:
        thresholds = [1.0] * sum(isinstance(m, nn.ReLU) for m in layers)

    stages = _build_stages(layers, thresholds, reset, surrogate)
    snn = SpikingNetwork(stages, timesteps=timesteps, encoder=encoder)
    snn.conversion = {"norm": norm, "percentile": percentile, "reset": reset}
    if norm == "spike-norm":
        _spike_norm(snn, calibration, device)
    return snn.eval()


def _rescale_for_thresholds(layers: list[nn.Module], lams: list[float]) -> list[float]:
    """Thresholds ``lambda_l / lambda_{l-1}``; biases divided by ``lambda_{l-1}`` in place."""
    thresholds = []
    prev = 1.0
    k = 0
    for m in layers:
        if isinstance(m, _SYNAPTIC) and m.bias is not None and prev != 1.0:
            with torch.no_grad():
                m.bias.div_(prev)
        if isinstance(m, nn.ReLU):
            thresholds.append(lams[k] / prev)
            prev = lams[k]
            k += 1
    return thresholds


def _build_stages(layers: list[nn.Module], thresholds: list[float], reset: str, surrogate: Any) -> list[nn.Module]:
    stages: list[nn.Module] = []
    k = 0
    for i, m in enumerate(layers):
        if isinstance(m, nn.ReLU):
            stages.append(_make_neuron(stages, thresholds[k], reset, surrogate))
            k += 1
            continue
        if isinstance(m, CROSSBAR_TYPES) and _next_synaptic_or_relu(layers, i) == "relu":
            stages.append(CurrentReadout(m))
        else:
            stages.append(m)
    return stages


def _next_synaptic_or_relu(layers: list[nn.Module], i: int) -> str:
    for n in layers[i + 1:]:
        if isinstance(n, nn.ReLU):
            return "relu"
        if isinstance(n, _SYNAPTIC):
            return "synaptic"
    return "end"


def _source(stages: list[nn.Module], idx: int) -> nn.Module | None:
    """The synaptic stage feeding position ``idx`` (pooling and flattening skipped)."""
    return next((s for s in reversed(stages[:idx]) if not isinstance(s, _PASSIVE)), None)


def _make_neuron(stages: list[nn.Module], threshold: float, reset: str, surrogate: Any) -> IFNeuron:
    """An IF layer; its threshold is a current when the last synaptic stage is a crossbar."""
    neuron = IFNeuron(threshold=threshold, reset=reset, surrogate=surrogate, step_mode="m")
    src = _source(stages, len(stages))
    if isinstance(src, CurrentReadout):
        neuron.weight_threshold = torch.tensor(float(threshold))
        with torch.no_grad():
            neuron.threshold.copy_(threshold * src.current_scale().detach().cpu())
    return neuron


@torch.no_grad()
def _spike_norm(snn: SpikingNetwork, calibration: Any, device: torch.device) -> None:
    """Sengupta et al. (2019): set each IF threshold, layer by layer, to the maximum input it sees."""
    stages = list(snn.stages)
    for idx, neuron in enumerate(stages):
        if not isinstance(neuron, IFNeuron):
            continue
        peak = 0.0
        seen = 0
        for x in _batches(calibration, stages):
            seen += x.shape[0]
            snn.reset()
            snn.sync_thresholds()
            h = snn.body(snn.encoder(x.to(device), snn.timesteps), upto=idx)
            peak = max(peak, float(h.max()))
        snn.reset()
        if seen == 0:
            raise ValueError("calibration: the loader yielded no samples")
        src = _source(stages, idx)
        unit = float(src.current_scale()) if isinstance(src, CurrentReadout) else 1.0
        lam = _positive(peak / unit)
        if neuron.weight_threshold is not None:
            neuron.weight_threshold.fill_(lam)
        neuron.threshold.fill_(lam * unit)
