"""How a spiking network tells an energy meter what its fast paths skip.

A :class:`~xbar.SpikingNetwork` runs modules in ways a forward hook cannot see whole: it feeds
Poisson events straight into a first ``Linear``, fuses IF layers into one scan, runs the output
layer once on the time-mean of the spikes, and does digital work (merge adds, scale stages)
outside any module. Observers (:class:`xbar.EnergyMeter`) registered here hear about each of
these, so that their counts are those of the step-by-step run.

This module imports nothing from xbar: the network (:mod:`xbar.snn`, :mod:`xbar.execute`) and
the meter (:mod:`xbar.energy`) both build on it.

The observer protocol (methods an observer provides):

* ``observer_hook_ids(module) -> set[int]``: ids of the hooks the observer put on ``module``
  (fast paths skip modules that carry other hooks);
* ``expect_input(module, stats | None)``: describes the input of ``module``'s next call;
* ``record_synaptic(module, stats)``: reads of a synaptic module computed without calling it;
* ``record_neuron(module, updates, spikes)``: an IF layer's updates and spikes, when fused;
* ``record_digital(name, field, count)``: digital operations of a graph node (``field`` one of
  ``"merge_adds"``, ``"scale_muls"``);
* ``record_samples(count)``: samples entering the network.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["InputStats", "attach_observer", "detach_observer", "observers_of"]


@dataclass
class InputStats:
    """What a metered synaptic module's input looked like over the reads it stands for.

    Attributes:
        reads: number of reads (rows of the step-by-step input, ``T * B``).
        binary: the input is known to hold only zeros and ones.
        nz: float64 count of non-zero inputs per input position, summed over the reads,
            shape ``[*in_shape]``; None: the meter counts them from the input it sees.
    """

    reads: int
    binary: bool = True
    nz: torch.Tensor | None = None


_OBSERVERS: "weakref.WeakKeyDictionary[Any, list[Any]]" = weakref.WeakKeyDictionary()


def attach_observer(net: Any, observer: Any) -> None:
    """Let ``observer`` hear about the fast-path work of ``net`` (a spiking network)."""
    lst = _OBSERVERS.setdefault(net, [])
    if observer not in lst:
        lst.append(observer)


def detach_observer(net: Any, observer: Any) -> None:
    """Undo :func:`attach_observer`."""
    lst = _OBSERVERS.get(net, [])
    if observer in lst:
        lst.remove(observer)


def observers_of(net: Any) -> list[Any]:
    """The observers attached to ``net`` (a copy of the list)."""
    return list(_OBSERVERS.get(net, ()))
