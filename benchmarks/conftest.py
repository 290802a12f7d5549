"""Shared fixtures of the speed benchmarks (run with ``pytest benchmarks``; not collected by the
default ``pytest`` run, whose ``testpaths`` is ``tests``).

``XBAR_BENCH_SAMPLES`` sets the number of MNIST test images (default 10000). Each model is
trained once (one epoch) and cached under ``<xbar cache>/bench/`` (:func:`xbar.bench.cache_path`).
"""

from __future__ import annotations

import pytest

from xbar.bench import Setup, load_setup


@pytest.fixture(scope="session")
def setup() -> Setup:
    """MNIST test images in batches of 1000 and the trained 784-100-10 MLP, on the CPU."""
    return load_setup()


@pytest.fixture(scope="session")
def setup_lenet() -> Setup:
    """MNIST test images in batches of 1000 and the trained LeNet-style CNN, on the CPU."""
    return load_setup(model="lenet")
