"""xbar: memristor crossbars under spiking neural networks, with an energy model.

The public API (DESIGN.md, "Public API contract")::

    dev = xbar.load_device("seed-4bit")
    model = xbar.to_crossbar(ann, dev)
    snn = xbar.to_snn(model, calibration=loader, timesteps=32, norm="percentile")
    with xbar.EnergyMeter(snn, dev) as meter:
        logits = snn(images)
    report = meter.report()
"""

from .convert import NORMS, flatten_sequential, to_crossbar, to_snn
from .device import DeviceProfile, DeviceProfileError, list_devices, load_device
from .encoding import ConstantEncoder, PoissonEncoder
from .energy import EnergyMeter, EnergyReport, LayerEnergy
from .layers import CrossbarConv2d, CrossbarLinear
from .mapping import map_weights, snap, unmap
from .neurons import IFNeuron, if_scan, if_step
from .snn import CurrentReadout, SpikingNetwork

__version__ = "0.1.0"

__all__ = [
    "ConstantEncoder", "CrossbarConv2d", "CrossbarLinear", "CurrentReadout", "DeviceProfile",
    "DeviceProfileError", "EnergyMeter", "EnergyReport", "IFNeuron", "LayerEnergy", "NORMS",
    "PoissonEncoder", "SpikingNetwork", "flatten_sequential", "if_scan", "if_step",
    "list_devices", "load_device", "map_weights", "snap", "to_crossbar", "to_snn", "unmap",
    "__version__",
]
