"""xbar.allocator: glibc's thresholds are set once, the environment can opt out, and a
spiking network's run sets them."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from xbar import allocator

_GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


def _run(code: str, **env: str) -> str:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not _GLIBC, reason="glibc only")
def test_sets_once_and_reports() -> None:
    out = _run("from xbar import allocator as a; print(a.memory_kept(), a.keep_freed_memory(), "
               "a.keep_freed_memory(), a.memory_kept())", XBAR_KEEP_FREED_MEMORY="1")
    assert out == "False True True True"


def test_environment_opts_out() -> None:
    out = _run("from xbar import allocator as a; print(a.keep_freed_memory(), a.memory_kept())",
               XBAR_KEEP_FREED_MEMORY="0")
    assert out == "False False"


@pytest.mark.skipif(not _GLIBC, reason="glibc only")
def test_a_network_run_sets_it() -> None:
    code = ("import torch, xbar; from torch import nn; from xbar import allocator as a\n"
            "ann = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()\n"
            "x = torch.rand(8, 4); snn = xbar.to_snn(ann, calibration=x, timesteps=4)\n"
            "before = a.memory_kept(); snn(x); print(before, a.memory_kept())")
    assert _run(code, XBAR_KEEP_FREED_MEMORY="1") in ("False True", "True True")
    assert _run(code, XBAR_KEEP_FREED_MEMORY="0") == "False False"


def test_not_glibc_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_STATE", {})
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
    assert allocator.memory_kept() is False
