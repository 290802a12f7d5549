"""Training and evaluation: ANN training, surrogate-gradient BPTT of SNNs, accuracy.

Everything takes an explicit seed or ``torch.Generator`` so that runs repeat bit for bit on
the CPU. Crossbar layers train through their straight-through forward (the programmed weight
and the periphery forward, the master weight and an ideal read backward), so the same loops do
hardware-aware finetuning; :func:`hardware_aware_finetune` wraps them with noise injection.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .neurons import IFNeuron, default_surrogate
from .snn import SpikingNetwork
from .validation import check_int, check_number


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU if it has none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, max_batches: int | None = None,
             progress: bool = False, desc: str = "eval") -> float:
    """Top-1 accuracy of ``model`` on ``loader`` (fraction in ``[0, 1]``).

    Args:
        model: an ANN or a :class:`SpikingNetwork` (anything mapping images to logits).
        loader: iterable of ``(images, labels)``.
        max_batches: stop after this many batches.
        progress: show a progress bar.
        desc: the progress bar's label.
    """
    was_training = model.training
    model.eval()
    dev = model_device(model)
    correct = total = 0
    for i, (x, y) in enumerate(tqdm(loader, desc=desc, disable=not progress, leave=False)):
        if max_batches is not None and i >= max_batches:
            break
        logits = model(x.to(dev))
        correct += int((logits.argmax(1) == y.to(dev)).sum())
        total += int(y.shape[0])
    model.train(was_training)
    if total == 0:
        raise ValueError("loader: yielded no samples to evaluate")
    return correct / total


def train_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                progress: bool = False, desc: str = "train",
                after_step: Callable[[nn.Module], None] | None = None) -> float:
    """One epoch of cross-entropy training; returns the mean training loss.

    Args:
        model: ANN or :class:`SpikingNetwork` (BPTT through the surrogate gradients).
        loader: iterable of ``(images, labels)``.
        optimizer: the optimiser over ``model``'s parameters.
        progress: show a progress bar.
        desc: the progress bar's label.
        after_step: called with the model after every optimiser step (e.g. to clamp weights).
    """
    model.train()
    dev = model_device(model)
    total = 0.0
    count = 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for x, y in bar:
        x, y = x.to(dev), y.to(dev)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} (diverged)")
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(model)
        total += float(loss.detach()) * y.shape[0]
        count += int(y.shape[0])
    if count == 0:
        raise ValueError("loader: yielded no samples to train on")
    return total / count


def train(model: nn.Module, train_loader: Iterable, epochs: int = 5, lr: float = 1e-3,
          val_loader: Iterable | None = None, test_loader: Iterable | None = None,
          seed: int | None = 0, progress: bool = True, desc: str = "train",
          after_epoch: Callable[[nn.Module], None] | None = None,
          lr_schedule: str | None = None) -> list[dict[str, Any]]:
    """Adam training with per-epoch validation and test accuracy.

    Args:
        model: ANN or :class:`SpikingNetwork`.
        train_loader: ``(images, labels)`` batches (its shuffling generator decides the order).
        epochs: number of passes over ``train_loader``.
        lr: Adam learning rate.
        val_loader, test_loader: evaluated after every epoch when given.
        seed: ``torch.manual_seed`` before training (covers default-generator draws), or None.
        progress: show progress bars.
        desc: label for the bars.
        after_epoch: called with the model after each epoch's training, before evaluation
            (the EE 518 study re-applies its hardware constraints here).
        lr_schedule: None (``lr`` throughout) or ``"cosine"``: ``lr`` decays to 0 along a cosine
            over every step of the ``epochs`` (``train_loader`` needs a length).

    Returns:
        One dict per epoch: ``epoch``, ``loss``, and ``val_acc`` / ``test_acc`` when evaluated.

    Raises:
        TypeError / ValueError: ``epochs`` not an integer >= 0, ``lr`` not a finite number > 0,
            ``lr_schedule`` not None or ``"cosine"`` (or ``"cosine"`` with a loader without a length).
    """
    check_int(epochs, "epochs", 0)
    check_number(lr, "lr", 0.0, low_open=True)
    if lr_schedule not in (None, "cosine"):
        raise ValueError(f"lr_schedule: expected None or 'cosine', got {lr_schedule!r}")
    if lr_schedule == "cosine" and not hasattr(train_loader, "__len__"):
        raise ValueError("lr_schedule='cosine' needs a train_loader with a length (steps per epoch)")
    if seed is not None:
        torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * len(train_loader)))
             if lr_schedule == "cosine" else None)
    step = (lambda _model: sched.step()) if sched is not None else None
    history = []
    for epoch in range(1, epochs + 1):
        loss = train_epoch(model, train_loader, opt, progress, f"{desc} {epoch}/{epochs}", after_step=step)
        if after_epoch is not None:
            after_epoch(model)
        row: dict[str, Any] = {"epoch": epoch, "loss": loss}
        if val_loader is not None:
            row["val_acc"] = evaluate(model, val_loader)
        if test_loader is not None:
            row["test_acc"] = evaluate(model, test_loader)
        history.append(row)
    return history


def set_surrogate(snn: nn.Module, surrogate: Callable[[torch.Tensor], torch.Tensor] | str | None = "default") -> nn.Module:
    """Give every IF layer a surrogate spike function (for BPTT), or remove it with None."""
    fn = default_surrogate() if surrogate == "default" else surrogate
    for m in snn.modules():
        if isinstance(m, IFNeuron):
            m.surrogate = fn
    return snn


def snn_from_scratch(ann_factory: Callable[[], nn.Module], timesteps: int, encoder: Any = None,
                     device: Any = None, seed: int = 0) -> SpikingNetwork:
    """A trainable SNN with the architecture of a freshly initialised ANN (threshold 1).

    Args:
        ann_factory: builds the ANN (e.g. ``xbar.models.mlp``); its ReLUs become IF layers.
        timesteps: ``T``.
        encoder: input encoder (default Poisson, max rate 1).
        device: optional device profile; crossbar layers are used when given.
        seed: ``torch.manual_seed`` before building (initial weights).
    """
    from .convert import to_crossbar, to_snn

    torch.manual_seed(seed)
    ann = ann_factory()
    if device is not None:
        ann = to_crossbar(ann, device)
    return set_surrogate(to_snn(ann, timesteps=timesteps, norm="none", encoder=encoder))


@torch.no_grad()
def apply_constraints(model: nn.Module, device: Any, mapping: str = "clip") -> nn.Module:
    """Replace every Linear/Conv2d weight by what a device can hold (the EE 518 procedure).

    Each float weight is mapped onto the device (``mapping``: ``"clip"`` as in the study, or
    ``"differential"``), snapped to its states and mapped back, in place. Crossbar layers are
    re-programmed from their projected master weight.

    Args:
        model: any module.
        device: a device profile, name or path.
        mapping: ``"clip"`` or ``"differential"``.

    Returns:
        ``model``.
    """
    from .layers import CROSSBAR_TYPES, _resolve_profile
    from .mapping import map_weights, unmap

    dev = _resolve_profile(device)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            states = dev.state_tensor(dtype=m.weight.dtype, device=m.weight.device)
            g = map_weights(m.weight, dev.g_min, dev.g_max, states, dev.on_off_ratio, mapping)
            m.weight.copy_(unmap(g.g_pos, g.g_neg, g.scale))
            if isinstance(m, CROSSBAR_TYPES):
                m.program()
    return model


def _scaled_noise(profile: Any, noise_scale: float) -> Any:
    return profile.replace(programming_sigma=profile.programming_sigma * noise_scale,
                           read_sigma=profile.read_sigma * noise_scale,
                           d2d_sigma=profile.d2d_sigma * noise_scale)


def hardware_aware_finetune(model: nn.Module, device: Any, train_loader: Iterable, epochs: int = 1,
                            lr: float = 1e-4, noise_scale: float = 1.0, calibration: Any = None,
                            seed: int = 0, chip_seed: int | None = 0, faults: str = "chip",
                            val_loader: Iterable | None = None, progress: bool = True,
                            desc: str = "hw-aware") -> nn.Module:
    """Finetune ``model`` with the device's non-idealities in the forward pass (noise injection).

    Every optimiser step changes the master weights, so every forward re-programs the crossbars
    with fresh programming noise, device-to-device spread and stuck-at faults (the profile's
    figures times ``noise_scale``), reads them with fresh read noise through the DAC, tiles and
    ADC, and snaps to the state table; the backward pass is the ideal one (straight through).
    The network learns weights that tolerate the errors of any chip. Stuck devices are either
    the chip's own defect map, fixed from ``chip_seed`` as a read-after-write test would find
    it (``faults="chip"``, the default: training then learns, among other things, to drive the
    partner of a device stuck at ``g_max`` so that the pair cancels), or a fresh random map at
    every step (``faults="random"``).

    Works for ANNs before conversion (``nn.Linear`` / ``nn.Conv2d`` or crossbar layers) and for
    :class:`SpikingNetwork` s trained with surrogate gradients (BPTT; IF layers without a
    surrogate get spikingjelly's default).

    Args:
        model: the network; not modified (a copy is trained).
        device: the target device profile, name or path.
        train_loader: ``(images, labels)`` batches.
        epochs: passes over ``train_loader`` (>= 0).
        lr: Adam learning rate (> 0) at the start; it follows a cosine schedule to 0 over the
            run when ``train_loader`` has a length.
        noise_scale: multiplies the programming, read and device-to-device sigmas during
            training (>= 0; > 1 trains for margin).
        calibration: data for the ADC/DAC ranges (:func:`xbar.calibrate_periphery`, max
            method), set before training when the device has converters; None keeps the
            layers' ranges.
        seed: ``torch.manual_seed`` first (every noise draw, the calibration and the batch
            order follow from it).
        chip_seed: the chip: its defect map (``faults="chip"``, :func:`xbar.fix_faults`) and,
            after training, its programming (:func:`xbar.program_model`); None draws from the
            global generator.
        faults: ``"chip"`` or ``"random"`` (see above).
        val_loader: evaluated after every epoch (printed with ``progress``).
        progress: show progress bars.
        desc: label of the bars.

    Returns:
        The finetuned copy, with crossbar layers on ``device`` (``.history`` holds one dict
        per epoch: ``epoch``, ``loss``, ``val_acc`` when evaluated).
    """
    from .convert import to_crossbar
    from .layers import CROSSBAR_TYPES, _resolve_profile
    from .chip import calibrate_periphery, fix_faults, program_model

    check_int(epochs, "epochs", 0)
    check_number(lr, "lr", 0.0, low_open=True)
    check_number(noise_scale, "noise_scale", 0.0)
    if faults not in ("chip", "random"):
        raise ValueError(f"faults: must be 'chip' or 'random', got {faults!r}")
    target = _resolve_profile(device)
    noisy = _scaled_noise(target, noise_scale)
    torch.manual_seed(seed)
    hw = to_crossbar(model, noisy)
    layers = [m for m in hw.modules() if isinstance(m, CROSSBAR_TYPES)]
    if not layers:
        raise ValueError("model: has no Linear, Conv2d or crossbar layer to finetune")
    for m in layers:
        m.profile = noisy
    fix_faults(hw, chip_seed if faults == "chip" and chip_seed is not None else None)
    if isinstance(hw, SpikingNetwork) and any(m.surrogate is None for m in hw.modules() if isinstance(m, IFNeuron)):
        set_surrogate(hw)
    if calibration is not None and (target.adc_bits is not None or target.dac_bits is not None):
        calibrate_periphery(hw, calibration, method="max")
    opt = torch.optim.Adam([p for p in hw.parameters() if p.requires_grad], lr=lr)
    total = max(1, epochs * len(train_loader)) if hasattr(train_loader, "__len__") else None
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total) if total else None
    history = []
    for epoch in range(1, epochs + 1):
        row: dict[str, Any] = {"epoch": epoch, "loss": train_epoch(
            hw, train_loader, opt, progress, f"{desc} {epoch}/{epochs}",
            after_step=(lambda _m: sched.step()) if sched else None)}
        if val_loader is not None:
            row["val_acc"] = evaluate(hw, val_loader, progress=progress, desc=f"{desc} val")
        history.append(row)
    for m in layers:
        m.profile = target
    program_model(hw, chip_seed)
    hw.history = history
    return hw
