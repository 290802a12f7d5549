"""README's code runs as written (on small random data instead of MNIST)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def _block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_your_own_model_section_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    env = {"calib_images": torch.rand(16, 1, 12, 12, generator=g), "images": torch.rand(4, 1, 12, 12, generator=g)}
    exec(compile(_block("## Your own model"), "README.md", "exec"), env)
    snn, hw, meter = env["snn"], env["hw"], env["meter"]
    names = [l.name for l in meter.report().layers]
    assert "layer1.conv2" in names and "layer1.add" in names and any("stem.3" == n for n in names)
    assert env["out"].shape == (4, 10)
    assert (tmp_path / "net-snn.pt").exists() and isinstance(hw.fc, type(snn.get_submodule("fc")))
