"""A crossbar array's state: programming, drift, periphery reads.

:class:`_CrossbarMixin` holds what every crossbar layer shares, whatever the torch layer it
subclasses (:mod:`xbar.layers` has the concrete types). The float ``weight`` stays a real
``nn.Parameter`` (the trainable master copy, as in ``torch.ao.nn.qat``). :meth:`program` maps
it onto a differential pair of devices (``g_pos``, ``g_neg``, siemens, stored as buffers), and
every read uses those conductances. The layer re-programs itself when the master weight
changes (an optimiser step, ``load_state_dict``, ``copy_``) or when its device profile is
replaced. After editing ``weight.data`` directly, call :meth:`program` yourself: such edits
bypass the version counter that the layer watches.

Forward is in weight units (a drop-in for the torch layer, bias added digitally); with
gradients enabled it is straight-through: the forward pass uses the programmed weight, the
backward pass treats it as the master weight (hardware-aware training).
:meth:`currents` gives the column currents in amperes for a row drive ``x`` (``x = 1`` means
``V_read``).

The crossbar matrix is ``[rows, cols]``: rows are the layer's inputs (features, or the
unrolled kernel taps of a convolution), columns its outputs. A concrete layer supplies
``_matmul`` (the torch op on a given weight), ``_tile_partials`` (each row tile's share of
it), ``_sample_dims`` (the dimensions of one sample, for the DAC), ``_bias_view`` and
``_tile_dim`` (where ``_tile_partials`` puts the row tiles).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from .device import DeviceProfile, DeviceProfileWarning, load_device, parse_device
from .mapping import check_mapping, map_weights, unmap
from .noise_models import (
    draw_nu_of,
    elapsed,
    flicker_sigma_of,
    has_nu_model,
    programming_sigma_of,
)
from .nonideal import draw_nu, drift_conductance, program_devices
from .periphery import (
    IR_DROP_LIMIT,
    adc_quantize,
    dac_quantize,
    full_scale,
    ir_drop,
    ir_drop_k,
    tile_count,
)
from .validation import (
    check_finite,
    check_layer_input,
    check_layer_output,
    check_number,
    check_scale,
    check_states_fit,
    layer_label,
)


def _resolve_profile(profile: DeviceProfile | str | None) -> DeviceProfile:
    """A device profile from a profile, a shipped name or YAML path, or None (``"ideal"``).

    Raises:
        TypeError: naming ``device``, for any other kind of value.
        DeviceProfileError: unknown name or bad file (from :func:`xbar.load_device`).
    """
    if profile is None:
        return load_device("ideal")
    if isinstance(profile, DeviceProfile):
        return profile
    if isinstance(profile, str):
        return load_device(profile)
    raise TypeError(f"device: expected a DeviceProfile or a profile name/path, got {type(profile).__name__}")


class _CrossbarMixin:
    """State and programming logic shared by the crossbar layers."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    g_pos: torch.Tensor
    g_neg: torch.Tensor
    scale: torch.Tensor

    def _init_crossbar(self, profile: DeviceProfile | str | None, mapping: str) -> None:
        w = self.weight
        self.register_buffer("g_pos", torch.zeros_like(w, requires_grad=False))
        self.register_buffer("g_neg", torch.zeros_like(w, requires_grad=False))
        self.register_buffer("scale", torch.ones((), dtype=w.dtype, device=w.device))
        self.register_buffer("_w_eff", torch.zeros_like(w, requires_grad=False), persistent=False)
        self._mapping = check_mapping(mapping)
        self._profile = _resolve_profile(profile)
        self._profile_token = 0
        self._stamp: tuple | None = None
        self._drift_t: float | None = None
        self.drift_compensation = 1.0
        self.column_compensation: torch.Tensor | None = None  # per output column, see drift()
        self._flicker_std: torch.Tensor | None = None  # 1/f sigma per weight, weight units
        self._held: tuple[int, int] | None = None  # (samples, seed): 1/f noise held per sample
        self.read_generator: torch.Generator | None = None
        self.adc_range: torch.Tensor | None = None
        self.dac_range: float | None = None
        self._full_scale = torch.zeros(1, 1)
        self._calibration: Any = None
        self._nu: tuple[torch.Tensor, torch.Tensor] | None = None  # per-device drift exponents
        self.fault_map: tuple | None = None  # fixed ((off, on) for G+, (off, on) for G-), see xbar.fix_faults
        self.program()

    # -- device profile and mapping ------------------------------------------------------
    @property
    def profile(self) -> DeviceProfile:
        """The device profile whose states hold this layer's weights."""
        return self._profile

    @profile.setter
    def profile(self, value: DeviceProfile | str) -> None:
        self._profile = _resolve_profile(value)
        self._profile_token += 1

    @property
    def mapping(self) -> str:
        """``"differential"`` or ``"clip"`` (see :mod:`xbar.mapping`)."""
        return self._mapping

    @mapping.setter
    def mapping(self, value: str) -> None:
        self._mapping = check_mapping(value)
        self._profile_token += 1

    # -- programming ----------------------------------------------------------------------
    def _current_stamp(self) -> tuple:
        return (self.weight._version, self.weight.data_ptr(), self._profile_token)

    @property
    def is_programmed(self) -> bool:
        """True when the conductances reflect the current master weight and device."""
        return self._stamp == self._current_stamp()

    @torch.no_grad()
    def program(self, generator: torch.Generator | None = None) -> "_CrossbarMixin":
        """Map the master weight onto device conductances and store them.

        The device profile's programming errors apply (device-to-device spread, programming
        noise, clipping to the device range, stuck-at faults; see
        :func:`xbar.nonideal.program_devices`). Read noise, the DAC/ADC and IR drop act on
        every read (see :meth:`forward`).

        Args:
            generator: source of randomness for the programming errors (same seed, same
                conductances); the global torch generator if None. Unused by ideal devices.

        Returns:
            self, with ``g_pos``, ``g_neg`` (siemens) and ``scale`` (siemens per weight unit)
            set.

        Raises:
            ValueError: NaN or infinite ``weight`` / ``bias`` (the message names the layer), or
                a ``device`` that cannot represent the layer in its dtype (states that collapse,
                a scale that underflows).
        """
        dev = self._profile
        w = self.weight.detach()
        label = layer_label(self)  # type: ignore[arg-type]
        check_finite(w, "weight", label)
        if self.bias is not None:
            check_finite(self.bias.detach(), "bias", label)
        states = dev.state_tensor(dtype=w.dtype, device=w.device)
        check_states_fit(states, w.dtype, dev.name)
        g = map_weights(w, dev.g_min, dev.g_max, states, dev.on_off_ratio, self._mapping)
        check_scale(g.scale, w, dev.g_min, dev.g_max, dev.name, label)
        errors = (dev.g_min, dev.g_max, dev.programming_sigma, dev.d2d_sigma, dev.stuck_off, dev.stuck_on)
        fmap = self.fault_map or (None, None)
        floor = 0.0 if dev.programming_floor == "zero" else None
        for target, out, faults in ((g.g_pos, self.g_pos, fmap[0]), (g.g_neg, self.g_neg, fmap[1])):
            sigma = programming_sigma_of(dev, target)
            sigma = sigma if isinstance(sigma, torch.Tensor) else None  # a constant: the float path
            out.copy_(program_devices(target, *errors, generator=generator, faults=faults, sigma=sigma, floor=floor))
        self.scale.copy_(g.scale)
        self._drift_t, self.drift_compensation, self.column_compensation = None, 1.0, None
        self._nu = None
        if has_nu_model(dev) == "scalar":  # each device its own exponent, drawn when it is programmed
            self._nu = tuple(draw_nu(w.shape, dev.drift_nu, dev.drift_nu_sigma, generator, w.device).to(w.dtype)
                             for _ in range(2))
        elif has_nu_model(dev):  # ... of the conductance it is programmed to: nu(G) of its target
            self._nu = tuple(draw_nu_of(dev, target, generator) for target in (g.g_pos, g.g_neg))
        self._warn_ir_drop()
        self._refresh_effective()
        self._set_full_scale()
        self._stamp = self._current_stamp()
        return self

    def _warn_ir_drop(self) -> None:
        """Warn when an array of this layer is outside the first-order IR-drop model's validity."""
        dev = self._profile
        if dev.wire_ohm == 0:
            return
        rows, cols = self._rows_cols(self.weight).shape
        k = ir_drop_k(dev.wire_ohm, dev.g_max, min(dev.tile_rows or rows, rows), min(dev.tile_cols or cols, cols))
        if k > IR_DROP_LIMIT:
            warnings.warn(DeviceProfileWarning(
                f"{dev.name}: periphery.wire_ohm: r g_max rows cols = {k:.3g} > {IR_DROP_LIMIT:g} for the arrays of "
                f"{layer_label(self)}: the first-order IR-drop model is outside its validity (its predicted drop is "
                f"~4% off at 0.1, ~40% at 1.0; docs/devices.md)"), stacklevel=3)

    @property
    def time_since_programming(self) -> float:
        """Seconds since programming of the current read (``t0`` before any :meth:`drift`)."""
        dev = self._profile
        return dev.drift_t0 if self._drift_t is None else elapsed(self._drift_t, dev.drift_t0, dev.drift_time_origin)

    @torch.no_grad()
    def _set_full_scale(self) -> None:
        """Uncalibrated ADC ranges from the programmed (undrifted) weight."""
        dev = self._profile
        w = unmap(self.g_pos, self.g_neg, self.scale)
        self._full_scale = full_scale(self._rows_cols(w), dev.tile_rows, dev.tile_cols).cpu()
        if self.adc_range is not None and self.adc_range.shape != self._full_scale.shape:
            self.adc_range = None  # the tiling changed: the old calibration does not apply

    def read_conductances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G+, G-)`` as read now, siemens: the programmed values, drifted if :meth:`drift` ran."""
        if self._drift_t is None:
            return self.g_pos, self.g_neg
        dev = self._profile
        nu_pos, nu_neg = self._nu if self._nu is not None else (dev.drift_nu, dev.drift_nu)
        t_p = self.time_since_programming
        return (drift_conductance(self.g_pos, t_p, nu_pos, dev.drift_t0),
                drift_conductance(self.g_neg, t_p, nu_neg, dev.drift_t0))

    @torch.no_grad()
    def drift(self, t_seconds: float, compensate: bool | str = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the devices ``t_seconds`` after programming: ``G(t) = G0 (t_p / t0)^-nu``.

        ``t_p`` is ``t_seconds`` (the profile's ``drift.time_origin: programming``) or
        ``t_seconds + t0`` (``time_origin: t0``, aihwkit's ``t_inference``).

        Args:
            t_seconds: drift time, seconds (``nu``, ``t0`` from the device profile).
            compensate: ``True`` / ``"global"``: global drift compensation, this array's output
                rescaled by ``sum(G0) / sum(G(t))`` (one reference read); ``"column"``: per-column
                compensation, output column ``j`` rescaled by ``sum_i G0_ij / sum_i G_ij(t)`` over
                both devices of its pairs (one reference read per column, noise-free, applied
                digitally after the ADC); ``False``: none.

        Returns:
            The drifted ``(G+, G-)``, siemens. Later reads use them until :meth:`program`.
        """
        t_seconds = check_number(t_seconds, "t_seconds", 0.0)
        if compensate not in (True, False, "global", "column"):
            raise ValueError(f"compensate: must be True, False, 'global' or 'column', got {compensate!r}")
        self._ensure_programmed()
        self._drift_t = t_seconds
        g_pos, g_neg = self.read_conductances()
        self.drift_compensation, self.column_compensation = 1.0, None
        if compensate in (True, "global"):
            now = float((g_pos + g_neg).sum())
            self.drift_compensation = float((self.g_pos + self.g_neg).sum()) / now if now > 0 else 1.0
        elif compensate == "column":
            now = self._rows_cols(g_pos + g_neg).sum(0)
            then = self._rows_cols(self.g_pos + self.g_neg).sum(0)
            self.column_compensation = torch.where(now > 0, then / now.clamp_min(1e-300), torch.ones_like(now))
        self._refresh_effective()
        self._stamp = self._current_stamp()
        return g_pos, g_neg

    @torch.no_grad()
    def _refresh_effective(self) -> None:
        g_pos, g_neg = self.read_conductances()
        dev = self._profile
        if dev.wire_ohm > 0:
            g_pos, g_neg = (self._from_rows_cols(ir_drop(self._rows_cols(g), dev.wire_ohm, dev.tile_rows,
                                                         dev.tile_cols)) for g in (g_pos, g_neg))
        w = unmap(g_pos, g_neg, self.scale) * self.drift_compensation
        self._w_eff.copy_(w if self.column_compensation is None else w * self._weight_col())
        self._flicker_std = None
        if dev.flicker_q > 0:  # 1/f sigma per weight of the pair, weight units, before compensation
            now = self.read_conductances()
            t_p = self.time_since_programming
            var = sum(flicker_sigma_of(dev, g0, g, t_p) ** 2 for g0, g in zip((self.g_pos, self.g_neg), now))
            self._flicker_std = var.sqrt() / self.scale

    def _weight_col(self) -> torch.Tensor:
        """:attr:`column_compensation` shaped to scale a weight-shaped tensor."""
        col = self.column_compensation.to(self.weight)
        return col.view(-1, *([1] * (self.weight.dim() - 1)))

    def _out_col(self, like: torch.Tensor) -> torch.Tensor | float:
        """Per-output factor (column compensation) shaped to broadcast against an output or tile
        partials ``like``; 1.0 without per-column compensation."""
        if self.column_compensation is None:
            return 1.0
        col = self.column_compensation.to(like)
        return col if self._tile_dim == -2 else col.view(-1, *([1] * (self.weight.dim() - 2)))

    # -- periphery ---------------------------------------------------------------------------
    def _rows_cols(self, w: torch.Tensor) -> torch.Tensor:
        """A weight-shaped tensor as the crossbar matrix ``[rows, cols]`` (rows = inputs)."""
        return w.reshape(w.shape[0], -1).t()

    def _from_rows_cols(self, g: torch.Tensor) -> torch.Tensor:
        return g.t().reshape(self.weight.shape)

    @property
    def tiles(self) -> tuple[int, int]:
        """Number of arrays ``(row tiles, column tiles)`` this layer occupies."""
        rows, cols = self._rows_cols(self.weight).shape
        return (tile_count(rows, self._profile.tile_rows), tile_count(cols, self._profile.tile_cols))

    @property
    def affine_readout(self) -> bool:
        """True when a read is exactly ``x @ W_eff.T`` (no read noise, DAC or ADC): a network
        may then batch, reorder or average reads freely."""
        dev = self._profile
        return (dev.read_sigma == 0 and dev.flicker_q == 0 and dev.out_noise == 0 and dev.adc_bits is None
                and dev.dac_bits is None and self._calibration is None)

    def adc_full_scale(self) -> torch.Tensor:
        """ADC range of every array ``[row tiles, column tiles]``, weight units: the calibrated
        :attr:`adc_range` (see :func:`xbar.calibrate_periphery`), else the largest output an
        array can produce with every row driven at 1. Drift compensation rescales it."""
        self._ensure_programmed()
        fs = self._full_scale if self.adc_range is None else self.adc_range
        return fs * self.drift_compensation

    def _per_column(self, fs: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Array ranges ``[n_rt, n_ct]`` as one range per (row tile, output column), shaped to
        broadcast against the tile partials."""
        tc = self._profile.tile_cols or self._rows_cols(self.weight).shape[1]
        cols = fs.to(like).repeat_interleave(tc, dim=1)[:, : self.weight.shape[0]]
        return cols.view(*cols.shape, *([1] * (like.dim() - self._tile_dim % like.dim() - 2)))

    def _hardware_read(self, x: torch.Tensor) -> torch.Tensor:
        """One read through the periphery (DAC, tiles, read noise, ADC), weight units, no bias."""
        dev, w = self._profile, self._w_eff
        if self._calibration is not None:
            parts = self._tile_partials(x, w) / self.drift_compensation
            self._calibration.record(self, x, parts / self._out_col(parts))
            return self._matmul(x, w)
        if dev.dac_bits is not None:
            x = dac_quantize(x, dev.dac_bits, self.dac_range, self._sample_dims(x))
        tiled = dev.adc_bits is not None
        parts = self._tile_partials(x, w) if tiled else self._matmul(x, w)
        parts = self._add_read_noise(x, parts, tiled)
        if not tiled:
            return parts
        fs = self._per_column(self.adc_full_scale(), parts) * self._out_col(parts)
        parts = adc_quantize(parts, dev.adc_bits, fs)
        return parts.sum(self._tile_dim)

    def _add_read_noise(self, x: torch.Tensor, parts: torch.Tensor, tiled: bool) -> torch.Tensor:
        """``parts`` plus this read's noise: white read noise (fresh per device and read), 1/f
        noise (per device, held through the reads of one sample when :attr:`_held` says how the
        reads are laid out, else one draw per read) and ADC-input noise. The fresh parts are one
        Gaussian per column with the summed variance."""
        dev, w = self._profile, self._w_eff
        read = self._tile_partials if tiled else self._matmul
        gain = self.drift_compensation * self._out_col(parts)
        held = self._held_layout(x) if self._flicker_std is not None else None
        var = None
        if dev.read_sigma > 0:
            used = (self.g_pos > 0).to(w.dtype) + (self.g_neg > 0).to(w.dtype)
            var = read(x * x, used) * (dev.read_sigma * dev.g_max / self.scale) ** 2
        if self._flicker_std is not None and held is None:
            f = read(x * x, self._flicker_std.to(w.dtype) ** 2)
            var = f if var is None else var + f
        if dev.out_noise > 0:
            o = (dev.out_noise * dev.g_max / self.scale) ** 2
            var = o if var is None else var + o
        if var is not None:
            std = torch.as_tensor(var, dtype=parts.dtype, device=parts.device).clamp_min(0).sqrt() * gain
            parts = parts + std * torch.randn(parts.shape, generator=self.read_generator, dtype=parts.dtype,
                                              device=parts.device)
        if held is not None:
            parts = parts + self._held_flicker(x, parts, tiled, *held) * gain
        return parts

    def hold_read_noise(self, samples: int | None, seed: int | None = None) -> None:
        """Hold the 1/f read noise per sample: the reads that follow are ``steps x samples`` rows
        laid out step-major (row ``k * samples + s`` is step ``k`` of sample ``s``, as a
        :class:`~xbar.SpikingNetwork` reads a tile); every sample gets its own 1/f draw, the same
        at each of its steps. ``seed`` fixes the draws (None: drawn from :attr:`read_generator`).
        ``samples=None`` ends the hold: each read draws afresh."""
        if samples is None:
            self._held = None
            return
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.read_generator))
        self._held = (int(samples), int(seed))

    def _held_layout(self, x: torch.Tensor) -> tuple[int, int, int] | None:
        """``(steps, samples, seed)`` when a hold applies to read ``x``, else None."""
        if self._held is None:
            return None
        samples, seed = self._held
        rows = x.shape[:-1].numel() if self._tile_dim == -2 else x.shape[0]
        if samples < 1 or rows % samples:
            return None  # not laid out as the hold says: each read draws afresh
        return rows // samples, samples, seed

    def _held_flicker(self, x: torch.Tensor, parts: torch.Tensor, tiled: bool, steps: int, samples: int,
                      seed: int) -> torch.Tensor:
        """The held 1/f noise of every read, shaped like ``parts``: per sample one draw
        ``dW ~ N(0, flicker_std^2)`` (regenerated from ``seed`` in fixed chunks of samples, so
        every tile of steps sees the same draws), read with that sample's drives."""
        std = self._flicker_std.to(x)
        gen = torch.Generator(device=x.device).manual_seed(seed)
        chunk = max(1, (1 << 22) // max(1, std.numel()))
        xs = x.reshape(steps, samples, *x.shape[1:]) if self._tile_dim != -2 else x.reshape(steps, samples, x.shape[-1])
        out = []
        for k0 in range(0, samples, chunk):
            k1 = min(samples, k0 + chunk)
            dw = std * torch.randn((k1 - k0, *std.shape), generator=gen, dtype=x.dtype, device=x.device)
            out.append(self._per_sample_read(xs[:, k0:k1], dw, tiled))
        return torch.cat(out, 1).reshape(parts.shape)

    def _per_sample_read(self, xs: torch.Tensor, dw: torch.Tensor, tiled: bool) -> torch.Tensor:
        """Reads ``xs [steps, k, ...]`` of ``k`` samples, each with its own weight ``dw[j]``:
        ``[steps, k, ...]`` outputs (tile partials when ``tiled``). Generic: one product per sample."""
        read = self._tile_partials if tiled else self._matmul
        return torch.stack([read(xs[:, j], dw[j]) for j in range(dw.shape[0])], 1)

    def _ensure_programmed(self) -> None:
        if self._stamp != self._current_stamp():
            self.program()

    def effective_weight(self) -> torch.Tensor:
        """The weight the devices hold, ``(g_pos - g_neg) / scale``, in weight units."""
        self._ensure_programmed()
        return self._w_eff.clone()

    def _read_weight(self) -> torch.Tensor:
        """Programmed weight for a read; straight-through to the master weight under autograd."""
        self._ensure_programmed()
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return self.weight + (self._w_eff - self.weight).detach()
        return self._w_eff

    def current_scale(self) -> torch.Tensor:
        """Amperes per weight unit of output: ``scale * V_read`` (0-dim tensor)."""
        self._ensure_programmed()
        return self.scale * self._profile.read_voltage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Read the crossbar; output in weight units, bias added digitally.

        With the profile's periphery (:mod:`xbar.periphery`): the DAC quantises ``x``; read
        noise (``read_sigma * g_max`` per device, fresh at every read, drawn from
        :attr:`read_generator`) adds to each column; with an ADC, every array of
        ``tile_rows x tile_cols`` converts its own partial column outputs and the partial sums
        are added digitally. Under autograd the backward pass is that of the ideal read
        (straight through). The concrete layer supplies ``_matmul`` (the torch op),
        ``_tile_partials`` and ``_bias_view``.

        Raises:
            TypeError / ValueError: naming ``x`` for a non-float tensor, a dtype, shape or
                torch device the layer cannot read, or NaN / infinite values
                (:mod:`xbar.validation`).
        """
        check_layer_input(self, x)  # type: ignore[arg-type]
        w = self._read_weight()
        if self.affine_readout:
            out = self._matmul(x, w)
        else:
            with torch.no_grad():
                hw = self._hardware_read(x.detach())
            out = hw
            if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
                ideal = self._matmul(x, w)  # straight through: the backward pass of an ideal read
                out = ideal + (hw - ideal).detach()
        out = out if self.bias is None else out + self._bias_view(out)
        check_layer_output(self, x, out)  # type: ignore[arg-type]
        return out

    def currents(self, x: torch.Tensor) -> torch.Tensor:
        """Column currents in amperes for row drive ``x`` (``x = 1`` is ``V_read`` on a row).

        ``I_j = V_read * sum_i x_i (G+_ij - G-_ij)``; a bias becomes a digital current
        ``bias * scale * V_read``.
        """
        return self(x) * self.current_scale()

    # -- torch plumbing ----------------------------------------------------------------------
    def __deepcopy__(self, memo: dict) -> Any:
        """A copy that stays programmed: same conductances, no fresh programming noise."""
        fresh = getattr(self, "_stamp", None) is not None and self.is_programmed
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__dict__, memo))
        if fresh:
            new._stamp = new._current_stamp()
        return new

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        fresh = getattr(self, "_stamp", None) is not None and self.is_programmed
        out = super()._apply(fn, *args, **kwargs)  # type: ignore[misc]
        if getattr(self, "_nu", None) is not None:
            self._nu = tuple(fn(t) for t in self._nu)
        if fresh:
            self._stamp = self._current_stamp()
        return out

    def get_extra_state(self) -> dict:
        """Device profile, mapping and drift state, so a ``state_dict`` round trip restores them."""
        return {"device": self._profile.to_dict(), "mapping": self._mapping, "drift_t": self._drift_t,
                "drift_compensation": self.drift_compensation,
                "adc_range": None if self.adc_range is None else self.adc_range.tolist(),
                "dac_range": self.dac_range, "nu": self._nu,
                "column_compensation": None if self.column_compensation is None else self.column_compensation.tolist()}

    def set_extra_state(self, state: dict) -> None:
        """Restore the device profile and mapping saved by :meth:`get_extra_state`."""
        self._profile = parse_device(state["device"], path="<state_dict>")
        self._mapping = check_mapping(state["mapping"])
        self._drift_t = state.get("drift_t")
        self.drift_compensation = float(state.get("drift_compensation", 1.0))
        adc = state.get("adc_range")
        self.adc_range = None if adc is None else torch.tensor(adc, dtype=torch.float64)
        self.dac_range = state.get("dac_range")
        self._nu = state.get("nu")
        col = state.get("column_compensation")
        self.column_compensation = None if col is None else torch.tensor(col, dtype=self.weight.dtype)
        self._profile_token += 1

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):  # noqa: D401 - torch hook
        super()._load_from_state_dict(  # type: ignore[misc]
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if prefix + "g_pos" in state_dict and prefix + "g_neg" in state_dict:
            self._refresh_effective()
            self._set_full_scale()
            self._stamp = self._current_stamp()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, device={self._profile.name!r}, mapping={self._mapping!r}"  # type: ignore[misc]
