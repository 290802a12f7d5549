"""End to end on real MNIST (fetched on first use): train, program seed-4bit crossbars, convert."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import xbar
from xbar.data import mnist_datasets
from xbar.models import mlp

pytestmark = pytest.mark.slow


def test_one_epoch_mlp_converts_onto_seed4bit_crossbars():
    train, _, test = mnist_datasets()
    torch.manual_seed(0)
    ann = mlp()
    opt = torch.optim.Adam(ann.parameters(), 1e-3)
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(train), 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        F.cross_entropy(ann(train.images[idx]), train.labels[idx]).backward()
        opt.step()
    x, y = test.images[:2000], test.labels[:2000]
    with torch.no_grad():
        ann_acc = (ann(x).argmax(1) == y).float().mean().item()
    snn = xbar.to_snn(xbar.to_crossbar(ann, "seed-4bit"), calibration=train.images[:2000].split(500),
                      timesteps=16, norm="percentile",
                      encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(0)))
    with torch.no_grad(), xbar.EnergyMeter(snn) as meter:
        snn_acc = (snn(x).argmax(1) == y).float().mean().item()
    assert ann_acc > 0.90
    assert snn_acc > ann_acc - 0.02, (ann_acc, snn_acc)
    report = meter.report()
    assert report.samples == 2000 and report.acs > 0 and report.joules > 0
