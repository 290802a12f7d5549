"""Interchange with the neuromorphic ecosystem.

* :func:`export_nir` (:mod:`xbar.interchange.nir_export`): a converted network as a NIR graph
  (Neuromorphic Intermediate Representation, the ``nir`` package; ``pip install "xbar[nir]"``),
  with the weights the crossbars hold;
* :func:`digital_twin` (:mod:`xbar.interchange.twin`): the same network with plain
  ``nn.Linear`` / ``nn.Conv`` layers holding those weights, for tools that re-run a layer's
  ``forward`` on copies of it (NeuroBench's ``synaptic_operations``).

The energy meter's NeuroBench-compatible counts (``effective_acs``, ``effective_macs``,
``activation_sparsity``) are in :mod:`xbar.energy`.
"""

from __future__ import annotations

from .nir_export import NIRExportError, export_nir
from .twin import digital_twin, layer_weights

__all__ = ["NIRExportError", "digital_twin", "export_nir", "layer_weights"]
