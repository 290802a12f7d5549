"""The low-T study: accuracy and joules per sample at few timesteps, on the device's crossbars.

For every seed, each network is built on the constraint device (``xbar.to_crossbar(ann, dev)``
before ``to_snn``, so thresholds are currents) and swept over ``lowt.timesteps`` on the same
Poisson spike trains (common random numbers), with the energy meter:

- ``percentile``: the study's percentile conversion (initial potential 0);
- ``percentile v_init=V``: the same with the initial potential ``surrogate.v_init`` of the
  threshold, the hybrids' starting point;
- ``hybrid T=t``: that conversion finetuned by BPTT at ``T = t`` on the crossbars (straight
  through the programmed weights; ``surrogate.finetune_lr``, ``surrogate.finetune_epochs``,
  ``lowt.finetune_samples`` images per epoch), one per ``lowt.hybrid_timesteps``;
- ``qcfs``: the study's QCFS ANN (``qcfs`` configuration) converted with ``norm="qcfs"``.

The hybrids need the mode ``surrogate-hybrid`` among the configuration's ``modes``, QCFS the mode
``qcfs`` (a configuration without them trains nothing here).

The ANNs' own accuracies (float and on the crossbars) are measured on the same test images.
Results go to ``results["lowt"]``; :func:`write_lowt_outputs` writes ``lowt.csv`` and
``lowt.md``, and the report's section is :mod:`experiments.report_lowt`.

Standalone (the issue's acceptance measurement)::

    python -m experiments.lowlatency --out DIR [--config ee518] [--seeds 3] [--workers N]
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from pathlib import Path
from typing import Any

import torch

import xbar
from xbar.train import evaluate, set_surrogate, train

from .report_lowt import lowt_markdown
from .sweeps import timestep_sweep

LOWT_SWEEP_SEED = 90_000  # + seed: the encoder of the low-T test pass


class RateCodedCopies:
    """Training batches of ``loader`` each followed by its rate-coded copy: every image also as
    the average of ``frames`` Poisson frames (``PoissonEncoder(max_rate)``'s spikes over
    ``T = frames`` steps, what the SNN's first layer integrates), with the same labels; the
    batch doubles. Training a QCFS ANN on both keeps its accuracy on clean images and makes it
    robust to the input noise of a few timesteps (configuration ``qcfs.input_noise``).

    Args:
        loader: ``(images, labels)`` batches.
        frames: Poisson frames averaged (>= 1).
        max_rate: the encoder's maximum rate.
        seed: seed of the frames' generator (one stream over the passes).
    """

    def __init__(self, loader: Any, frames: int, max_rate: float = 1.0, seed: int = 0) -> None:
        self.loader, self.frames, self.max_rate = loader, int(frames), float(max_rate)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for x, y in self.loader:
            u = torch.rand((self.frames, *x.shape), generator=self.generator)
            coded = (u < x * self.max_rate).to(x.dtype).mean(0)
            yield torch.cat([x, coded]), torch.cat([y, y])


def settings(study: Any) -> dict:
    """What the low-T rows depend on (a rerun with other settings starts the section over)."""
    c, s = study.cfg, study.cfg["surrogate"]
    images = len(study.loader("test", c["lowt"]["test_limit"]).labels)
    return {"device": study.device.name, "timesteps": list(c["lowt"]["timesteps"]),
            "hybrid_timesteps": list(c["lowt"]["hybrid_timesteps"]), "finetune_lr": float(s["finetune_lr"]),
            "finetune_epochs": int(s["finetune_epochs"]), "finetune_samples": c["lowt"]["finetune_samples"],
            "v_init": float(s["v_init"]), "qcfs_levels": int(c["qcfs"]["levels"]), "test_images": images,
            "max_rate": float(c["encoder"]["max_rate"]), "percentile": float(c["percentile"])}


def _hybrid(study: Any, hw: torch.nn.Module, seed: int, t: int, record: dict) -> xbar.SpikingNetwork:
    """The hybrid of ``seed`` at ``T = t``: converted on the crossbars, finetuned there (or read
    back from its checkpoint)."""
    s, low = study.cfg["surrogate"], study.cfg["lowt"]
    snn = study.convert(hw, "surrogate-hybrid", seed, t)
    set_surrogate(snn)
    key = f"lowt_hybrid_T{t}_seed{seed}"
    ck = study._ckpt(key)
    done = [r for r in record.setdefault("training", []) if r["key"] == key]
    if ck.exists() and done:
        snn.load_state_dict(torch.load(ck, weights_only=True))
        return snn.eval()
    snn.encoder, snn.timesteps = study._encoder(80_000 + 100 * seed + t), t
    loader = study.loader("train", shuffle_seed=seed)
    if low["finetune_samples"]:
        loader.take(int(low["finetune_samples"]))
    t0 = time.perf_counter()
    hist = train(snn, loader, epochs=int(s["finetune_epochs"]), lr=float(s["finetune_lr"]), seed=seed,
                 progress=study.progress, desc=f"low-T hybrid T={t} seed {seed}")
    ck.unlink(missing_ok=True)
    ck.with_name(ck.stem + ".xbar.pt").unlink(missing_ok=True)
    study._keep(snn.eval(), ck, seed)
    record["training"] = [r for r in record["training"] if r["key"] != key] + [
        {"key": key, "seed": seed, "T": t, "samples_per_epoch": loader.num_samples, "history": hist,
         "wall_s": time.perf_counter() - t0}]
    study.save()
    return snn


def networks(study: Any, seed: int, record: dict) -> tuple[dict[str, xbar.SpikingNetwork], dict[str, float]]:
    """The low-T networks of ``seed`` on the device (module docstring) and the ANNs' test
    accuracies on the low-T test images."""
    dev, low, v = study.device, study.cfg["lowt"], float(study.cfg["surrogate"]["v_init"])
    ann = study.ann(seed)
    hw = xbar.to_crossbar(copy.deepcopy(ann), dev)
    test = study.loader("test", low["test_limit"])
    accs = {"ann": evaluate(ann, test), "ann_crossbar": evaluate(hw, test)}
    t0 = int(low["timesteps"][0])
    nets = {"percentile": study.convert(hw, "percentile", seed, t0)}
    if v:  # the hybrids' starting point, unless it is the percentile conversion itself
        nets[f"percentile v_init={v:g}"] = study.convert(hw, "surrogate-hybrid", seed, t0)
    modes = study.cfg["modes"]
    for t in low["hybrid_timesteps"] if "surrogate-hybrid" in modes else []:
        nets[f"hybrid T={t}"] = _hybrid(study, hw, seed, int(t), record)
    if "qcfs" in modes:
        q = study.qcfs_ann(seed)
        qhw = xbar.to_crossbar(copy.deepcopy(q), dev)
        accs.update({"qcfs_ann": evaluate(q, test), "qcfs_ann_crossbar": evaluate(qhw, test)})
        nets["qcfs"] = study.convert(qhw, "qcfs", seed, t0)
    for snn in nets.values():
        snn.eval()
    return nets, accs


def start_lowt(study: Any) -> list[int]:
    """Open ``results["lowt"]`` (over again when its settings changed); the seeds still to
    measure (none when ``lowt.enabled`` is false)."""
    low = study.cfg["lowt"]
    if not low["enabled"]:
        return []
    want = settings(study)
    record = study.results.get("lowt")
    if not record or record.get("settings") != want:
        record = study.results["lowt"] = {"settings": want, "per_seed": [], "anns": [], "training": []}
    done = {r["seed"] for r in record["anns"]}
    return [seed for seed in study.seeds if seed not in done]


def lowt_seed(study: Any, seed: int) -> dict:
    """Every low-T network of ``seed`` swept over ``lowt.timesteps`` (module docstring): its
    ``per_seed`` rows, its ``anns`` row and its hybrids' ``training`` rows."""
    low = study.cfg["lowt"]
    record = study.results["lowt"]
    nets, accs = networks(study, seed, record)
    test = study.loader("test", low["test_limit"])
    res = timestep_sweep(nets, test, list(low["timesteps"]), float(study.cfg["encoder"]["max_rate"]),
                         LOWT_SWEEP_SEED + seed, study.device, progress=study.progress, desc=f"low-T seed {seed}")
    rows = [{"seed": seed, "network": name, "T": r["T"], "test_acc": r["acc"], "joules": r["joules"], "acs": r["acs"],
             "input_spikes": r["input_spikes"]} for name, rs in res.items() for r in rs]
    return {"per_seed": rows, "anns": {"seed": seed, **accs},
            "training": [r for r in record["training"] if r["seed"] == seed]}


def merge_lowt(study: Any, parts: list[dict]) -> None:
    """Add the seeds' parts (:func:`lowt_seed`) to ``results["lowt"]``, in the order given."""
    record = study.results["lowt"] if parts else None
    for part in parts:
        seed = part["anns"]["seed"]
        record["per_seed"] = [r for r in record["per_seed"] if r["seed"] != seed] + part["per_seed"]
        record["anns"] = [r for r in record["anns"] if r["seed"] != seed] + [part["anns"]]
        keys = {r["key"] for r in part["training"]}
        record["training"] = [r for r in record["training"] if r["key"] not in keys] + part["training"]


def step_lowt(study: Any, executor: Any = None) -> None:
    """Measure every seed not yet in ``results["lowt"]``, one point per seed on ``executor``
    (resumable; see the module docstring)."""
    study.step_lowt(executor)


def write_lowt_outputs(results: dict, out_dir: Path) -> list[Path]:
    """``lowt.csv`` (one row per seed, network and T) and ``lowt.md`` (the tables of the
    report's section); nothing when the low-T study has not run."""
    record = results.get("lowt") or {}
    rows = record.get("per_seed") or []
    if not rows:
        return []
    out_dir = Path(out_dir)
    path = out_dir / "lowt.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md = out_dir / "lowt.md"
    md.write_text("\n".join(lowt_markdown(results)).rstrip() + "\n", encoding="utf-8")
    return [path, md]


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.lowlatency``: the low-T study alone (trains what it needs), then
    ``lowt.csv``, ``lowt.md`` and ``lowt.png`` in ``--out``."""
    from .config import ConfigError, load_config
    from .study import Study, command_line

    p = argparse.ArgumentParser(prog="python -m experiments.lowlatency", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="results folder (resumes what is already there)")
    p.add_argument("--config", default=None, help="study configuration (default ee518; --quick: quick)")
    p.add_argument("--quick", action="store_true", help="the quick configuration")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (>= 1)")
    p.add_argument("--device", default=None, help="device profile (default the configuration's constrain.device)")
    p.add_argument("--finetune-samples", type=int, default=None, help="training images per hybrid finetuning epoch")
    p.add_argument("--test-limit", type=int, default=None, help="test images (default all)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes for the seeds (default 1: serially, in this process); every point runs on "
                        "one torch thread whatever the count")
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)  # deprecated: points run on one thread
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for name in ("seeds", "finetune_samples", "test_limit", "threads", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    if args.threads:
        print("warning: --threads is deprecated and ignored: every point runs on one torch thread (use --workers N)",
              file=sys.stderr)
    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    if args.finetune_samples is not None:
        overrides["lowt.finetune_samples"] = args.finetune_samples
    if args.test_limit is not None:
        overrides["lowt.test_limit"] = args.test_limit
    try:
        cfg = load_config(args.config or ("quick" if args.quick else "ee518"), overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg["lowt"]["enabled"] = True
    study = Study(cfg, args.out, device=args.device, progress=not args.no_progress, command=command_line())
    t0 = time.perf_counter()
    from xbar.executor import make_executor

    with make_executor(args.workers) as executor:
        study.step_lowt(executor)
    study.save()
    write_lowt_outputs(study.results, Path(args.out))
    from .plots import plot_lowt

    plot_lowt(study.results, Path(args.out))
    print("\n".join(lowt_markdown(study.results)))
    print(f"\nlow-T study done in {time.perf_counter() - t0:.1f} s; {Path(args.out) / 'lowt.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
