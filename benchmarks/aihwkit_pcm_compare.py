"""xbar's ``pcm`` profile against IBM aihwkit's PCM model (``PCMLikeNoiseModel``), side by side.

One script, two environments. Run it in xbar's environment::

    python benchmarks/aihwkit_pcm_compare.py --peer /work/peers/aihwkit/bin/python

It writes one layer's weights and inputs to a ``.pt`` file, runs itself under ``--peer`` (a
Python with ``aihwkit`` installed; aihwkit is not an xbar dependency) with ``--side aihwkit`` on
the same file, runs the xbar side here, and prints both relative output errors and their ratio.

Settings (the same on both sides): a 256 x 512 crossbar (``nn.Linear(256, 512)``, Gaussian
weights), ``--batch`` uniform inputs in [-1, 1], one read per input, ideal periphery (aihwkit
``forward.is_perfect = True``; xbar ``pcm.ideal_periphery()``), weights mapped so that
``max|W|`` is ``g_max`` = 25 uS (aihwkit ``weight_scaling_omega = 1``), global drift
compensation, at t = t0 (``t_inference = 0``), 1 hour, 1 day and 1 year, with and without
read noise (aihwkit ``read_noise_scale = 0``; xbar ``flicker_q = 0``). The relative output
error is ``||y - y_ideal|| / ||y_ideal||`` over the batch, averaged over ``--repeats``
programmings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

TIMES = {"t0": 0.0, "1h": 3600.0, "1d": 86400.0, "1y": 365 * 86400.0}
IN, OUT = 256, 512


def _rel(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y - ref).norm() / ref.norm())


def run_aihwkit(data: dict, repeats: int) -> dict:
    """The aihwkit side: AnalogLinear with PCMLikeNoiseModel and GlobalDriftCompensation."""
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import InferenceRPUConfig

    w, x = data["w"], data["x"]
    ref = x @ w.t()
    out: dict = {}
    for noisy in (True, False):
        cfg = InferenceRPUConfig()
        cfg.forward.is_perfect = True
        cfg.mapping.weight_scaling_omega = 1.0
        cfg.noise_model = PCMLikeNoiseModel(g_max=25.0, read_noise_scale=1.0 if noisy else 0.0)
        cfg.drift_compensation = GlobalDriftCompensation()
        for name, t in TIMES.items():
            errs = []
            for r in range(repeats):
                torch.manual_seed(1000 + r)
                layer = AnalogLinear(IN, OUT, bias=False, rpu_config=cfg)
                layer.set_weights(w, None)
                layer.eval()
                layer.program_analog_weights()
                layer.drift_analog_weights(t)
                with torch.no_grad():
                    errs.append(_rel(layer(x), ref))
            out[f"{'read' if noisy else 'noread'}/{name}"] = sum(errs) / len(errs)
    return out


def run_xbar(data: dict, repeats: int, device: str = "pcm") -> dict:
    """The xbar side: CrossbarLinear on the profile with ideal periphery, global compensation."""
    from torch import nn

    import xbar

    w, x = data["w"], data["x"]
    ref = x @ w.t()
    base = xbar.load_device(device).ideal_periphery()
    out: dict = {}
    for noisy in (True, False):
        dev = base if noisy else base.replace(flicker_q=0.0, read_sigma=0.0)
        lin = nn.Linear(IN, OUT, bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        layer = xbar.CrossbarLinear.from_linear(lin, dev)
        for name, t in TIMES.items():
            errs = []
            for r in range(repeats):
                layer.program(torch.Generator().manual_seed(2000 + r))
                layer.read_generator = torch.Generator().manual_seed(3000 + r)
                layer.drift(t, compensate=True)
                with torch.no_grad():
                    errs.append(_rel(layer(x), ref))
            out[f"{'read' if noisy else 'noread'}/{name}"] = sum(errs) / len(errs)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", choices=("both", "aihwkit", "xbar"), default="both")
    p.add_argument("--peer", default="/work/peers/aihwkit/bin/python", help="a Python with aihwkit installed")
    p.add_argument("--data", default="/tmp/aihwkit_pcm_compare.pt", help="weights and inputs (.pt)")
    p.add_argument("--result", default=None, help="write this side's errors here (JSON)")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="pcm", help="xbar profile (default pcm)")
    args = p.parse_args(argv)
    if args.side == "aihwkit":
        res = run_aihwkit(torch.load(args.data), args.repeats)
        Path(args.result).write_text(json.dumps(res))
        return 0
    gen = torch.Generator().manual_seed(0)
    data = {"w": torch.randn(OUT, IN, generator=gen) * 0.1, "x": torch.rand(args.batch, IN, generator=gen) * 2 - 1}
    torch.save(data, args.data)
    mine = run_xbar(data, args.repeats, args.device)
    if args.side == "xbar":
        print(json.dumps(mine, indent=1))
        return 0
    peer_out = args.data + ".aihwkit.json"
    subprocess.run([args.peer, __file__, "--side", "aihwkit", "--data", args.data, "--result", peer_out,
                    "--repeats", str(args.repeats)], check=True)
    theirs = json.loads(Path(peer_out).read_text())
    print(f"relative output error, 256x512 layer, {args.batch} inputs, {args.repeats} programmings, "
          f"global compensation, ideal periphery; xbar profile {args.device!r}")
    print(f"{'read noise':<11}{'time':<6}{'xbar':>10}{'aihwkit':>10}{'ratio':>8}")
    for key in mine:
        noisy, name = key.split("/")
        print(f"{'yes' if noisy == 'read' else 'no':<11}{name:<6}{mine[key]:>10.4f}{theirs[key]:>10.4f}"
              f"{mine[key] / theirs[key]:>8.3f}")
    if args.result:
        Path(args.result).write_text(json.dumps({"xbar": mine, "aihwkit": theirs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
