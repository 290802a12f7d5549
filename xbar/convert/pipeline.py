"""``to_snn``: any traceable ReLU network into a :class:`~xbar.SpikingNetwork`, as a pipeline.

    capture  (torch.fx)                       xbar/convert/capture.py
    normalise (canonical ops, BN folded,      xbar/convert/normalise.py, batchnorm.py
               max-pool after ReLU)
    balance  (ReLU scales from calibration)   xbar/convert/balance.py
    spiking graph (IF layers, thresholds)     xbar/convert/spiking.py
    bias correction (optional, on the SNN)    xbar/convert/calibrate.py

Each stage is a function with its own tests; this module only runs them in order.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

from ..encoding import PoissonEncoder, _check_timesteps
from ..layers import CROSSBAR_TYPES
from ..neurons import _check_reset, check_v_init
from ..qcfs import release_qcfs
from ..snn import SpikingNetwork
from ..validation import check_number, check_parameters_finite
from .balance import CalibrationData, activation_scales, check_maxpool, check_norm, entry_stages, spike_norm
from .batchnorm import fold_batchnorm
from .calibrate import check_samples, correct_biases
from .capture import ConversionError, capture
from .equalise import equalise_channels
from .normalise import SYNAPTIC, canonicalize, swap_maxpool_relu
from .spiking import balance, build, set_neuron

__all__ = ["normalised_ann", "to_snn"]


def normalised_ann(ann: nn.Module, example: torch.Tensor | None = None) -> fx.GraphModule:
    """The ANN as ``to_snn`` sees it before balancing: traced, in canonical ops, BatchNorm folded,
    every max-pool after its ReLU. It computes what ``ann`` computes (without a trailing softmax).

    Args:
        ann: the model (not modified).
        example: an input batch, needed only when a reshape's per-sample shape must be measured.
    """
    gm = capture(release_qcfs(ann)[0])
    gm = canonicalize(gm, example)
    gm = fold_batchnorm(gm)
    return swap_maxpool_relu(gm)


def to_snn(ann: nn.Module, calibration: Any = None, timesteps: int = 32, norm: str = "percentile",
           percentile: float = 99.9, encoder: Any = None, reset: str = "subtract",
           surrogate: Any = None, maxpool: str = "spike-count", v_init: float | None = None,
           channelwise: bool = False, bias_correction: bool = False, correction_samples: int = 512,
           progress: bool = False) -> SpikingNetwork:
    """Convert a ReLU network into a :class:`SpikingNetwork` with balanced thresholds.

    Args:
        ann: any module ``torch.fx`` can trace (custom ``forward``, nested modules, residual
            adds, concatenations; :mod:`xbar.convert.normalise` lists the ops), of float or
            crossbar layers. It is not modified.
        calibration: data for threshold balancing (a DataLoader of ``(images, labels)``, an
            iterable of tensors, or one tensor); required unless ``norm`` is ``"none"`` or
            ``"qcfs"``.
        timesteps: ``T``, steps per sample (>= 1).
        norm: ``"none"``, ``"max"``, ``"percentile"``, ``"percentile-all"`` or
            ``"spike-norm"`` (:mod:`xbar.convert.balance`), or ``"qcfs"``: every threshold is
            the learned clip of the :class:`~xbar.qcfs.QCFS` activation the IF layer replaces
            (Bu et al., ICLR 2022; :func:`xbar.to_qcfs` puts them into a model); no calibration.
            With ``timesteps`` equal to the QCFS levels, ``v_init=0.5`` (its default here) and
            reset by subtraction, an IF layer driven by a constant input fires exactly the
            quantised activation. With the other norms a QCFS counts as a plain ReLU.
        percentile: the percentile for ``norm="percentile"`` / ``"percentile-all"``, in
            ``(0, 100]``.
        encoder: input encoder (default ``PoissonEncoder(max_rate=1.0)``); spike-norm
            calibrates with it.
        reset: IF reset, ``"subtract"`` (default) or ``"zero"``.
        surrogate: surrogate spike function for training the result (None: plain step).
        maxpool: ``"spike-count"`` (max-pooling by accumulated spike counts, Rueckauer et al.
            2017; :mod:`xbar.pooling`) or ``"error"`` (refuse max-pooling).
        v_init: every IF neuron's initial potential as a fraction of its threshold, in
            ``[0, 1)`` (:class:`~xbar.IFNeuron`). None (default): ``0.5`` for ``norm="qcfs"``,
            else ``0``. ``0`` starts from rest, as the EE 518 study does; ``0.5`` halves the worst rounding error of every rate-coded layer
            (Bu et al., ICLR 2022) and matters most for deep networks at small ``T``.
        channelwise: normalise channel by channel (Kim et al. 2020) before the layer-wise
            balancing: the weights are rescaled, without changing the ANN's function, so that
            every channel's calibration statistic (the one ``norm`` uses; the maximum for
            ``"spike-norm"``) is the same (:mod:`xbar.convert.equalise`). Deep networks then
            need far fewer timesteps; no digital work is added. Needs calibration data;
            default False (the layer-wise normalisation of the EE 518 study).
        bias_correction: after conversion, cancel each IF layer's mean firing error per channel
            by a bias (Li et al., ICML 2021; :mod:`xbar.convert.calibrate`): IF layer by IF
            layer, the ANN's clipped activation and the SNN's rate (``timesteps`` steps, the
            network's encoder) are compared on the first ``correction_samples`` calibration
            images. Deep and residual networks then need far fewer timesteps (a shallow one
            already close to its ANN may lose a little; README, "Your own model"). The biases are
            digital adds the energy meter counts (a layer without a bias gets one); they are
            calibrated for ``timesteps``. Needs calibration data; default False.
        correction_samples: calibration images for ``bias_correction`` (default 512).
        progress: show a progress bar over the layers ``bias_correction`` calibrates.

    Returns:
        The spiking network. Its output approximates ``ann``'s in the ANN's units (a
        trailing softmax / log_softmax is dropped: the output is the logits before it, with the
        same argmax). Inside crossbar networks IF neurons integrate column currents and their
        thresholds are currents. BatchNorm is folded into the neighbouring Linear / Conv first
        (:mod:`xbar.convert.batchnorm`; a crossbar that absorbs one is re-programmed).

    Raises:
        ConversionError: (a ``TypeError``) a model that cannot be traced or holds an op with no
            spiking form, naming the op and the source line of its ``forward``.
        ValueError / TypeError: naming the argument: unknown ``norm`` or ``maxpool``,
            ``percentile`` outside ``(0, 100]``, ``timesteps < 1``, NaN / infinite ``ann``
            parameters, missing or empty ``calibration``, calibration batches that are not
            finite float tensors of a shape the model reads, a non-callable ``encoder``,
            ``bias_correction`` not a bool or without ``calibration``, ``correction_samples < 1``.
    """
    check_norm(norm)
    check_maxpool(maxpool)
    check_number(percentile, "percentile", 0.0, 100.0, low_open=True)
    _check_timesteps(timesteps)
    _check_reset(reset)
    v_init = check_v_init((0.5 if norm == "qcfs" else 0.0) if v_init is None else v_init)
    check_parameters_finite(ann, "ann")
    if not callable(encoder) and encoder is not None:
        raise TypeError(f"encoder: expected a callable encoder(images, timesteps), got {type(encoder).__name__}")
    if not isinstance(channelwise, bool):
        raise TypeError(f"channelwise: expected True or False, got {channelwise!r}")
    if channelwise and norm in ("none", "qcfs"):
        raise ValueError(f"channelwise: needs a data-based normalisation (norm={norm!r} uses no calibration)")
    ann, clips, levels = release_qcfs(ann)
    if norm == "qcfs" and not clips:
        raise ValueError("norm: 'qcfs' reads the thresholds from QCFS activations; ann has none "
                         "(xbar.to_qcfs(model, levels=L) swaps its ReLUs, then train it)")
    if norm not in ("none", "qcfs") and calibration is None:
        raise ValueError(f"calibration: norm={norm!r} needs calibration data")
    if not isinstance(bias_correction, bool):
        raise TypeError(f"bias_correction: expected True or False, got {bias_correction!r}")
    if bias_correction and calibration is None:
        raise ValueError("calibration: bias_correction=True needs calibration data")
    if bias_correction:
        check_samples(correction_samples)
    encoder = encoder if encoder is not None else PoissonEncoder(1.0)
    if calibration is not None and not isinstance(calibration, torch.Tensor) and hasattr(calibration, "__iter__") \
            and iter(calibration) is calibration:
        calibration = list(calibration)  # a one-shot iterator: every pass below reads it again
    gm = capture(ann)
    calib = CalibrationData(calibration, entry_stages(gm)) if calibration is not None else None
    gm = canonicalize(gm, calib.first() if calib is not None else None)
    gm = swap_maxpool_relu(fold_batchnorm(gm))
    _check_structure(gm)
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))
    calib = CalibrationData(calibration, entry_stages(gm)) if calibration is not None else None
    if channelwise:
        stat = percentile if norm in ("percentile", "percentile-all") else None
        equalise_channels(gm, calib, stat, device, zeros=norm == "percentile-all")

    reference = copy.deepcopy(gm) if bias_correction else None  # the ANN, before balancing divides biases
    snn = build(gm, timesteps, encoder, reset, surrogate, maxpool, v_init)
    lambdas = None
    if norm in ("max", "percentile", "percentile-all"):
        lambdas = activation_scales(gm, calib, None if norm == "max" else percentile, device,
                                    zeros=norm == "percentile-all")
    if norm == "qcfs":
        lambdas = qcfs_lambdas(gm, clips)
    balance(snn, lambdas)
    if norm == "spike-norm":
        def set_threshold(node: Any, wt: float) -> None:
            amps = snn.sync_thresholds().gains[node.inputs[0]][1]
            set_neuron(snn, node, wt, amps)
        spike_norm(snn, calib, device, set_threshold)
    snn.conversion = {"norm": norm, "percentile": percentile, "reset": reset, "maxpool": maxpool, "v_init": v_init,
                      "channelwise": channelwise}
    if bias_correction:
        snn.eval()
        correct_biases(snn, reference, calib, correction_samples, progress=progress)  # records the images used
    if norm == "qcfs":
        snn.conversion["qcfs_levels"] = sorted(set(levels.values()))
    return snn.eval()


def qcfs_lambdas(gm: fx.GraphModule, clips: dict[str, float]) -> dict[str, float]:
    """The scale ``lambda`` of every ReLU of the normalised graph ``gm``: the clip of the QCFS at
    its path (a QCFS called at several places: at its path with ``_k`` appended).

    Raises:
        ValueError: a ReLU without a QCFS clip (an ``F.relu`` call or an ``nn.ReLU`` left in
            the model), naming its path and source line.
    """
    import re

    from .capture import source_of

    out = {}
    for n in gm.graph.nodes:
        if n.op != "call_module" or not isinstance(gm.get_submodule(n.target), nn.ReLU):
            continue
        path = n.target if n.target in clips else re.sub(r"_\d+$", "", n.target)
        if path not in clips:
            where = source_of(n)
            raise ValueError(f"norm: 'qcfs' needs a QCFS activation at every ReLU; the ReLU {n.target!r}"
                             + (f" ({where})" if where else "") + " has none (xbar.to_qcfs swaps nn.ReLU modules; "
                             "F.relu calls stay ReLUs)")
        out[n.target] = clips[path]
    return out


def _check_structure(gm: fx.GraphModule) -> None:
    mods = [gm.get_submodule(n.target) for n in gm.graph.nodes if n.op == "call_module"]
    if not any(isinstance(m, (*SYNAPTIC, *CROSSBAR_TYPES)) for m in mods):
        raise ValueError("ann: has no Linear or Conv layer to convert")
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    if isinstance(out, fx.Node) and out.op == "call_module" and isinstance(gm.get_submodule(out.target), nn.ReLU):
        raise ValueError("ann: ends in a ReLU; the output layer must be Linear/Conv (its average over T is the output)")
