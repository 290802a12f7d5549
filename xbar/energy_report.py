"""Energy reports: per-layer and total operation counts and joules, per sample.

:class:`EnergyReport` is what :meth:`xbar.EnergyMeter.report` returns (:mod:`xbar.energy` says
how every figure is counted). Plain data: ``to_dict()`` is JSON-ready and ``table()`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

_PJ = 1e-12

__all__ = ["EnergyReport", "LayerEnergy"]


@dataclass
class LayerEnergy:
    """Per-sample counts and energies of one layer (joules, counts per sample).

    Synaptic layers fill the crossbar fields; IF layers fill the neuron fields.
    ``effective_acs`` / ``effective_macs`` count NeuroBench's way (non-zero input times non-zero
    weight, :mod:`xbar.energy`), beside ``acs`` / ``macs`` (every row an event drives).
    """

    name: str
    kind: str
    input_events: float = 0.0
    acs: float = 0.0
    macs: float = 0.0
    crossbar_j: float = 0.0
    column_reads: float = 0.0
    adc_conversions: float = 0.0
    adc_j: float = 0.0
    neuron_updates: float = 0.0
    spikes: float = 0.0
    neuron_j: float = 0.0
    spike_j: float = 0.0
    bias_adds: float = 0.0
    merge_adds: float = 0.0
    scale_muls: float = 0.0
    maxpool_ops: float = 0.0
    digital_j: float = 0.0
    digital_snn_j: float = 0.0
    ann_macs: float = 0.0
    digital_ann_j: float = 0.0
    effective_acs: float = 0.0
    effective_macs: float = 0.0
    dac_conversions: float = 0.0
    dac_j: float = 0.0

    @property
    def activation_sparsity(self) -> float:
        """Zero outputs over all outputs of an IF layer (every neuron, timestep and sample:
        NeuroBench's ``activation_sparsity`` of this layer); 0.0 for other layers."""
        return 1.0 - self.spikes / self.neuron_updates if self.kind == "if" and self.neuron_updates else 0.0

    @property
    def joules(self) -> float:
        """Crossbar, ADC, DAC, neuron, spike and digital-periphery energy of this layer, joules per
        sample."""
        return self.crossbar_j + self.adc_j + self.dac_j + self.neuron_j + self.spike_j + self.digital_j


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
    def effective_acs(self) -> float:
        """NeuroBench's ``Effective_ACs``: binary input events times the non-zero weights they
        drive, per sample."""
        return self._total("effective_acs")

    @property
    def effective_macs(self) -> float:
        """NeuroBench's ``Effective_MACs``: analog non-zero inputs times the non-zero weights they
        drive, per sample."""
        return self._total("effective_macs")

    @property
    def activation_sparsity(self) -> float:
        """NeuroBench's ``activation_sparsity``: zero outputs over all outputs of the IF layers
        (every neuron, timestep and sample; the input and max-pools are not activations)."""
        ifs = [layer for layer in self.layers if layer.kind == "if"]
        updates = sum(layer.neuron_updates for layer in ifs)
        return 1.0 - sum(layer.spikes for layer in ifs) / updates if updates else 0.0

    @property
    def synaptic_events(self) -> float:
        """Synaptic operations, ``acs + macs`` (SynOps in sinabs' terms), per sample."""
        return self.acs + self.macs

    @property
    def dac_j(self) -> float:
        """Row DAC energy (analog drives with ``dac_bits``), joules per sample."""
        return self._total("dac_j")

    @property
    def dac_conversions(self) -> float:
        """Row DAC conversions (one per analog row drive per read), per sample."""
        return self._total("dac_conversions")

    @property
    def crossbar_j(self) -> float:
        """Crossbar read energy, joules per sample."""
        return self._total("crossbar_j")

    @property
    def column_reads(self) -> float:
        """Column outputs read (per array a column spans), with or without an ADC: the
        conversions an ADC on every column would make, per sample."""
        return self._total("column_reads")

    @property
    def adc_conversions(self) -> float:
        """ADC conversions (zero on a device without ``adc_bits``), per sample."""
        return self._total("adc_conversions")

    @property
    def neuron_updates(self) -> float:
        """IF neuron updates (one per neuron per timestep), per sample."""
        return self._total("neuron_updates")

    @property
    def adc_j(self) -> float:
        """ADC energy, joules per sample."""
        return self._total("adc_j")

    @property
    def neuron_j(self) -> float:
        """Neuron update and spike energy, joules per sample."""
        return self._total("neuron_j") + self._total("spike_j")

    @property
    def spikes(self) -> float:
        """Spikes fired by IF layers and spiking max-pools, per sample."""
        return self._total("spikes")

    @property
    def bias_adds(self) -> float:
        """Digital bias additions (one per output of a synaptic layer with a bias and read), per sample."""
        return self._total("bias_adds")

    @property
    def merge_adds(self) -> float:
        """Digital additions at residual merges, per sample."""
        return self._total("merge_adds")

    @property
    def scale_muls(self) -> float:
        """Digital multiplications of scale stages (merge factors on analog inputs), per sample."""
        return self._total("scale_muls")

    @property
    def maxpool_ops(self) -> float:
        """Spiking max-pool work: counter increments and comparisons, per sample."""
        return self._total("maxpool_ops")

    @property
    def digital_j(self) -> float:
        """Energy of the digital periphery (bias and merge adds, scale multiplies, max-pool
        operations), joules per sample."""
        return self._total("digital_j")

    @property
    def joules(self) -> float:
        """Total hardware energy (crossbar + ADC + neurons + spikes + digital periphery), joules
        per sample."""
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
            "input_events", "acs", "macs", "synaptic_events", "crossbar_j", "column_reads",
            "adc_conversions", "adc_j", "neuron_updates", "neuron_j",
            "spikes", "bias_adds", "merge_adds", "scale_muls", "maxpool_ops", "digital_j",
            "joules", "digital_snn_j", "ann_macs", "digital_ann_j", "effective_acs", "effective_macs",
            "activation_sparsity", "dac_conversions", "dac_j")}
        return {"samples": self.samples, "device": self.device, "totals": totals,
                "layers": [dict(asdict(layer), joules=layer.joules, activation_sparsity=layer.activation_sparsity)
                           for layer in self.layers]}

    def with_periphery(self, adc_pj: float | None = None, neuron_update_pj: float | None = None,
                       spike_pj: float | None = None) -> "EnergyReport":
        """The same counts priced with other periphery energies (the crossbar, digital and
        operation counts are unchanged).

        Args:
            adc_pj: energy of one ADC conversion; every column read is then converted
                (``adc_conversions = column_reads``), also on a device without ``adc_bits``.
            neuron_update_pj: energy of one IF neuron update (one neuron, one timestep).
            spike_pj: energy of one spike fired by an IF layer.
            None keeps a term as measured.

        Returns:
            A new report; this one is unchanged.
        """
        for name, value in (("adc_pj", adc_pj), ("neuron_update_pj", neuron_update_pj), ("spike_pj", spike_pj)):
            if value is not None and not value >= 0:
                raise ValueError(f"with_periphery: {name} must be >= 0 pJ, got {value!r}")
        layers = []
        for layer in self.layers:
            new = replace(layer)
            if adc_pj is not None and layer.column_reads:
                new.adc_conversions = layer.column_reads
                new.adc_j = layer.column_reads * adc_pj * _PJ
            if layer.kind == "if":
                if neuron_update_pj is not None:
                    new.neuron_j = layer.neuron_updates * neuron_update_pj * _PJ
                if spike_pj is not None:
                    new.spike_j = layer.spikes * spike_pj * _PJ
            layers.append(new)
        return EnergyReport(samples=self.samples, layers=layers, device=self.device)

    def table(self) -> str:
        """A human-readable table, one row per layer (its module path and kind: ``linear``,
        ``conv2d``, ``if``, ...) plus the total.

        Columns: input events (non-zero inputs of synaptic layers), spikes (fired by IF layers
        and spiking max-pools), ACs, MACs, crossbar read joules and total joules, all per
        sample; the digital-periphery columns (bias adds, merge adds, scale multiplies,
        max-pool operations) appear when some layer has any.
        """
        cols = [("input events", "input_events"), ("spikes", "spikes"), ("ACs", "acs"), ("MACs", "macs")]
        digital = [("bias adds", "bias_adds"), ("merge adds", "merge_adds"), ("scale muls", "scale_muls"),
                   ("max-pool ops", "maxpool_ops")]
        cols += [c for c in digital if getattr(self, c[1])]
        cols += [("crossbar J", "crossbar_j"), ("total J", "joules")]
        width = max([18] + [len(layer.name) + 2 for layer in self.layers])
        kw = max([6] + [len(layer.kind) + 2 for layer in self.layers])
        head = f"{'layer':<{width}}{'kind':<{kw}}" + "".join(f"{label:>14}" for label, _ in cols)
        rows = [head, "-" * len(head)]
        for layer in self.layers:
            rows.append(f"{layer.name:<{width}}{layer.kind:<{kw}}"
                        + "".join(f"{getattr(layer, key):>14.4g}" for _, key in cols))
        rows.append(f"{'total':<{width}}{'':<{kw}}" + "".join(f"{getattr(self, key):>14.4g}" for _, key in cols))
        rows.append(f"digital: SNN {self.digital_snn_j:.4g} J vs ANN {self.digital_ann_j:.4g} J "
                    f"per sample ({self.samples} samples)")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()
