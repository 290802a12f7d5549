"""The energy meter's per-position input statistics: non-zero counts and sums of squares of an
analog input, and the binary check (``xbar.energy``)."""

from __future__ import annotations

import torch

from xbar.energy import _analog_stats, _is_binary


def _reference(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f64 = flat.to(torch.float64)
    return (f64 != 0).sum(0).to(torch.float64), f64.square().sum(0)


def test_pooled_spikes_exact() -> None:
    """Quarters (an average pool of spikes) over more rows than one block: exact."""
    gen = torch.Generator().manual_seed(0)
    flat = torch.randint(0, 5, (3000, 6, 14, 14), generator=gen).float() / 4
    flat[torch.rand(flat.shape, generator=gen) < 0.5] = 0.0
    nz, sq = _analog_stats(flat)
    ref_nz, ref_sq = _reference(flat)
    assert torch.equal(nz, ref_nz) and torch.equal(sq, ref_sq)


def test_analog_close_and_signed() -> None:
    gen = torch.Generator().manual_seed(1)
    flat = torch.randn(700, 3, 9, generator=gen)
    flat[:, 0] = 0.0
    nz, sq = _analog_stats(flat)
    ref_nz, ref_sq = _reference(flat)
    assert torch.equal(nz, ref_nz)
    torch.testing.assert_close(sq, ref_sq, rtol=1e-6, atol=0)
    assert nz.dtype == sq.dtype == torch.float64


def test_float64_input() -> None:
    flat = torch.tensor([[0.0, 0.1], [0.3, 0.0]], dtype=torch.float64)
    nz, sq = _analog_stats(flat)
    assert nz.tolist() == [1.0, 1.0] and sq.tolist() == [0.09, 0.010000000000000002]


def test_binary_check_sees_analog_in_any_row() -> None:
    """A first row without spikes does not hide analog values further down."""
    flat = torch.zeros(9, 4)
    assert _is_binary(flat)
    flat[4, 2] = 1.0
    assert _is_binary(flat)
    for row in (0, 4, 6, 8):
        bad = flat.clone()
        bad[row, 1] = 0.5
        assert not _is_binary(bad)


def test_half_precision_counts_exact() -> None:
    """601 rows of bfloat16 values: counted exactly (601 is no bfloat16 number)."""
    flat = torch.ones(601, 3, dtype=torch.bfloat16)
    flat[:, 1] = 0.5
    nz, sq = _analog_stats(flat)
    assert nz.tolist() == [601.0] * 3 and sq.tolist() == [601.0, 150.25, 601.0]
