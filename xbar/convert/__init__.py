"""Model conversion: ``to_crossbar`` (module swap) and ``to_snn`` (graph passes).

``to_snn`` reads top to bottom in :mod:`xbar.convert.pipeline`: capture
(:mod:`~xbar.convert.capture`), normalise (:mod:`~xbar.convert.normalise`,
:mod:`~xbar.convert.batchnorm`), balance (:mod:`~xbar.convert.balance`), spiking graph
(:mod:`~xbar.convert.spiking`), and optionally bias correction on the spiking network
(:mod:`~xbar.convert.calibrate`).
"""

from __future__ import annotations

import warnings

from torch import nn

from .balance import NORMS
from .batchnorm import fold_batchnorm
from .capture import ConversionError
from .pipeline import normalised_ann, to_snn
from .swap import to_crossbar

__all__ = ["ConversionError", "NORMS", "flatten_sequential", "fold_batchnorm", "normalised_ann", "to_crossbar",
           "to_snn"]


def flatten_sequential(model: nn.Module) -> list[nn.Module]:
    """Deprecated: the leaf stages of a nested ``nn.Sequential`` (Identity / Dropout dropped).

    ``to_snn`` traces models as graphs now (:func:`normalised_ann` shows what it sees); this
    helper stays for code written against the flat-list converter.

    Raises:
        TypeError: naming the first module that is not a Linear / Conv2d / ReLU / AvgPool2d /
            Flatten.
    """
    warnings.warn("flatten_sequential is deprecated: to_snn converts graphs (see xbar.convert.normalised_ann)",
                  DeprecationWarning, stacklevel=2)
    return _flatten(model)


def _flatten(model: nn.Module) -> list[nn.Module]:
    if type(model) is nn.Sequential:
        return [m for child in model for m in _flatten(child)]
    if isinstance(model, (nn.Identity, nn.Dropout)):
        return []
    if isinstance(model, (nn.Linear, nn.Conv2d, nn.Flatten, nn.AvgPool2d, nn.ReLU)):
        return [model]
    raise TypeError(f"ann: cannot flatten module {type(model).__name__}; to_snn converts it as a graph instead")
