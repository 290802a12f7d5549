"""Shared fixtures: device profiles and small synthetic data."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# CI runs the same Hypothesis examples every time (a red CI then always reproduces locally with
# CI=true); developers' runs keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

import xbar


@pytest.fixture(scope="session")
def seed4() -> xbar.DeviceProfile:
    return xbar.load_device("seed-4bit")


@pytest.fixture(scope="session")
def ideal() -> xbar.DeviceProfile:
    return xbar.load_device("ideal")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
