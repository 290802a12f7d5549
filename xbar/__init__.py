"""xbar: memristor crossbars under spiking neural networks, with an energy model.

The public API (DESIGN.md, "Public API contract")::

    dev = xbar.load_device("seed-4bit")
    model = xbar.to_crossbar(ann, dev)
    snn = xbar.to_snn(model, calibration=loader, timesteps=32, norm="percentile")
    with xbar.EnergyMeter(snn, dev) as meter:
        logits = snn(images)
    report = meter.report()
"""

from importlib import import_module
from typing import Any

from .device import DeviceProfile, DeviceProfileError, DeviceProfileWarning, list_devices, load_device

# Torch-backed names load on first use, so that `xbar devices list` starts fast.
_LAZY = {
    "NORMS": "convert", "flatten_sequential": "convert", "to_crossbar": "convert", "to_snn": "convert",
    "ConversionError": "convert", "normalised_ann": "convert", "Graph": "graph", "SpikingMaxPool": "pooling",
    "ConstantEncoder": "encoding", "PoissonEncoder": "encoding",
    "EnergyMeter": "energy", "EnergyReport": "energy", "LayerEnergy": "energy",
    "CrossbarConv1d": "layers", "CrossbarConv2d": "layers", "CrossbarLinear": "layers",
    "map_weights": "mapping", "snap": "mapping", "unmap": "mapping",
    "IFNeuron": "neurons", "if_scan": "neurons", "if_step": "neurons",
    "CurrentReadout": "snn", "SpikingNetwork": "snn",
    "drift": "chip",
    "calibrate_periphery": "chip", "program_model": "chip", "fix_faults": "chip",
    "hardware_aware_finetune": "train",
    "save": "checkpoint", "load": "checkpoint", "CheckpointError": "checkpoint",
    "export_nir": "interchange", "NIRExportError": "interchange", "digital_twin": "interchange",
    "QCFS": "qcfs", "to_qcfs": "qcfs",
}


# Submodules reachable as attributes (``xbar.convert.normalised_ann``) before anything imported them.
_SUBMODULES = ("chip", "checkpoint", "convert", "data", "energy", "encoding", "execute", "graph", "interchange",
               "layers", "mapping", "neurons", "nonideal", "observers", "periphery", "pooling", "qcfs", "snn", "specs",
               "train", "validation")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'xbar' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "ConstantEncoder", "ConversionError", "CrossbarConv1d", "CrossbarConv2d", "CrossbarLinear", "CurrentReadout", "DeviceProfile",
    "DeviceProfileError", "DeviceProfileWarning", "EnergyMeter", "EnergyReport", "Graph", "IFNeuron", "LayerEnergy",
    "NIRExportError", "NORMS", "QCFS",
    "PoissonEncoder", "SpikingMaxPool", "SpikingNetwork", "calibrate_periphery", "digital_twin", "drift",
    "export_nir", "flatten_sequential",
    "fix_faults", "hardware_aware_finetune", "program_model", "if_scan", "if_step",
    "list_devices", "load_device", "map_weights", "normalised_ann", "snap", "to_crossbar", "to_qcfs", "to_snn", "unmap",
    "__version__",
]
