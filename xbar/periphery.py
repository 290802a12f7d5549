"""Crossbar periphery: DAC/ADC quantisation, tiling into fixed-size arrays, IR drop.

Pure functions; :mod:`xbar.layers` applies them on every read and :func:`xbar.chip.calibrate_periphery`
sets the converters' ranges from data.

* **Tiling.** A layer's matrix (rows = inputs, columns = outputs; for a convolution the rows
  are the ``C_in/groups * kh * kw`` taps of a patch) is cut into arrays of ``tile_rows x
  tile_cols`` devices. Each array drives its own ADCs, one per column, and the partial sums of
  the arrays that share columns are added digitally.
* **ADC** (``adc_bits = b >= 2``): a signed, symmetric mid-tread converter with the
  ``2**b - 1`` codes ``-(2**(b-1) - 1) .. 2**(b-1) - 1`` and step
  ``full_scale / (2**(b-1) - 1)``: zero current reads as exactly zero, ``+-full_scale`` are
  codes, anything beyond clips. At most ``2**b`` distinct outputs per column.
* **DAC** (``dac_bits = b``): each row drive is quantised before the read; a sample whose
  drives are all non-negative uses ``2**b - 1`` steps over ``[0, full_scale]``, a sample with
  negative drives the ADC's signed code (``b >= 2``). Without a calibrated range the full
  scale is each sample's largest ``|x|`` (binary spikes pass exactly).
* **IR drop** (``wire_ohm = r``, first order): inputs are driven from column 0 of every row,
  the column currents are sensed at the last row. With the currents of an ideal array, the
  device at row ``i``, column ``j`` of an ``n x m`` array sees its voltage lowered by
  ``r V x_i sum_c G_ic (min(c, j) + 1)`` along its row and raised at its column node by
  ``r V sum_l x_l G_lj (n - max(i, l))``. Both are linear in ``x``, so to first order the array
  reads as if every device held ``G_ij (1 - r [(G C)_ij + (M G)_ij])`` with
  ``C_cj = min(c, j) + 1`` and ``M_il = n - max(i, l)``: :func:`ir_drop` returns those
  conductances (valid while ``r g_max n m`` is well below 1: measured, the predicted drop is 4%
  off at 0.1 and 40% off at 1.0; above :data:`IR_DROP_LIMIT` a layer warns; clamped at 0).
* **Output noise** (``out_noise``): Gaussian at every ADC input, ``out_noise * g_max * V_read``
  (applied with the read noise by :mod:`xbar.crossbar`).
"""

from __future__ import annotations

import math

import torch


def tile_count(size: int, tile: int | None) -> int:
    """Number of arrays needed for ``size`` rows (or columns) with ``tile`` per array."""
    return 1 if tile is None else max(1, math.ceil(size / tile))


def adc_quantize(current: torch.Tensor, bits: int, full_scale: torch.Tensor | float) -> torch.Tensor:
    """Read ``current`` through a signed ``bits``-bit ADC of range ``[-full_scale, full_scale]``.

    Args:
        current: analog values, any shape (any unit).
        bits: resolution, >= 2.
        full_scale: range, same unit, broadcastable to ``current``; where it is 0 the output is 0.

    Returns:
        ``k * full_scale / (2**(bits-1) - 1)`` with the integer code ``k`` rounded to nearest
        and clipped to ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``.

    Raises:
        ValueError: ``bits`` < 2.
    """
    if bits < 2:
        raise ValueError(f"bits: a signed converter needs at least 2 bits, got {bits}")
    top = float(2 ** (bits - 1) - 1)
    fs = torch.as_tensor(full_scale, dtype=current.dtype, device=current.device)
    step = fs / top
    safe = torch.where(step > 0, step, torch.ones_like(step))
    codes = torch.round(current / safe).clamp(-top, top)
    return torch.where(step > 0, codes * step, torch.zeros_like(codes))


def dac_quantize(x: torch.Tensor, bits: int, full_scale: float | None = None,
                 sample_dims: tuple[int, ...] = (-1,)) -> torch.Tensor:
    """Quantise row drives ``x`` to what a ``bits``-bit DAC can apply.

    Args:
        x: row drives, any shape.
        bits: resolution, >= 1.
        full_scale: the DAC's range (same unit as ``x``); None means each sample's own largest
            ``|x|`` (over ``sample_dims``).
        sample_dims: the dimensions that make up one sample's drive.

    Returns:
        Quantised drives, same shape; a sample with only non-negative drives uses
        ``2**bits - 1`` steps over ``[0, full_scale]`` (clipping above), a sample with negative
        drives the ADC's signed code.

    Raises:
        ValueError: a sample with negative drives and ``bits`` < 2.
    """
    if full_scale is None:
        fs = x.detach().abs().amax(dim=sample_dims, keepdim=True)
    else:
        fs = torch.as_tensor(float(full_scale), dtype=x.dtype, device=x.device)
    signed = (x < 0).any(dim=sample_dims, keepdim=True)
    steps = float(2 ** bits - 1)
    step = fs / steps
    safe = torch.where(step > 0, step, torch.ones_like(step))
    codes = torch.round(x / safe).clamp(0, steps)
    out = torch.where(step > 0, codes * step, torch.zeros_like(codes))
    if bool(signed.any()):
        if bits < 2:
            raise ValueError(f"bits: negative drives need a signed DAC of at least 2 bits, got {bits}")
        out = torch.where(signed, adc_quantize(x, bits, fs), out)
    return out


def _pad_to(g: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return torch.nn.functional.pad(g, (0, cols - g.shape[1], 0, rows - g.shape[0]))


def tile_view(g: torch.Tensor, tile_rows: int | None, tile_cols: int | None) -> torch.Tensor:
    """The ``[rows, cols]`` matrix ``g`` as arrays ``[n_rt, tile_rows, n_ct, tile_cols]``,
    zero-padded at the far ends (the last arrays are partly used)."""
    rows, cols = g.shape
    tr, tc = tile_rows or rows, tile_cols or cols
    n_rt, n_ct = tile_count(rows, tr), tile_count(cols, tc)
    return _pad_to(g, n_rt * tr, n_ct * tc).view(n_rt, tr, n_ct, tc)


def full_scale(w_rows_cols: torch.Tensor, tile_rows: int | None, tile_cols: int | None,
               drive: float = 1.0) -> torch.Tensor:
    """Uncalibrated ADC range of every array: its largest possible column output,
    ``drive * max_j sum_i |w_ij|`` (the column current when every row is driven at ``drive``).

    Returns:
        ``[n_rt, n_ct]``, the unit of ``w`` times the unit of ``drive``.
    """
    t = tile_view(w_rows_cols.abs(), tile_rows, tile_cols)
    return t.sum(1).amax(-1) * drive


@torch.no_grad()
def ir_drop(g_rows_cols: torch.Tensor, wire_ohm: float, tile_rows: int | None,
            tile_cols: int | None) -> torch.Tensor:
    """First-order IR drop: the conductances each array effectively reads with (see module doc).

    Args:
        g_rows_cols: device conductances ``[rows, cols]``, siemens (rows = inputs).
        wire_ohm: wire resistance per segment between neighbouring devices, ohms.
        tile_rows, tile_cols: array size (None: the whole matrix is one array).

    Returns:
        Effective conductances, siemens, same shape; equal to ``g`` when ``wire_ohm`` is 0.
    """
    if wire_ohm == 0:
        return g_rows_cols
    rows, cols = g_rows_cols.shape
    t = tile_view(g_rows_cols, tile_rows, tile_cols)  # [n_rt, n, n_ct, m]
    n, m = t.shape[1], t.shape[3]
    idx_c = torch.arange(m, device=g_rows_cols.device, dtype=g_rows_cols.dtype)
    idx_r = torch.arange(n, device=g_rows_cols.device, dtype=g_rows_cols.dtype)
    c_mat = torch.minimum(idx_c[:, None], idx_c[None, :]) + 1           # [m, m]
    m_mat = n - torch.maximum(idx_r[:, None], idx_r[None, :])           # [n, n]
    row_term = torch.einsum("aibc,cj->aibj", t, c_mat)
    col_term = torch.einsum("il,albj->aibj", m_mat, t)
    eff = (t * (1 - wire_ohm * (row_term + col_term))).clamp_min(0)
    return eff.reshape(t.shape[0] * n, t.shape[2] * m)[:rows, :cols]


IR_DROP_LIMIT = 0.1  # r g_max rows cols above which the first-order model is off by more than ~4%


def ir_drop_k(wire_ohm: float, g_max: float, rows: int, cols: int) -> float:
    """``r g_max rows cols``: the size of the first-order IR-drop correction of an array.

    Measured against a full nodal solve of the array, the first-order drop is about 4% off at
    0.1 and 40% off at 1.0; :data:`IR_DROP_LIMIT` is where a layer warns.
    """
    return wire_ohm * g_max * rows * cols


class _Calibration:
    """Collects one layer's clean tile partials (and drives) while :func:`calibrate_periphery`
    runs the model: the largest magnitude, or a subsample of the non-zero magnitudes."""

    _KEEP = 1 << 16  # values kept per array and read batch for a percentile

    def __init__(self, method: str, percentile: float, generator: torch.Generator) -> None:
        self.method, self.percentile, self.generator = method, percentile, generator
        self.adc: list[torch.Tensor] = []
        self.dac: list[torch.Tensor] = []

    def _keep(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., K]`` magnitudes -> the max ``[..., 1]``, or at most ``_KEEP`` non-zero samples."""
        if self.method == "max":
            return values.amax(-1, keepdim=True)
        if values.shape[-1] > self._KEEP:
            idx = torch.randint(values.shape[-1], (self._KEEP,), generator=self.generator)
            values = values[..., idx.to(values.device)]
        return values

    def record(self, layer: torch.nn.Module, x: torch.Tensor, parts: torch.Tensor) -> None:
        n_rt, n_ct = layer.tiles
        tc = layer.profile.tile_cols or layer._rows_cols(layer.weight).shape[1]
        p = parts.detach().abs()
        if layer._tile_dim == -2:   # linear: [..., n_rt, out]
            p = p.reshape(-1, n_rt, p.shape[-1]).permute(1, 2, 0)
        else:                       # conv: [B, n_rt, C_out, H', W']
            p = p.movedim(1, 0).movedim(2, 1).reshape(n_rt, p.shape[2], -1)
        p = torch.nn.functional.pad(p, (0, 0, 0, n_ct * tc - p.shape[1])).reshape(n_rt, n_ct, -1)
        self.adc.append(self._keep(p).cpu())
        self.dac.append(self._keep(x.detach().abs().reshape(1, 1, -1)).cpu())

    def _range(self, chunks: list[torch.Tensor]) -> torch.Tensor:
        values = torch.cat(chunks, dim=-1).to(torch.float64)
        if self.method == "max":
            return values.amax(-1)
        out = torch.zeros(values.shape[:-1], dtype=torch.float64)
        for idx in torch.cartesian_prod(*(torch.arange(s) for s in values.shape[:-1])).view(-1, values.dim() - 1):
            v = values[tuple(idx)]
            v = v[v > 0]
            if v.numel():
                out[tuple(idx)] = torch.quantile(v[: 1 << 24], self.percentile / 100.0)
        return out

    def ranges(self) -> tuple[torch.Tensor | None, float | None]:
        if not self.adc:
            return None, None
        return self._range(self.adc), float(self._range(self.dac).reshape(-1)[0])
