"""Energy metering: accumulate operations and joules caused by every input event, per layer.

:class:`EnergyMeter` owns forward hooks (sinabs style: counters that add, removed on exit) on
every ``Linear`` / ``Conv1d`` / ``Conv2d`` (crossbar or float, subclasses included), every
:class:`~xbar.IFNeuron` and every spiking max-pool of a model; layers with weights of other
kinds are not counted and one warning names them. Rows are named by module path
(``layer1.0.conv2``) and, inside a spiking network, come in execution order. For each read of
a layer with row drive ``x`` (DESIGN.md, "Physical model"):

* input events: non-zero entries of ``x`` (spikes, for binary input);
* ACs (binary ``x``) or MACs (analog ``x``): ``sum_i [x_i != 0] * fan_out_i``, where
  ``fan_out_i`` is ``out_features`` for Linear and, for a convolution, the exact number of
  (output channel, output position) pairs input position ``i`` feeds;
* effective ACs / MACs (NeuroBench 2.3's ``synaptic_operations``: ``Effective_ACs`` /
  ``Effective_MACs``): the same sum over the non-zero weights only, ``sum_i [x_i != 0] *
  nnz_fan_out_i``; a weight is non-zero when the array holds one, ``G+ - G- != 0`` (the
  effective weight read back, snapping and faults included; a float layer's own weight);
  input ``-1`` counts as analog here (NeuroBench calls ``{-1, 0, 1}`` input spikes);
* crossbar read energy ``E = t_read * sum_i (x_i V_read)^2 * sum_j (G+_ij + G-_ij)``
  (for a convolution summed over every output position's read);
* column reads: one per column output per read and per array the column spans (a layer tiled
  into ``n`` row tiles reads ``n`` partial sums per output), with or without an ADC;
* ADC conversions (devices with ``adc_bits``; none for an ideal readout): one per column read,
  times ``adc_pj``;
* DAC conversions (devices with ``dac_bits``, analog drives only: binary spikes need no DAC):
  one per non-zero analog row drive per read (for a convolution, per patch read), times
  ``dac_pj``;
* IF layers: neuron updates times ``neuron_update_pj`` and spikes times ``spike_pj``;
* digital periphery, in its own columns: ``bias_adds`` (one add per output of a layer with a
  bias, per read), ``merge_adds`` and ``scale_muls`` at residual merges and scale stages
  (:mod:`xbar.snn` says where they arise), ``maxpool_ops`` of spiking max-pools (a counter
  increment per input spike and ``k - 1`` comparisons per output and step); adds and
  comparisons cost ``digital_ac_pj``, multiplies ``digital_mac_pj`` (``digital_j``, part of
  the total);
* digital comparison: ``ACs * digital_ac_pj + MACs * digital_mac_pj`` plus the digital
  periphery, against the ANN's dense ``MACs * digital_mac_pj`` for one pass per sample
  (Horowitz 2014, 45 nm).

Counts add over timesteps and batches; :meth:`EnergyMeter.report` divides them by the number of
samples seen (per-sample figures). Float (non-crossbar) layers are charged as if programmed on
the meter's device.

Cost: the counts are reductions of the input that stay on the device (float64 tensors, read
out by :meth:`EnergyMeter.report`). Inside a :class:`~xbar.SpikingNetwork` the network tells
the meter what it already knows (:func:`attach_observer`, :class:`InputStats`): that an input
is binary (from a Poisson encoder or an IF layer: no binary check, one column sum), the spike
counts of Poisson events fed straight into the first layer, and, when the output layer runs
once on the time-mean of the spikes, the counts of the ``T`` reads it stands for. The counts
equal those of the step-by-step run (``tests/test_fast.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .device import DeviceProfile
from .energy_report import EnergyReport, LayerEnergy
from .layers import CROSSBAR_TYPES, _resolve_profile
from .mapping import map_weights
from .neurons import IFNeuron
from .observers import InputStats, attach_observer, detach_observer
from .periphery import tile_count
from .pooling import SpikingMaxPool

_PJ = 1e-12


class _Counter:
    """Accumulators of one metered module (float64 tensors or floats, summed over every call).

    Values stay on the module's device until read, so metering never waits for the device.
    """

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.values: dict[str, torch.Tensor | float] = {}
        self.ann_macs_per_sample = 0.0
        self.outputs_per_read = 0.0
        self.column_outputs = 0.0
        self.cache: dict[Any, tuple[torch.Tensor, torch.Tensor, float, float, torch.Tensor]] = {}

    def add(self, key: str, value: torch.Tensor | float) -> None:
        self.values[key] = self.values.get(key, 0.0) + value

    def floats(self) -> dict[str, float]:
        """The accumulated values as Python floats."""
        return {k: float(v) for k, v in self.values.items()}


def _column_sum(flat: torch.Tensor) -> torch.Tensor:
    """Column sums of binary ``flat [R, n]`` as float64, exact (float32 sums of at most
    ``2**24`` ones are exact; longer inputs are summed in float64)."""
    if flat.shape[0] < 2 ** 24:
        return flat.sum(0).to(torch.float64)
    return flat.to(torch.float64).sum(0)


def _row_chunks(flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``flat [R, ...]`` in row blocks of about ``2**19`` elements on the CPU (small temporaries
    are reused by the allocator instead of being faulted in), whole elsewhere."""
    if flat.device.type != "cpu":
        return (flat,)
    return flat.split(max(1, (1 << 19) // max(1, flat[0].numel())))


def _is_binary(flat: torch.Tensor) -> bool:
    """Every entry is exactly 0 or 1 (``x * (x - 1) == 0`` holds for no other float). The first,
    middle and last rows are looked at alone first: analog input usually shows itself there (a
    tile's first step may hold no spikes yet)."""
    rows = flat.shape[0]
    if rows > 3 and any(bool(torch.any(r * (r - 1.0))) for r in (flat[0], flat[rows // 2], flat[-1])):
        return False
    return not any(bool(torch.any(c * (c - 1.0))) for c in _row_chunks(flat))


def _analog_stats(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input position of ``flat [R, ...]``: non-zero count and sum of squares, float64.

    A float32 input is summed in float32 block by block of rows (:func:`_row_chunks`) and the
    blocks are added in float64: the counts are exact (float32 sums of at most ``2**24`` ones
    are), the squares and their sums carry float32 rounding within a block (about 1e-7
    relative). Other dtypes are counted exactly and squared in float64.
    """
    nz = torch.zeros(flat.shape[1:], dtype=torch.float64, device=flat.device)
    sq = torch.zeros_like(nz)
    buf: torch.Tensor | None = None
    for c in _row_chunks(flat):
        if c.dtype != torch.float32:  # half-precision sums of ones stop being exact at 256
            nz += torch.count_nonzero(c, 0)
            sq += c.to(torch.float64).square_().sum(0)
            continue
        buf = torch.empty_like(c) if buf is None or buf.shape != c.shape else buf
        nz += torch.ne(c, 0, out=buf).sum(0)  # a comparison into floats, then a fast column sum
        sq += torch.mul(c, c, out=buf).sum(0)
    return nz, sq


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

    Inside a :class:`~xbar.SpikingNetwork` the meter also listens to the network's fast paths
    (:func:`attach_observer`): when the network knows an input is binary, computes the
    output layer once on the time-mean of the spikes, or feeds Poisson events straight into the
    first layer, it tells the meter what the step-by-step run would have shown it, so the counts
    are those of the step-by-step run.
    """

    def __init__(self, model: nn.Module, device: DeviceProfile | str | None = None) -> None:
        self.model = model
        if device is None:
            first = next((m for m in model.modules() if isinstance(m, CROSSBAR_TYPES)), None)
            device = first.profile if first is not None else None
        self.device = _resolve_profile(device)
        self._handles: list[Any] = []
        self._hook_ids: dict[nn.Module, set[int]] = {}
        self._bodies: list[nn.Module] = []
        self._hints: dict[nn.Module, Any] = {}
        self._counters: dict[nn.Module, _Counter] = {}
        self._digital: dict[str, _Counter] = {}
        self._row_order: list[Any] | None = None
        self._warned = False
        self.samples = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "EnergyMeter":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _hook(self, module: nn.Module, handle: Any) -> None:
        self._handles.append(handle)
        self._hook_ids.setdefault(module, set()).add(handle.id)

    def start(self) -> None:
        """Register the hooks (done by ``with``).

        Every ``Linear``, ``Conv1d`` and ``Conv2d`` (crossbar or float, subclasses included),
        IF layer and spiking max-pool gets a counting hook; spiking networks inside the model
        report their fast paths and digital work as observers (:mod:`xbar.observers`). Other
        layers with weights (``Conv3d``, transposed convolutions, ...) are not counted: one
        warning lists them.
        """
        if self._handles:
            return
        nets = [m for m in self.model.modules() if getattr(m, "accepts_observers", False)]
        if not nets:  # an ANN: count the samples at its input
            self._hook(self.model, self.model.register_forward_pre_hook(
                lambda _m, args: self._count_samples(args, 0)))
        names = {m: n for n, m in self.model.named_modules()}
        for net in nets:
            attach_observer(net, self)
            self._bodies.append(net)
            for node in net.graph:
                if node.op in ("add", "cat", "scale"):
                    self._digital_counter(node.name, node.op)
        skipped = []
        for name, module in self.model.named_modules():
            if type(module).__name__ == "CurrentReadout":
                names[module.layer] = name
        for name, module in self.model.named_modules():
            label = names.get(module, name) or "model"
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                kind = "linear" if isinstance(module, nn.Linear) else type(module).__mro__[
                    next(i for i, c in enumerate(type(module).__mro__) if c in (nn.Conv1d, nn.Conv2d))].__name__.lower()
                self._counters.setdefault(module, _Counter(label, kind))
                self._hook(module, module.register_forward_hook(self._synaptic_hook))
            elif isinstance(module, IFNeuron):
                self._counters.setdefault(module, _Counter(label, "if"))
                self._hook(module, module.register_forward_hook(self._neuron_hook))
            elif isinstance(module, SpikingMaxPool):
                self._counters.setdefault(module, _Counter(label, "maxpool"))
                self._hook(module, module.register_forward_hook(self._maxpool_hook))
            elif isinstance(getattr(module, "weight", None), torch.Tensor) and \
                    not isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                skipped.append(f"{label} ({type(module).__name__})")
        if skipped and not self._warned:
            self._warned = True
            warnings.warn("EnergyMeter: these layers hold weights but are not counted (only Linear, Conv1d "
                          f"and Conv2d are): {', '.join(skipped)}", stacklevel=3)
        if nets:
            self._order(nets, names)

    def _digital_counter(self, name: str, kind: str) -> "_Counter":
        c = self._digital.get(name)
        if c is None:
            c = self._digital[name] = _Counter(name, kind)
        return c

    def _order(self, nets: list[nn.Module], names: dict) -> None:
        """Rows of a spiking network in execution order (graph order), digital nodes included."""
        order: list[Any] = []
        for net in nets:
            for node in net.graph:
                if node.op == "module":
                    m = net.get_submodule(node.target)
                    m = getattr(m, "layer", m) if type(m).__name__ == "CurrentReadout" else m
                    key = m
                elif node.name in self._digital:
                    key = node.name
                else:
                    continue
                if key not in order:
                    order.append(key)
        self._row_order = order

    def stop(self) -> None:
        """Remove every hook this meter registered (done on leaving ``with``)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._hook_ids.clear()
        self._hints.clear()
        for body in self._bodies:
            detach_observer(body, self)
        self._bodies.clear()

    def reset(self) -> None:
        """Zero every count; metering goes on if active."""
        self.samples = 0
        for c in (*self._counters.values(), *self._digital.values()):
            c.values.clear()

    # -- the network's side (xbar.snn observer protocol) ---------------------------------------
    def observer_hook_ids(self, module: nn.Module) -> set[int]:
        """Ids of the hooks this meter registered on ``module``."""
        return self._hook_ids.get(module, set())

    def expect_input(self, module: nn.Module, stats: Any) -> None:
        """Describe the input of ``module``'s next call (an :class:`InputStats`), or
        clear the description with None."""
        if stats is None:
            self._hints.pop(module, None)
        elif module in self._counters:
            self._hints[module] = stats

    def record_synaptic(self, module: nn.Module | None, stats: Any) -> None:
        """Count reads of ``module`` that the network computed without calling it."""
        if module in self._counters and stats is not None and stats.nz is not None:
            self._record(module, stats.nz, None, stats.reads, stats.binary)

    def record_digital(self, name: str, field_name: str, count: torch.Tensor | float) -> None:
        """Count digital operations of a graph node that is not a module (merges, scales)."""
        dev = self.device
        c = self._digital_counter(name, "output" if name == "output" else "digital")
        c.add(field_name, count)
        pj = dev.digital_mac_pj if field_name == "scale_muls" else dev.digital_ac_pj
        c.add("digital_j", count * (pj * _PJ))
        c.add("digital_snn_j", count * (pj * _PJ))

    def record_samples(self, count: int) -> None:
        """Count samples entering a spiking network."""
        self.samples += int(count)

    def record_neuron(self, module: nn.Module, updates: int, spikes: torch.Tensor | float) -> None:
        """Count an IF layer's updates and spikes that the network computed without calling it."""
        if module in self._counters:
            if isinstance(spikes, torch.Tensor):
                spikes = spikes.to(torch.float64)
            self._add_neuron(self._counters[module], float(updates), spikes)

    # -- hooks -------------------------------------------------------------------------------
    def _count_samples(self, args: tuple, batch_dim: int) -> None:
        shape = getattr(args[0], "shape", None) if args else None
        if shape is not None and len(shape) > batch_dim:
            self.samples += int(shape[batch_dim])

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

    def _feed_maps(self, module: nn.Module, in_shape: tuple[int, ...], device: torch.device,
                   c: _Counter) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        """Per-input-position fan-out and the conductance sum it drives (float64), outputs per
        read and ANN MACs per sample; cached per input shape and programming."""
        key = (tuple(in_shape), module.weight._version, getattr(module, "_stamp", None),
               getattr(module, "_drift_t", None), getattr(getattr(module, "_w_eff", None), "_version", None))
        hit = c.cache.get(key)
        if hit is not None:
            return hit
        with torch.no_grad():
            dt = module.weight.dtype
            gsum = self._conductance_sum(module).to(dt)
            mask = (_nonzero_weight(module) != 0).to(dt)
            if isinstance(module, nn.Linear):
                fan_out = torch.full((in_shape[-1],), float(module.out_features), dtype=dt, device=device)
                g_feed = gsum.sum(0)
                eff_fan_out = mask.sum(0).to(device)
                outputs = float(module.out_features)
            else:
                conv, gsum = _as_conv2d(module, gsum)
                mask = _as_conv2d(module, mask)[1]
                in_hw = (1, in_shape[-1]) if isinstance(module, nn.Conv1d) else tuple(in_shape[-2:])
                out_hw = _conv_out_hw(conv, in_hw)
                ones = torch.ones(1, module.out_channels, *out_hw, dtype=dt, device=device)
                fan_out = _conv_feed(conv, ones, torch.ones_like(gsum), in_hw).reshape(in_shape)
                g_feed = _conv_feed(conv, ones, gsum, in_hw).reshape(in_shape)
                eff_fan_out = _conv_feed(conv, ones, mask.to(device), in_hw).reshape(in_shape)
                outputs = float(module.out_channels * out_hw[0] * out_hw[1])
            c.outputs_per_read = outputs
            c.column_outputs = outputs * tile_count(module.weight[0].numel(), self.device.tile_rows)  # per array
            # ideal readout (no adc_bits): the neurons take the analog currents, no conversion
            outputs = 0.0 if self.device.adc_bits is None else c.column_outputs
        fan_out, g_feed = fan_out.to(torch.float64), g_feed.to(device=device, dtype=torch.float64)
        c.cache.clear()
        c.cache[key] = (fan_out, g_feed, outputs, float(fan_out.sum()), eff_fan_out.to(torch.float64))
        return c.cache[key]

    @staticmethod
    def _in_shape(module: nn.Module, nz_or_x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one read's input: ``(in_features,)`` or the conv input ``(C, H, W)``."""
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        return tuple(nz_or_x_shape[-2:] if isinstance(module, nn.Conv1d) else nz_or_x_shape[-3:])

    @torch.no_grad()
    def _synaptic_hook(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        x = args[0].detach()
        hint = self._hints.pop(module, None)
        flat = x.reshape(-1, *self._in_shape(module, tuple(x.shape)))
        if hint is not None:
            nz = hint.nz if hint.nz is not None else _column_sum(flat)
            self._record(module, nz, None, hint.reads, hint.binary)
            return
        if _is_binary(flat):  # the column sums are the non-zero counts
            self._record(module, _column_sum(flat), None, flat.shape[0], True)
        else:
            self._record(module, *_analog_stats(flat), flat.shape[0], False)

    def _record(self, module: nn.Module, nz: torch.Tensor, sq: torch.Tensor | None, reads: int,
                binary: bool) -> None:
        """Add ``reads`` reads of ``module``: ``nz`` non-zero inputs per input position (and
        ``sq``, the sum of squared drives, when the input is analog), summed over the reads."""
        c = self._counters[module]
        nz = nz.to(torch.float64)
        fan_out, g_feed, outputs, ann_macs, eff_fan_out = self._feed_maps(
            module, self._in_shape(module, tuple(nz.shape)), nz.device, c)
        nz = nz.reshape(fan_out.shape)
        sq = nz if sq is None else sq.reshape(fan_out.shape)
        dev = self.device
        ops = (nz * fan_out).sum()
        c.add("input_events", nz.sum())
        c.add("acs" if binary else "macs", ops)
        c.add("effective_acs" if binary else "effective_macs", (nz * eff_fan_out).sum())
        c.add("crossbar_j", dev.read_time * dev.read_voltage ** 2 * (sq * g_feed).sum())
        c.add("column_reads", reads * c.column_outputs)
        c.add("adc_conversions", reads * outputs)
        c.add("adc_j", reads * outputs * dev.adc_pj * _PJ)
        if dev.dac_bits is not None and not binary:  # one conversion per analog row drive per read
            drives = ops / (module.out_features if isinstance(module, nn.Linear) else module.out_channels)
            c.add("dac_conversions", drives)
            c.add("dac_j", drives * dev.dac_pj * _PJ)
        c.add("digital_snn_j", ops * ((dev.digital_ac_pj if binary else dev.digital_mac_pj) * _PJ))
        if module.bias is not None:  # added digitally to every output of every read
            adds = reads * c.outputs_per_read
            c.add("bias_adds", adds)
            c.add("digital_j", adds * dev.digital_ac_pj * _PJ)
            c.add("digital_snn_j", adds * dev.digital_ac_pj * _PJ)
        c.ann_macs_per_sample = ann_macs

    @torch.no_grad()
    def _maxpool_hook(self, module: SpikingMaxPool, args: tuple, out: torch.Tensor) -> None:
        """A spiking max-pool: a counter increment per input spike, ``k - 1`` comparisons per
        output and step."""
        c = self._counters[module]
        ops = args[0].detach().sum(dtype=torch.float64) + float(out.numel() * (module.window - 1))
        c.add("maxpool_ops", ops)
        c.add("spikes", out.detach().sum(dtype=torch.float64))
        c.add("digital_j", ops * (self.device.digital_ac_pj * _PJ))
        c.add("digital_snn_j", ops * (self.device.digital_ac_pj * _PJ))

    def _add_neuron(self, c: _Counter, updates: float, spikes: torch.Tensor | float) -> None:
        dev = self.device
        c.add("neuron_updates", updates)
        c.add("spikes", spikes)
        c.add("neuron_j", updates * dev.neuron_update_pj * _PJ)
        c.add("spike_j", spikes * (dev.spike_pj * _PJ))

    @torch.no_grad()
    def _neuron_hook(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self._add_neuron(self._counters[module], float(args[0].numel()),
                         out.detach().sum(dtype=torch.float64))

    # -- results -----------------------------------------------------------------------------
    def raw_totals(self) -> dict[str, float]:
        """Sums over every layer and every sample so far (not divided by samples).

        Keys: ``input_events``, ``acs``, ``macs``, ``effective_acs``, ``effective_macs``, ``joules``
        (crossbar + ADC + neuron + spike + digital periphery). Useful to read counts at several points of one run (differences of
        two snapshots).
        """
        out = {"input_events": 0.0, "acs": 0.0, "macs": 0.0, "effective_acs": 0.0, "effective_macs": 0.0,
               "joules": 0.0}
        for c in (*self._counters.values(), *self._digital.values()):
            v = c.floats()
            for key in ("input_events", "acs", "macs", "effective_acs", "effective_macs"):
                out[key] += v.get(key, 0.0)
            out["joules"] += sum(v.get(k, 0.0) for k in ("crossbar_j", "adc_j", "dac_j", "neuron_j", "spike_j",
                                                         "digital_j"))
        return out

    def _rows(self) -> list["_Counter"]:
        """Counters in report order: execution order inside spiking networks, module order
        otherwise; digital nodes only once they counted something."""
        if self._row_order is None:
            return list(self._counters.values()) + [c for c in self._digital.values() if c.values]
        rows = []
        for key in self._row_order:
            c = self._digital.get(key) if isinstance(key, str) else self._counters.get(key)
            if c is not None and (not isinstance(key, str) or c.values) and c not in rows:
                rows.append(c)
        rows += [c for c in self._counters.values() if c not in rows]
        rows += [c for c in self._digital.values() if c.values and c not in rows]
        return rows

    def report(self) -> EnergyReport:
        """Per-sample figures for every metered layer (zeros before any sample)."""
        per = 1.0 / self.samples if self.samples else 0.0
        layers = []
        for c in self._rows():
            layer = LayerEnergy(name=c.name, kind=c.kind)
            for key, value in c.floats().items():
                setattr(layer, key, value * per)
            if c.kind not in ("if", "maxpool", "add", "cat", "scale", "digital", "output") and c.values:
                layer.ann_macs = c.ann_macs_per_sample
                layer.digital_ann_j = c.ann_macs_per_sample * self.device.digital_mac_pj * _PJ
            layers.append(layer)
        return EnergyReport(samples=self.samples, layers=layers, device=self.device.name)


def _nonzero_weight(module: nn.Module) -> torch.Tensor:
    """The weight whose non-zero entries the effective ACs count: a crossbar's effective weight
    ``(G+ - G-) / scale`` as its reads use it (programming errors, snapping, faults, drift, IR
    drop included), a float layer's own weight."""
    if isinstance(module, CROSSBAR_TYPES):
        return module.effective_weight()
    return module.weight.detach()


class _Conv2dView:
    """The geometry of a Conv1d as a Conv2d with a ``1 x k`` kernel."""

    def __init__(self, conv: nn.Conv1d) -> None:
        if isinstance(conv.padding, str):
            raise ValueError(f"{conv}: string padding is not supported by the energy meter")
        self.kernel_size, self.stride = (1, conv.kernel_size[0]), (1, conv.stride[0])
        self.padding, self.dilation = (0, conv.padding[0]), (1, conv.dilation[0])
        self.groups, self.out_channels = conv.groups, conv.out_channels


def _as_conv2d(conv: nn.Module, kernel: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """``(geometry, 4-d kernel)`` of a Conv2d, or of a Conv1d seen as a Conv2d."""
    if isinstance(conv, nn.Conv1d):
        return _Conv2dView(conv), kernel.unsqueeze(2)
    return conv, kernel


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
