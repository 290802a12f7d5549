"""QCFS: the quantisation-clip-floor-shift activation (Bu et al., ICLR 2022) and its helpers.

"Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency spiking neural networks"
replaces every ReLU of the ANN by

    h(x) = lambda * clamp(floor(x * L / lambda + 1/2) / L, 0, 1)

with ``L`` quantisation levels and a learnable clip ``lambda`` per layer; ``floor`` passes its
gradient straight through. An IF neuron with threshold ``theta = lambda``, initial potential
``theta / 2`` and reset by subtraction, driven by a constant input ``x`` for ``T = L`` steps,
fires exactly ``L * h(x) / lambda`` spikes: its rate times ``lambda`` is ``h(x)``. Converting with
``xbar.to_snn(ann, norm="qcfs")`` reads the thresholds from the trained clips, so a network with
one IF layer behind a constant drive is the quantised ANN, and deeper ones come close already at
a few timesteps (the exactness holds layer by layer only while each layer's input is constant
over time; Bu et al.'s theorem is about the expected error).

- :class:`QCFS`: the activation module (``levels``, learnable ``clip``).
- :func:`to_qcfs` (``xbar.to_qcfs``; ``xbar.qcfs`` is this module): a copy of a model (or the model
  itself, ``inplace=True``) with every ``nn.ReLU`` module swapped for a :class:`QCFS`; a model
  whose ``forward`` calls ``F.relu`` (residual blocks) comes back as a traced ``GraphModule``
  with those call sites swapped too. A model with a ReLU left (a hand-made mix) is refused by
  ``to_snn(norm="qcfs")``, naming it.
- :func:`qcfs_clips`: ``{module path: clip}`` of a model's QCFS modules.
- :func:`release_qcfs`: the model with its QCFS modules back to ``nn.ReLU`` and their clips, for
  conversion (:mod:`xbar.convert.pipeline`).
- :func:`quantise`: the pure function ``h`` (no module).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["QCFS", "qcfs_clips", "quantise", "release_qcfs", "to_qcfs"]


class _FloorSTE(torch.autograd.Function):
    """``floor`` forward, identity backward (straight through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return torch.floor(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return g


def _check_levels(levels: int) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels: the number of quantisation levels must be an integer >= 1, got {levels!r}")
    return levels


def quantise(x: torch.Tensor, clip: torch.Tensor | float, levels: int) -> torch.Tensor:
    """``clip * floor(clamp(x / clip, 0, 1) * levels + 1/2) / levels``: the QCFS activation.

    Equal to ``clip * clamp(floor(x * levels / clip + 1/2) / levels, 0, 1)`` (the clamp before
    or after the floor gives the same values); clamping first, as Bu et al.'s code does, gives
    ``x`` no gradient outside ``[0, clip]``. ``floor`` is straight through; ``clip`` gets the
    gradient of the clamp and of the product.
    """
    clip = torch.as_tensor(clip, dtype=x.dtype, device=x.device)
    y = torch.clamp(x / clip, 0.0, 1.0)
    return _FloorSTE.apply(y * levels + 0.5) / levels * clip


class QCFS(nn.Module):
    """The QCFS activation with a learnable clip (one per layer).

    Args:
        levels: ``L``, the quantisation levels (>= 1); convert at ``T = L`` for the exact
            correspondence (other ``T`` work, less exactly).
        clip: the initial clip ``lambda`` (> 0; Bu et al. start from 8).
        learn_clip: make the clip a trainable parameter (default), else a buffer.
    """

    def __init__(self, levels: int = 8, clip: float = 8.0, learn_clip: bool = True) -> None:
        super().__init__()
        self.levels = _check_levels(levels)
        c = float(clip)
        if not c > 0 or c != c or c == float("inf"):
            raise ValueError(f"clip: must be a finite number > 0, got {clip!r}")
        t = torch.tensor(c, dtype=torch.float32)
        if learn_clip:
            self.clip = nn.Parameter(t)
        else:
            self.register_buffer("clip", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``quantise(x, clip, levels)``."""
        return quantise(x, self.clip, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, clip={float(self.clip.detach()):.4g}"


def to_qcfs(model: nn.Module, levels: int = 8, clip: float = 8.0, inplace: bool = False,
            learn_clip: bool = True, example: torch.Tensor | None = None) -> nn.Module:
    """``model`` with every ReLU replaced by a :class:`QCFS` (train it after).

    ``nn.ReLU`` modules are swapped where they are. When the model's ``forward`` also calls
    ReLUs as functions or methods (``F.relu``, ``torch.relu``, ``x.relu()``, as residual blocks
    do after the addition), those are not modules: the model is then traced
    (:func:`xbar.convert.capture.capture`) and rewritten into the converter's vocabulary
    (:func:`xbar.convert.normalise.canonicalize`: every ReLU call site an ``nn.ReLU`` module at
    the path of its scope, e.g. ``layer1.relu``; BatchNorm, Dropout removal and the rest as
    ``to_snn`` sees them, BatchNorm still unfolded and trainable), and what is returned is that
    ``torch.fx.GraphModule`` with every ReLU swapped. Its parameters keep the model's paths
    (``layer1.conv1.weight``, ...), so a state dict loads into ``to_qcfs(fresh_model)``.

    Args:
        model: any module (a zoo model, a user's network; crossbar layers are fine).
        levels: quantisation levels ``L`` of every QCFS.
        clip: initial clip of every QCFS.
        inplace: modify ``model`` itself instead of a deep copy (not possible for a model with
            functional ReLUs: the result is a new GraphModule sharing its parameters).
        learn_clip: trainable clips (default).
        example: an input batch, only needed when a reshape's per-sample shape must be
            measured (as for ``to_snn``).

    Returns:
        The model with QCFS activations (``model`` itself with ``inplace`` when all its ReLUs
        are modules), or a ``GraphModule`` (above).

    Raises:
        ValueError: ``levels`` or ``clip`` out of range, or a model without any ReLU.
        ConversionError: the model has functional ReLUs and holds an op ``to_snn`` refuses.
    """
    _check_levels(levels)
    out = model if inplace else copy.deepcopy(model)
    traced = _traced_with_functional_relu(out)
    if traced is not None:
        from .convert.normalise import canonicalize

        out = canonicalize(traced, example)
    swapped = _swap_relus(out, levels, clip, learn_clip)
    if not swapped:
        raise ValueError("model: has no ReLU to replace (neither an nn.ReLU module nor an F.relu / torch.relu / x.relu() call)")
    return out


def _swap_relus(model: nn.Module, levels: int, clip: float, learn_clip: bool) -> int:
    swapped = 0
    for _name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                setattr(parent, child_name, QCFS(levels, clip, learn_clip))
                swapped += 1
    return swapped


def _traced_with_functional_relu(model: nn.Module) -> "torch.fx.GraphModule | None":
    """``model`` traced, when its graph holds a ReLU that is not a module; else None (also when
    it cannot be traced: ``to_snn`` then reports why)."""
    from .convert.capture import ConversionError, capture

    relus = {torch.relu, torch.relu_, nn.functional.relu, nn.functional.relu_}
    try:
        gm = capture(model)
    except ConversionError:
        return None
    functional = any((n.op == "call_function" and n.target in relus)
                     or (n.op == "call_method" and n.target in ("relu", "relu_"))
                     or (n.op == "call_method" and n.target == "clamp" and n.kwargs.get("min") == 0)
                     for n in gm.graph.nodes)
    return gm if functional else None


def qcfs_clips(model: nn.Module) -> dict[str, float]:
    """``{module path: clip}`` of every :class:`QCFS` in ``model``."""
    return {name: float(m.clip.detach()) for name, m in model.named_modules() if isinstance(m, QCFS)}


def release_qcfs(model: nn.Module) -> tuple[nn.Module, dict[str, float], dict[str, int]]:
    """For conversion: ``(copy, clips, levels)``, the copy with every :class:`QCFS` an ``nn.ReLU``
    at the same path, and the clip and levels of each path. A model without QCFS is returned
    as it is (not copied), with empty dicts."""
    clips = qcfs_clips(model)
    if not clips:
        return model, {}, {}
    levels = {name: m.levels for name, m in model.named_modules() if isinstance(m, QCFS)}
    out = copy.deepcopy(model)
    for name in clips:
        parent_path, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_path) if parent_path else out
        setattr(parent, attr, nn.ReLU())
    return out, clips, levels
