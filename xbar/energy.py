"""Energy metering: accumulate operations and joules caused by every input event, per layer.

:class:`EnergyMeter` owns forward hooks (sinabs style: counters that add, removed on exit) on
every ``Linear`` / ``Conv2d`` (crossbar or float) and every :class:`~xbar.IFNeuron` of a model.
For each read of a layer with row drive ``x`` (DESIGN.md, "Physical model"):

* input events: non-zero entries of ``x`` (spikes, for binary input);
* ACs (binary ``x``) or MACs (analog ``x``): ``sum_i [x_i != 0] * fan_out_i``, where
  ``fan_out_i`` is ``out_features`` for Linear and, for Conv2d, the exact number of
  (output channel, output position) pairs input position ``i`` feeds;
* crossbar read energy ``E = t_read * sum_i (x_i V_read)^2 * sum_j (G+_ij + G-_ij)``
  (for Conv2d summed over every output position's read);
* ADC conversions: one per column output per read, times ``adc_pj``;
* IF layers: neuron updates times ``neuron_update_pj`` and spikes times ``spike_pj``;
* digital comparison: ``ACs * digital_ac_pj + MACs * digital_mac_pj`` against the ANN's dense
  ``MACs * digital_mac_pj`` for one pass per sample (Horowitz 2014, 45 nm).

Counts add over timesteps and batches; :meth:`EnergyMeter.report` divides them by the number of
samples seen (per-sample figures). Float (non-crossbar) layers are charged as if programmed on
the meter's device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .device import DeviceProfile
from .layers import CROSSBAR_TYPES, _resolve_profile
from .mapping import map_weights
from .neurons import IFNeuron

_PJ = 1e-12


@dataclass
class LayerEnergy:
    """Per-sample counts and energies of one layer (joules, counts per sample).

    Synaptic layers fill the crossbar fields; IF layers fill the neuron fields.
    """

    name: str
    kind: str
    input_events: float = 0.0
    acs: float = 0.0
    macs: float = 0.0
    crossbar_j: float = 0.0
    adc_conversions: float = 0.0
    adc_j: float = 0.0
    neuron_updates: float = 0.0
    spikes: float = 0.0
    neuron_j: float = 0.0
    spike_j: float = 0.0
    digital_snn_j: float = 0.0
    ann_macs: float = 0.0
    digital_ann_j: float = 0.0

    @property
    def joules(self) -> float:
        """Crossbar, ADC, neuron and spike energy of this layer, joules per sample."""
        return self.crossbar_j + self.adc_j + self.neuron_j + self.spike_j


@dataclass
class EnergyReport:
    """Energy and operation counts per sample, per layer and in total.

    Attributes:
        samples: number of samples the counts were divided by.
        layers: one :class:`LayerEnergy` per metered layer, in model order.
        device: name of the device profile whose constants were used.
    """

    samples: int
    layers: list[LayerEnergy] = field(default_factory=list)
    device: str = ""

    def _total(self, key: str) -> float:
        return float(sum(getattr(layer, key) for layer in self.layers))

    @property
    def input_events(self) -> float:
        """Non-zero inputs arriving at synaptic layers (spikes, for binary input), per sample."""
        return self._total("input_events")

    @property
    def acs(self) -> float:
        """Accumulate operations (binary input events times fan-out), per sample."""
        return self._total("acs")

    @property
    def macs(self) -> float:
        """Multiply-accumulates (analog input events times fan-out), per sample."""
        return self._total("macs")

    @property
    def synaptic_events(self) -> float:
        """Synaptic operations, ``acs + macs`` (SynOps in sinabs' terms), per sample."""
        return self.acs + self.macs

    @property
    def crossbar_j(self) -> float:
        """Crossbar read energy, joules per sample."""
        return self._total("crossbar_j")

    @property
    def adc_j(self) -> float:
        """ADC energy, joules per sample."""
        return self._total("adc_j")

    @property
    def neuron_j(self) -> float:
        """Neuron update and spike energy, joules per sample."""
        return self._total("neuron_j") + self._total("spike_j")

    @property
    def joules(self) -> float:
        """Total analog-hardware energy (crossbar + ADC + neurons + spikes), joules per sample."""
        return self._total("joules")

    @property
    def digital_snn_j(self) -> float:
        """The same operations on digital hardware (ACs x 0.9 pJ + MACs x 4.6 pJ), per sample."""
        return self._total("digital_snn_j")

    @property
    def ann_macs(self) -> float:
        """Dense MACs of one ANN pass, per sample."""
        return self._total("ann_macs")

    @property
    def digital_ann_j(self) -> float:
        """The ANN's dense MACs x digital_mac_pj, joules per sample."""
        return self._total("digital_ann_j")

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready): totals and per-layer figures."""
        totals = {k: getattr(self, k) for k in (
            "input_events", "acs", "macs", "synaptic_events", "crossbar_j", "adc_j", "neuron_j",
            "joules", "digital_snn_j", "ann_macs", "digital_ann_j")}
        return {"samples": self.samples, "device": self.device, "totals": totals,
                "layers": [dict(asdict(layer), joules=layer.joules) for layer in self.layers]}

    def table(self) -> str:
        """A human-readable table, one row per layer plus the total."""
        head = f"{'layer':<18}{'events':>12}{'ACs':>12}{'MACs':>12}{'crossbar J':>12}{'total J':>12}"
        rows = [head, "-" * len(head)]
        for layer in self.layers:
            rows.append(f"{layer.name:<18}{layer.input_events:>12.4g}{layer.acs:>12.4g}"
                        f"{layer.macs:>12.4g}{layer.crossbar_j:>12.4g}{layer.joules:>12.4g}")
        rows.append(f"{'total':<18}{self.input_events:>12.4g}{self.acs:>12.4g}{self.macs:>12.4g}"
                    f"{self.crossbar_j:>12.4g}{self.joules:>12.4g}")
        rows.append(f"digital: SNN {self.digital_snn_j:.4g} J vs ANN {self.digital_ann_j:.4g} J "
                    f"per sample ({self.samples} samples)")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


class _Counter:
    """Accumulators of one metered module (float64, summed over every call)."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.values: dict[str, float] = {}
        self.ann_macs_per_sample = 0.0
        self.cache: dict[Any, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def add(self, key: str, value: torch.Tensor | float) -> None:
        self.values[key] = self.values.get(key, 0.0) + float(value)


def _short_name(name: str) -> str:
    return name.replace("body.stages.", "").replace(".layer", "") or "model"


class EnergyMeter:
    """Counts operations and energy of every layer while a model runs.

    Args:
        model: a :class:`~xbar.SpikingNetwork` or any module holding Linear/Conv2d layers.
        device: the device profile (or name/path) whose read voltage, read time and pJ
            constants are used; float layers are charged as if programmed on it. Default:
            the profile of the model's first crossbar layer, else ``"ideal"``.

    Use as a context manager; hooks are removed on exit::

        with EnergyMeter(snn, dev) as meter:
            snn(images)
        report = meter.report()
    """

    def __init__(self, model: nn.Module, device: DeviceProfile | str | None = None) -> None:
        self.model = model
        if device is None:
            first = next((m for m in model.modules() if isinstance(m, CROSSBAR_TYPES)), None)
            device = first.profile if first is not None else None
        self.device = _resolve_profile(device)
        self._handles: list[Any] = []
        self._counters: dict[nn.Module, _Counter] = {}
        self.samples = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "EnergyMeter":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Register the hooks (done by ``with``)."""
        if self._handles:
            return
        from .snn import SpikingNetwork

        top = self.model.body if isinstance(self.model, SpikingNetwork) else self.model
        batch_dim = 1 if isinstance(self.model, SpikingNetwork) else 0
        self._handles.append(top.register_forward_pre_hook(
            lambda _m, args: self._count_samples(args, batch_dim)))
        for name, module in self.model.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                kind = "conv2d" if isinstance(module, nn.Conv2d) else "linear"
                self._counters.setdefault(module, _Counter(_short_name(name), kind))
                self._handles.append(module.register_forward_hook(self._synaptic_hook))
            elif isinstance(module, IFNeuron):
                self._counters.setdefault(module, _Counter(_short_name(name), "if"))
                self._handles.append(module.register_forward_hook(self._neuron_hook))

    def stop(self) -> None:
        """Remove every hook this meter registered (done on leaving ``with``)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        """Zero every count; metering goes on if active."""
        self.samples = 0
        for c in self._counters.values():
            c.values.clear()

    # -- hooks -------------------------------------------------------------------------------
    def _count_samples(self, args: tuple, batch_dim: int) -> None:
        x = args[0]
        if isinstance(x, torch.Tensor) and x.dim() > batch_dim:
            self.samples += int(x.shape[batch_dim])

    def _conductance_sum(self, module: nn.Module) -> torch.Tensor:
        """``G+ + G-`` of every device pair, siemens, weight-shaped."""
        if isinstance(module, CROSSBAR_TYPES):
            module._ensure_programmed()
            g_pos, g_neg = module.read_conductances()
            return g_pos + g_neg
        dev = self.device
        states = dev.state_tensor(dtype=module.weight.dtype, device=module.weight.device)
        g = map_weights(module.weight.detach(), dev.g_min, dev.g_max, states, dev.on_off_ratio)
        return g.g_pos + g.g_neg

    def _feed_maps(self, module: nn.Module, x: torch.Tensor, c: _Counter):
        """Per-input-position fan-out and conductance sum it drives; cached per input shape."""
        key = (tuple(x.shape[1:]), module.weight._version, getattr(module, "_stamp", None),
               getattr(module, "_drift_t", None))
        hit = c.cache.get(key)
        if hit is not None:
            return hit
        with torch.no_grad():
            gsum = self._conductance_sum(module).to(x.dtype)
            if isinstance(module, nn.Linear):
                fan_out = torch.full((x.shape[-1],), float(module.out_features), dtype=x.dtype, device=x.device)
                g_feed = gsum.sum(0)
                outputs = float(module.out_features)
            else:
                out_hw = _conv_out_hw(module, x.shape[-2:])
                ones = torch.ones(1, module.out_channels, *out_hw, dtype=x.dtype, device=x.device)
                fan_out = _conv_feed(module, ones, torch.ones_like(gsum), x.shape[-2:])
                g_feed = _conv_feed(module, ones, gsum, x.shape[-2:])
                outputs = float(module.out_channels * out_hw[0] * out_hw[1])
        c.cache.clear()
        c.cache[key] = (fan_out, g_feed, outputs)
        return c.cache[key]

    @torch.no_grad()
    def _synaptic_hook(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        x = args[0].detach()
        c = self._counters[module]
        fan_out, g_feed, outputs = self._feed_maps(module, x, c)
        dev = self.device
        flat = x.reshape(-1, *fan_out.shape)
        nz = (flat != 0).to(x.dtype).sum(0)
        binary = bool(((flat == 0) | (flat == 1)).all())
        ops = float((nz * fan_out).sum())
        c.add("input_events", nz.sum())
        c.add("acs" if binary else "macs", ops)
        sq = nz if binary else (flat * flat).sum(0)
        read_j = dev.read_time * dev.read_voltage ** 2 * float((sq * g_feed).sum())
        c.add("crossbar_j", read_j)
        reads = flat.shape[0]
        c.add("adc_conversions", reads * outputs)
        c.add("adc_j", reads * outputs * dev.adc_pj * _PJ)
        c.add("digital_snn_j", ops * (dev.digital_ac_pj if binary else dev.digital_mac_pj) * _PJ)
        c.ann_macs_per_sample = float(fan_out.sum())

    @torch.no_grad()
    def _neuron_hook(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        c = self._counters[module]
        dev = self.device
        updates = float(args[0].numel())
        spikes = float(out.detach().sum())
        c.add("neuron_updates", updates)
        c.add("spikes", spikes)
        c.add("neuron_j", updates * dev.neuron_update_pj * _PJ)
        c.add("spike_j", spikes * dev.spike_pj * _PJ)

    # -- results -----------------------------------------------------------------------------
    def raw_totals(self) -> dict[str, float]:
        """Sums over every layer and every sample so far (not divided by samples).

        Keys: ``input_events``, ``acs``, ``macs``, ``joules`` (crossbar + ADC + neuron + spike).
        Useful to read counts at several points of one run (differences of two snapshots).
        """
        out = {"input_events": 0.0, "acs": 0.0, "macs": 0.0, "joules": 0.0}
        for c in self._counters.values():
            v = c.values
            for key in ("input_events", "acs", "macs"):
                out[key] += v.get(key, 0.0)
            out["joules"] += sum(v.get(k, 0.0) for k in ("crossbar_j", "adc_j", "neuron_j", "spike_j"))
        return out

    def report(self) -> EnergyReport:
        """Per-sample figures for every metered layer (zeros before any sample)."""
        per = 1.0 / self.samples if self.samples else 0.0
        layers = []
        for c in self._counters.values():
            layer = LayerEnergy(name=c.name, kind=c.kind)
            for key, value in c.values.items():
                setattr(layer, key, value * per)
            if c.kind != "if" and c.values:
                layer.ann_macs = c.ann_macs_per_sample
                layer.digital_ann_j = c.ann_macs_per_sample * self.device.digital_mac_pj * _PJ
            layers.append(layer)
        return EnergyReport(samples=self.samples, layers=layers, device=self.device.name)


def _conv_out_hw(conv: nn.Conv2d, in_hw: torch.Size) -> tuple[int, int]:
    out = []
    for i in range(2):
        k, s, p, d = conv.kernel_size[i], conv.stride[i], conv.padding[i], conv.dilation[i]
        if isinstance(conv.padding, str):
            raise ValueError(f"{conv}: string padding is not supported by the energy meter")
        out.append((in_hw[i] + 2 * p - d * (k - 1) - 1) // s + 1)
    return out[0], out[1]


def _conv_feed(conv: nn.Conv2d, ones_out: torch.Tensor, kernel: torch.Tensor, in_hw: torch.Size) -> torch.Tensor:
    """For each input position ``[C_in, H, W]``: the sum of ``kernel`` over every (output
    channel, output position, tap) it feeds (a transposed convolution of ones)."""
    size = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in zip(
        ones_out.shape[-2:], conv.stride, conv.padding, conv.dilation, conv.kernel_size)]
    extra = [max(0, in_hw[i] - size[i]) for i in range(2)]
    out_pad = tuple(min(e, max(conv.stride[i], conv.dilation[i]) - 1) for i, e in enumerate(extra))
    full = F.conv_transpose2d(ones_out, kernel, stride=conv.stride, padding=conv.padding,
                              output_padding=out_pad, dilation=conv.dilation, groups=conv.groups)
    h, w = full.shape[-2:]
    pad = (0, max(0, in_hw[1] - w), 0, max(0, in_hw[0] - h))
    return F.pad(full, pad)[0, :, : in_hw[0], : in_hw[1]]
