"""Reference implementations the tests compare xbar's fast paths against."""

from __future__ import annotations

import torch

import xbar
from xbar.neurons import if_step


def step_by_step(snn: xbar.SpikingNetwork, x_seq: torch.Tensor) -> torch.Tensor:
    """Run ``snn`` on ``x_seq [T, B, ...]`` one timestep and one stage at a time; mean over T."""
    snn.sync_thresholds()
    vs: dict[int, torch.Tensor] = {}
    outs = []
    for t in range(x_seq.shape[0]):
        h = x_seq[t]
        for i, stage in enumerate(snn.stages):
            if isinstance(stage, xbar.IFNeuron):
                h, vs[i] = if_step(h, vs.get(i, torch.zeros_like(h)), stage._threshold_for(h), stage.reset_mode)
            else:
                h = stage(h)
        outs.append(h)
    return torch.stack(outs).mean(0)


def saved_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
