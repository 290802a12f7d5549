"""Crossbar layers: ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` whose weights live on device
conductances.

Each concrete type subclasses its torch layer and :class:`~xbar.crossbar._CrossbarMixin` (the
array's state: programming, drift, periphery reads; see :mod:`xbar.crossbar`), and supplies
the geometry: which inputs are the crossbar rows and how a row tile's share of the output is
computed. A convolution is unrolled: its rows are the ``C_in/groups * prod(kernel_size)``
taps of one output position, its columns the ``C_out`` output channels.

``_CrossbarMixin`` and ``_resolve_profile`` are re-exported here for the modules that import
them from :mod:`xbar.layers`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .conv_batch import conv
from .crossbar import _CrossbarMixin as _CrossbarMixin
from .crossbar import _resolve_profile as _resolve_profile
from .device import DeviceProfile

__all__ = ["CROSSBAR_TYPES", "CrossbarConv1d", "CrossbarConv2d", "CrossbarLinear"]


class CrossbarLinear(_CrossbarMixin, nn.Linear):
    """``nn.Linear`` on a crossbar: rows are inputs, columns are outputs.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        profile: a :class:`DeviceProfile`, a shipped profile name, or a YAML path
            (default ``"ideal"``).
        mapping: ``"differential"`` (default) or ``"clip"``.
        device, dtype: torch placement, as ``nn.Linear``.

    Shape:
        input ``[..., in_features]``; output ``[..., out_features]`` (weight units; amperes
        from :meth:`currents`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 profile: DeviceProfile | str | None = None, mapping: str = "differential",
                 device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_crossbar(profile, mapping)

    _tile_dim = -2

    def _matmul(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w)

    def _sample_dims(self, x: torch.Tensor) -> tuple[int, ...]:
        return (-1,)

    def _tile_partials(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Each row tile's share of ``x @ w.T``: ``[..., row tiles, out_features]``."""
        n_rt, tr = self.tiles[0], self._profile.tile_rows or self.in_features
        pad = n_rt * tr - self.in_features
        xp = F.pad(x, (0, pad)).reshape(*x.shape[:-1], n_rt, tr)
        wp = F.pad(w, (0, pad)).reshape(w.shape[0], n_rt, tr)
        return torch.einsum("...tr,otr->...to", xp, wp)

    def _bias_view(self, out: torch.Tensor) -> torch.Tensor:
        return self.bias

    def _per_sample_read(self, xs: torch.Tensor, dw: torch.Tensor, tiled: bool) -> torch.Tensor:
        """Reads ``xs [steps, k, in]``, sample ``j`` with its own weight ``dw[j]`` (held 1/f noise):
        ``[steps, k, out]``, or ``[steps, k, row tiles, out]`` when ``tiled``."""
        if not tiled:
            return torch.einsum("tki,koi->tko", xs, dw)
        n_rt, tr = self.tiles[0], self._profile.tile_rows or self.in_features
        pad = n_rt * tr - self.in_features
        xp = F.pad(xs, (0, pad)).reshape(*xs.shape[:2], n_rt, tr)
        wp = F.pad(dw, (0, pad)).reshape(*dw.shape[:2], n_rt, tr)
        return torch.einsum("tkri,kori->tkro", xp, wp)

    @classmethod
    def from_linear(cls, linear: nn.Linear, profile: DeviceProfile | str | None = None,
                    mapping: str = "differential") -> "CrossbarLinear":
        """Build a crossbar layer holding a copy of ``linear``'s weight and bias, programmed.

        Args:
            linear: any ``nn.Linear`` (subclasses and crossbar layers included: their master
                weight is copied).
            profile: device profile, shipped profile name or YAML path (default ``"ideal"``).
            mapping: ``"differential"`` (default) or ``"clip"``.

        Returns:
            A programmed :class:`CrossbarLinear` on ``linear``'s torch device and dtype.

        Raises:
            TypeError: ``linear`` is not an ``nn.Linear``.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected nn.Linear, got {type(linear).__name__}")
        w = linear.weight
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    profile=profile, mapping=mapping, device=w.device, dtype=w.dtype)
        return _copy_parameters(linear, layer)

    def to_linear(self, effective: bool = False) -> nn.Linear:
        """Plain ``nn.Linear`` with the master weight, or the programmed one if ``effective``."""
        w = self.weight
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=w.device, dtype=w.dtype)
        return _export_parameters(self, out, effective)


def _copy_parameters(src: nn.Module, layer: Any) -> Any:
    """Copy ``src``'s weight (and bias) into the crossbar ``layer``, keep ``requires_grad``,
    and program it."""
    w = src.weight
    with torch.no_grad():
        layer.weight.copy_(w)
        if src.bias is not None:
            layer.bias.copy_(src.bias)
    layer.weight.requires_grad_(w.requires_grad)
    return layer.program()


def _export_parameters(layer: Any, out: Any, effective: bool) -> Any:
    """Copy the crossbar ``layer``'s master weight (or its programmed weight, if ``effective``)
    and bias into the plain torch layer ``out``; return ``out``."""
    with torch.no_grad():
        out.weight.copy_(layer.effective_weight() if effective else layer.weight)
        if layer.bias is not None:
            out.bias.copy_(layer.bias)
    return out


class _CrossbarConv(_CrossbarMixin):
    """What the crossbar convolutions share, for any number ``n`` of spatial dimensions.

    The rows are the ``C_in/groups * prod(kernel_size)`` taps of the flattened kernel; a row
    tile holds ``tile_rows`` consecutive taps. Tile partials are ``[B, row tiles, C_out,
    *spatial_out]``. The concrete class names its torch layer in ``_torch_conv``.
    """

    _tile_dim = 1
    _torch_conv: type
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: str | tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str
    _conv_forward: Callable[..., torch.Tensor]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", profile: DeviceProfile | str | None = None,
                 mapping: str = "differential", device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,  # type: ignore[call-arg]
                         padding=padding, dilation=dilation, groups=groups, bias=bias,
                         padding_mode=padding_mode, device=device, dtype=dtype)
        self._init_crossbar(profile, mapping)

    @property
    def _spatial(self) -> int:
        return len(self.kernel_size)

    def _matmul(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or x.dim() != self._spatial + 2:
            return self._conv_forward(x, w, None)
        return conv(x, w, None, self.stride, self.padding, self.dilation, self.groups)

    def _sample_dims(self, x: torch.Tensor) -> tuple[int, ...]:
        return tuple(range(-self._spatial - 1, 0))

    def _hardware_read(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self._spatial + 1:  # one unbatched sample reads like a batch of one
            return super()._hardware_read(x.unsqueeze(0)).squeeze(0)
        return super()._hardware_read(x)

    def _tile_partials(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Each row tile's share of the convolution: ``[B, row tiles, C_out, *spatial_out]``
        (a row tile holds ``tile_rows`` consecutive taps of the flattened kernel)."""
        rows = w[0].numel()
        tr = self._profile.tile_rows or rows
        tap = torch.arange(rows, device=w.device).view(w.shape[1:])
        return torch.stack([self._matmul(x, w * (tap // tr == t).to(w.dtype))
                            for t in range(self.tiles[0])], dim=1)

    def _bias_view(self, out: torch.Tensor) -> torch.Tensor:
        return self.bias.view(-1, *([1] * self._spatial))

    @classmethod
    def _from_conv(cls, conv: nn.Module, profile: DeviceProfile | str | None, mapping: str) -> Any:
        if not isinstance(conv, cls._torch_conv):
            raise TypeError(f"conv: expected nn.{cls._torch_conv.__name__}, got {type(conv).__name__}")
        w = conv.weight
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode, profile=profile,
                    mapping=mapping, device=w.device, dtype=w.dtype)
        return _copy_parameters(conv, layer)

    def _to_conv(self, effective: bool) -> Any:
        w = self.weight
        out = self._torch_conv(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                               padding=self.padding, dilation=self.dilation, groups=self.groups,
                               bias=self.bias is not None, padding_mode=self.padding_mode,
                               device=w.device, dtype=w.dtype)
        return _export_parameters(self, out, effective)


class CrossbarConv1d(_CrossbarConv, nn.Conv1d):
    """``nn.Conv1d`` on a crossbar (unrolled: rows are the ``C_in/groups * k`` kernel taps).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode: as ``nn.Conv1d``.
        profile: a :class:`DeviceProfile`, a shipped profile name, or a YAML path
            (default ``"ideal"``).
        mapping: ``"differential"`` (default) or ``"clip"``.
        device, dtype: torch placement, as ``nn.Conv1d``.

    Shape:
        input ``[B, C_in, L]`` or ``[C_in, L]``; output ``[B, C_out, L']`` or ``[C_out, L']``
        (weight units; amperes from :meth:`currents`).
    """

    _torch_conv = nn.Conv1d

    @classmethod
    def from_conv1d(cls, conv: nn.Conv1d, profile: DeviceProfile | str | None = None,
                    mapping: str = "differential") -> "CrossbarConv1d":
        """Build a crossbar layer holding a copy of ``conv``'s weight and bias, programmed.

        Args:
            conv: any ``nn.Conv1d`` (subclasses and crossbar layers included).
            profile: device profile, shipped profile name or YAML path (default ``"ideal"``).
            mapping: ``"differential"`` (default) or ``"clip"``.

        Returns:
            A programmed :class:`CrossbarConv1d` on ``conv``'s torch device and dtype.

        Raises:
            TypeError: ``conv`` is not an ``nn.Conv1d``.
        """
        return cls._from_conv(conv, profile, mapping)

    def to_conv1d(self, effective: bool = False) -> nn.Conv1d:
        """Plain ``nn.Conv1d`` with the master weight, or the programmed one if ``effective``."""
        return self._to_conv(effective)


class CrossbarConv2d(_CrossbarConv, nn.Conv2d):
    """``nn.Conv2d`` on a crossbar (unrolled: rows are ``C_in/groups * kh * kw`` patch taps).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode: as ``nn.Conv2d``.
        profile: a :class:`DeviceProfile`, a shipped profile name, or a YAML path
            (default ``"ideal"``).
        mapping: ``"differential"`` (default) or ``"clip"``.
        device, dtype: torch placement, as ``nn.Conv2d``.

    Shape:
        input ``[B, C_in, H, W]`` or ``[C_in, H, W]``; output ``[B, C_out, H', W']`` or
        ``[C_out, H', W']`` (weight units; amperes from :meth:`currents`).
    """

    _torch_conv = nn.Conv2d

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, profile: DeviceProfile | str | None = None,
                    mapping: str = "differential") -> "CrossbarConv2d":
        """Build a crossbar layer holding a copy of ``conv``'s weight and bias, programmed.

        Args:
            conv: any ``nn.Conv2d`` (subclasses and crossbar layers included).
            profile: device profile, shipped profile name or YAML path (default ``"ideal"``).
            mapping: ``"differential"`` (default) or ``"clip"``.

        Returns:
            A programmed :class:`CrossbarConv2d` on ``conv``'s torch device and dtype.

        Raises:
            TypeError: ``conv`` is not an ``nn.Conv2d``.
        """
        return cls._from_conv(conv, profile, mapping)

    def to_conv2d(self, effective: bool = False) -> nn.Conv2d:
        """Plain ``nn.Conv2d`` with the master weight, or the programmed one if ``effective``."""
        return self._to_conv(effective)


CROSSBAR_TYPES = (CrossbarLinear, CrossbarConv1d, CrossbarConv2d)
