"""Reference implementations the tests compare xbar's fast paths against."""

from __future__ import annotations

import torch

import xbar
from xbar.neurons import if_step
from xbar.pooling import SpikingMaxPool, spiking_maxpool_step


def step_by_step(snn: xbar.SpikingNetwork, x_seq: torch.Tensor, sequence: bool = False) -> torch.Tensor:
    """Run ``snn`` on ``x_seq [T, B, ...]`` one timestep and one graph node at a time, every
    stateless module called on that step alone; the output averaged over T (every step with
    ``sequence``), in the network's output units.

    Uses only the network's graph, modules and the scales of ``sync_thresholds``; none of the
    executor's tiling or fast paths.
    """
    wiring = snn.sync_thresholds()
    state: dict[str, tuple] = {}
    outs = []
    for t in range(x_seq.shape[0]):
        vals: dict[str, torch.Tensor] = {}
        for node in snn.graph:
            hs = [vals[i] for i in node.inputs]
            if node.op == "input":
                out = x_seq[t]
            elif node.op == "output":
                out = hs[0]
            elif node.op == "module":
                m = snn.get_submodule(node.target)
                if isinstance(m, xbar.IFNeuron):
                    rest = m.v_init * m._threshold_for(hs[0]).detach() + torch.zeros_like(hs[0])
                    v = state.get(node.name, (rest,))[0]
                    out, v = if_step(hs[0], v, m._threshold_for(hs[0]), m.reset_mode)
                    state[node.name] = (v,)
                elif isinstance(m, SpikingMaxPool):
                    counts, pooled = state.get(node.name, (None, None))
                    out, counts, pooled = spiking_maxpool_step(m, hs[0], counts, pooled)
                    state[node.name] = (counts, pooled)
                elif node.name in wiring.currents:
                    out = m.currents(hs[0])
                else:
                    out = m(hs[0])
            elif node.op == "add":
                f = wiring.factors[node.name]
                ref = wiring.reference.get(node.name, 0)
                out = hs[ref] * f[ref]
                for i, h in enumerate(hs):
                    if i != ref:
                        out = out + h * f[i]
            elif node.op == "cat":
                f = wiring.factors[node.name]
                out = torch.cat([h * c for h, c in zip(hs, f)], node.arg("dim"))
            elif node.op == "scale":
                out = hs[0] * wiring.multiplier[node.name]
            elif node.op == "reshape":
                out = hs[0].reshape(hs[0].shape[0], *node.arg("shape"))
            elif node.op == "permute":
                out = hs[0].permute(*node.arg("dims"))
            else:
                out = hs[0].mean(tuple(node.arg("dims")), keepdim=bool(node.arg("keepdim")))
            vals[node.name] = out
        outs.append(vals[snn.graph.output.name])
    seq = torch.stack(outs)
    return seq * wiring.output_scale if sequence else seq.mean(0) * wiring.output_scale


def saved_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
