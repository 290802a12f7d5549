"""xbar.train.train(lr_schedule="cosine"): the learning rate falls to 0 along a cosine over
every step; bad values are refused by name."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xbar.train import train


def _loader(batches: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(batches)]


def test_cosine_reaches_zero_and_follows_the_curve(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    real_step = torch.optim.Adam.step

    def step(self, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    model = nn.Linear(5, 3)
    train(model, _loader(), epochs=2, lr=0.1, progress=False, lr_schedule="cosine")
    total = 8
    expected = [0.05 * (1 + math.cos(math.pi * i / total)) for i in range(total)]
    assert seen == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_constant_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    real_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step",
                        lambda self, *a, **k: (seen.append(self.param_groups[0]["lr"]), real_step(self, *a, **k))[1])
    train(nn.Linear(5, 3), _loader(), epochs=1, lr=0.1, progress=False)
    assert seen == [0.1] * 4


def test_bad_schedule_named() -> None:
    with pytest.raises(ValueError, match="lr_schedule"):
        train(nn.Linear(5, 3), _loader(), epochs=1, lr_schedule="step", progress=False)
    with pytest.raises(ValueError, match="lr_schedule='cosine' needs"):
        train(nn.Linear(5, 3), iter(_loader()), epochs=1, lr_schedule="cosine", progress=False)
