"""The core issue's acceptance check on MNIST: ANN, seed-4bit crossbars, percentile conversion.

Run with ``python -m xbar.experiments.core_acceptance``: trains the 784-100-10 bias-free MLP for
5 epochs (Adam 1e-3, batch 64, seed 0), programs it onto ``seed-4bit`` crossbars, converts it
with 99.9th-percentile normalisation (calibrated on 100 training batches) and reports the test
accuracy at T=16 and T=32 with Poisson input at max rate 1.0, beside the float network's.
"""

from __future__ import annotations

import time

import torch

import xbar
from xbar.data import mnist_loaders
from xbar.models import mlp
from xbar.train import evaluate, train


def main() -> None:
    """Train, convert and print the figures (under a minute on two CPU cores)."""
    t0 = time.perf_counter()
    train_loader, val_loader, test_loader = mnist_loaders(batch_size=64, seed=0)
    torch.manual_seed(0)
    ann = mlp()
    hist = train(ann, train_loader, epochs=5, lr=1e-3, val_loader=val_loader, test_loader=test_loader,
                 seed=0, progress=False)
    print(f"ANN test accuracy after 5 epochs: {hist[-1]['test_acc']:.2%} ({time.perf_counter() - t0:.0f} s)")
    dev = xbar.load_device("seed-4bit")
    hw = xbar.to_crossbar(ann, dev)
    print(f"ANN on seed-4bit crossbars: {evaluate(hw, test_loader):.2%}")
    calib = [x for i, (x, _) in enumerate(train_loader) if i < 100]
    for t in (16, 32):
        for name, model in (("float", ann), ("seed-4bit", hw)):
            snn = xbar.to_snn(model, calibration=calib, timesteps=t, norm="percentile", percentile=99.9,
                              encoder=xbar.PoissonEncoder(1.0, generator=torch.Generator().manual_seed(1)))
            print(f"SNN {name:9s} T={t:2d}: {evaluate(snn, test_loader):.2%}")


if __name__ == "__main__":
    main()
