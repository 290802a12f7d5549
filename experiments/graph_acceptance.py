"""The graph-conversion issue's MNIST acceptance check, as a runnable module.

``python -m xbar.experiments.graph_acceptance [--models bn-cnn res-cnn] [--out DIR]`` trains each
zoo model for 3 epochs (Adam 1e-3, batch 64, seed 0; cached in ``DIR``), programs it onto
``seed-4bit`` crossbars, converts it with 99.9th-percentile normalisation (``--percentile``; IF
neurons start from rest unless ``--v-init`` is given; calibrated on 100
training batches of 64) and reports the test accuracy on the full MNIST test set at T=32 and
T=64 with Poisson input at max rate 1.0, beside the ANN's. spikingjelly 2.0's converter
(``ann2snn.Converter``, ``RateCodingRecipe(mode="99.9%")`` on the same calibration images) runs
on the same float ANN, fed the same Poisson spikes (xbar's encoder, same seed) step by step.
Writes ``graph_acceptance.json`` and prints a table. Both models with spikingjelly beside take
about an hour on 2 CPU cores.

With ``--qcfs L`` each trained ANN is also finetuned with QCFS activations (:func:`xbar.to_qcfs`,
``L`` levels, every clip started at the 99.9th percentile of its ReLU's input on the
calibration images; ``--qcfs-epochs`` epochs of Adam 1e-3, batch 64, seed 0; cached), programmed
onto ``seed-4bit`` and converted with ``norm="qcfs"`` (thresholds = the learned clips, initial
potential half the threshold), measured at the same T on the same Poisson spikes (``qcfs`` in
the JSON: the QCFS ANN's accuracy in float and on the crossbars, and the SNN's per T).

With ``--bias-correction`` every xbar conversion (percentile and QCFS) also corrects its biases
after converting (``to_snn(bias_correction=True)``: each IF layer's mean rate error per channel
on the first ``--correction-samples`` calibration images, 512 by default, moved into a bias;
Li et al., ICML 2021), calibrated at the T it is measured at; spikingjelly's converter has no
such step and runs unchanged.

With ``--cosine`` the ANN is trained with the learning rate decaying from 1e-3 to 0 along a
cosine over the 3 epochs (cached separately, ``...-cos.pt``; the table's "train lr" column).
``--poisson-seed`` sets the seed of the test spikes, ``--train-seed`` that of the ANN's initial
weights, batch order and calibration batches (default 0; cached as ``...-s<seed>...``; QCFS
finetuning keeps seed 0).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import torch

import xbar
from xbar.data import mnist_loaders
from xbar.models import build_model
from xbar.train import evaluate, train

DEFAULT_OUT = Path("results/graph-acceptance")


def _stem(name: str, epochs: int, input_noise: int, cosine: bool, seed: int) -> str:
    """The cache name of a trained ANN (without ``.pt``)."""
    return f"{name}-e{epochs}-s{seed}" + (f"-n{input_noise}" if input_noise else "") + ("-cos" if cosine else "")


def _trained(name: str, out: Path, epochs: int, loaders: tuple,
             input_noise: int = 0, cosine: bool = False, seed: int = 0) -> tuple[torch.nn.Module, list[dict]]:
    """The model trained ``epochs`` epochs from seed ``seed`` (cached as
    ``out/<name>-e<epochs>-s<seed>.pt``; with ``input_noise`` F, every batch also rate-coded over
    F Poisson frames, ``...-n<F>.pt``; with ``cosine``, the learning rate decays to 0 along a
    cosine, ``...-cos.pt``)."""
    train_loader, val_loader, test_loader = loaders
    path = out / (_stem(name, epochs, input_noise, cosine, seed) + ".pt")
    torch.manual_seed(seed)
    model = build_model(name)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), json.loads(path.with_suffix(".json").read_text())
    if input_noise:
        from .lowlatency import RateCodedCopies

        train_loader = RateCodedCopies(train_loader, input_noise, 1.0, seed=seed)
    history = train(model, train_loader, epochs=epochs, lr=1e-3, test_loader=test_loader, seed=seed, progress=True,
                    desc=name, lr_schedule="cosine" if cosine else None)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(history))
    return model.eval(), history


@torch.no_grad()
def _sj_accuracy(ann: torch.nn.Module, calib: torch.Tensor, test: list, timesteps: int, poisson_seed: int = 1) -> float:
    """spikingjelly's converted network on xbar's Poisson spikes (seed ``poisson_seed``), one step at a time."""
    from spikingjelly.activation_based import ann2snn, functional

    recipe = ann2snn.RateCodingRecipe([(calib, None)], mode="99.9%")
    with contextlib.redirect_stderr(io.StringIO()):
        sj = ann2snn.Converter(recipe).convert(copy.deepcopy(ann)).eval()
    enc = xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(poisson_seed))
    correct = total = 0
    for x, y in test:
        functional.reset_net(sj)
        events, step = enc.events(x, timesteps), torch.empty_like(x)
        out = sum(sj(events.step(t, step)) for t in range(timesteps))
        correct += int((out.argmax(1) == y).sum())
        total += int(y.shape[0])
    return correct / total


@torch.no_grad()
def _clip_init(qann: torch.nn.Module, calib: list[torch.Tensor], percentile: float = 99.9) -> None:
    """Every QCFS clip at the ``percentile`` of its input on ``calib`` (layer after layer, each
    measured with the clips before it already set)."""
    from xbar.qcfs import QCFS

    qann.eval()
    for name, m in qann.named_modules():
        if not isinstance(m, QCFS):
            continue
        seen: list[torch.Tensor] = []
        hook = m.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].flatten()[::13]))
        for x in calib[:20]:
            qann(x)
        hook.remove()
        m.clip.fill_(max(float(torch.quantile(torch.cat(seen), percentile / 100)), 1e-3))


def _qcfs_trained(name: str, stem: str, ann: torch.nn.Module, out: Path, levels: int, qepochs: int,
                  loaders: tuple, calib: list[torch.Tensor]) -> tuple[torch.nn.Module, list[dict]]:
    """The QCFS copy of ``ann`` (cached as ``stem``) finetuned ``qepochs`` epochs (cached beside it)."""
    path = out / f"{stem}-qcfs{levels}-e{qepochs}.pt"
    torch.manual_seed(0)
    qann = xbar.to_qcfs(copy.deepcopy(ann), levels=levels)
    if path.exists():
        qann.load_state_dict(torch.load(path, weights_only=True))
        return qann.eval(), json.loads(path.with_suffix(".json").read_text())
    _clip_init(qann, calib)
    history = train(qann, loaders[0], epochs=qepochs, lr=1e-3, seed=0, progress=True, desc=f"{name} QCFS L={levels}")
    out.mkdir(parents=True, exist_ok=True)
    torch.save(qann.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(history))
    return qann.eval(), history


def _qcfs_rows(name: str, stem: str, ann: torch.nn.Module, out: Path, levels: int, qepochs: int, loaders: tuple,
               calib: list[torch.Tensor], test: list, timesteps: tuple[int, ...],
               correction: dict[str, Any], poisson_seed: int = 1) -> dict[str, Any]:
    qann, history = _qcfs_trained(name, stem, ann, out, levels, qepochs, loaders, calib)
    hw = xbar.to_crossbar(qann, "seed-4bit")
    row: dict[str, Any] = {"levels": levels, "epochs": qepochs, "history": history, "clips": xbar.qcfs.qcfs_clips(qann),
                           "ann_acc": evaluate(qann, test), "ann_seed4_acc": evaluate(hw, test), "snn": {}}
    for t in timesteps:
        snn = xbar.to_snn(hw, timesteps=t, norm="qcfs", encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(poisson_seed)),
                          **correction)
        t0 = time.perf_counter()
        row["snn"][t] = {"acc": evaluate(snn, test, progress=True, desc=f"{name} QCFS SNN T={t}"),
                         "wall_s": time.perf_counter() - t0}
    return row


def check(name: str, out: Path, epochs: int = 3, timesteps: tuple[int, ...] = (32, 64),
          test_limit: int | None = None, with_sj: bool = True, percentile: float = 99.9,
          v_init: float = 0.0, channelwise: bool = False, qcfs: int | None = None,
          qcfs_epochs: int = 2, percentile_snn: bool = True, bias_correction: bool = False,
          correction_samples: int = 512, input_noise: int = 0, poisson_seed: int = 1,
          cosine: bool = False, train_seed: int = 0) -> dict[str, Any]:
    """Train (or load), convert and evaluate one zoo model; returns the figures."""
    loaders = mnist_loaders(batch_size=64, seed=train_seed)
    ann, history = _trained(name, out, epochs, loaders, input_noise, cosine, train_seed)
    test = [(x, y) for x, y in loaders[2]]
    if test_limit is not None:
        flat_x, flat_y = torch.cat([x for x, _ in test])[:test_limit], torch.cat([y for _, y in test])[:test_limit]
        test = list(zip(flat_x.split(500), flat_y.split(500)))
    else:
        test = list(zip(torch.cat([x for x, _ in test]).split(500), torch.cat([y for _, y in test]).split(500)))
    row: dict[str, Any] = {"model": name, "epochs": epochs, "history": history, "test_samples": sum(len(y) for _, y in test),
                           "ann_acc": evaluate(ann, test), "percentile": percentile, "v_init": v_init,
                           "channelwise": channelwise, "bias_correction": correction_samples if bias_correction else 0,
                           "input_noise": input_noise, "poisson_seed": poisson_seed,
                           "lr_schedule": "cosine" if cosine else "constant", "train_seed": train_seed}
    calib = [x for i, (x, _) in enumerate(loaders[0]) if i < 100]
    correction = ({"bias_correction": True, "correction_samples": correction_samples, "calibration": calib, "progress": True}
                  if bias_correction else {})
    hw = xbar.to_crossbar(ann, "seed-4bit")
    row["ann_seed4_acc"] = evaluate(hw, test)
    row["snn"], row["sj"] = {}, {}
    if qcfs:
        row["qcfs"] = _qcfs_rows(name, _stem(name, epochs, input_noise, cosine, train_seed), ann, out, qcfs,
                                 qcfs_epochs, loaders, calib, test, timesteps,
                                 correction, poisson_seed)
    for t in timesteps if percentile_snn else ():
        snn = xbar.to_snn(hw, calibration=calib, timesteps=t, norm="percentile", percentile=percentile,
                          v_init=v_init, channelwise=channelwise, encoder=xbar.PoissonEncoder(1.0, torch.Generator().manual_seed(poisson_seed)),
                          **{k: v for k, v in correction.items() if k != "calibration"})
        t0 = time.perf_counter()
        row["snn"][t] = {"acc": evaluate(snn, test, progress=True, desc=f"{name} SNN T={t}"),
                         "wall_s": time.perf_counter() - t0}
        if with_sj and "sj_refusal" not in row:
            t0 = time.perf_counter()
            try:
                row["sj"][t] = {"acc": _sj_accuracy(ann, torch.cat(calib), test, t, poisson_seed), "wall_s": time.perf_counter() - t0}
            except Exception as exc:  # another library's refusal may take any form; it is reported
                row["sj_refusal"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return row


def table(rows: list[dict]) -> str:
    """The printed summary: accuracies in percent on the stated test images."""
    lines = ["model    train lr  train seed  test images  train noise F  spike seed  pct    v_init  bias corr.  ANN %   ANN on seed-4bit %  " + "  ".join(
        f"SNN T={t} %  sj T={t} %" for t in rows[0]["snn"])]
    for r in rows:
        cells = "  ".join(f"{100 * r['snn'][t]['acc']:>9.2f}  " + (f"{100 * r['sj'][t]['acc']:>8.2f}" if t in r["sj"]
                                                                     else f"{'-':>8}") for t in r["snn"])
        lines.append(f"{r['model']:<8} {r.get('lr_schedule', 'constant'):<8}  {r.get('train_seed', 0):>10}  {r['test_samples']:>11}  {r.get('input_noise', 0) or 'none':>13}  "
                     f"{r.get('poisson_seed', 1):>10}  {r.get('percentile', 99.9):<5g}  {r.get('v_init', 0.0):<6g}  "
                     f"{(str(r['bias_correction']) + ' imgs') if r.get('bias_correction') else 'no':<10}  "
                     f"{100 * r['ann_acc']:5.2f}  {100 * r['ann_seed4_acc']:>18.2f}  "
                     + cells)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the check for the chosen models and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["bn-cnn", "res-cnn"])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--timesteps", type=int, nargs="+", default=[32, 64])
    p.add_argument("--test-limit", type=int, default=None, help="test images (default: all 10000)")
    p.add_argument("--no-sj", action="store_true", help="skip spikingjelly's converter")
    p.add_argument("--percentile", type=float, default=99.9, help="xbar's normalisation percentile (default 99.9)")
    p.add_argument("--v-init", type=float, default=0.0,
                   help="xbar's initial IF potential, a fraction of the threshold (default 0)")
    p.add_argument("--channelwise", action="store_true",
                   help="xbar's channel-wise normalisation (to_snn(channelwise=True); default: layer-wise)")
    p.add_argument("--qcfs", type=int, default=None, metavar="L",
                   help="also finetune a QCFS copy with L levels and convert it with norm='qcfs'")
    p.add_argument("--qcfs-epochs", type=int, default=2, help="QCFS finetuning epochs (default 2)")
    p.add_argument("--qcfs-only", action="store_true", help="with --qcfs: skip the percentile conversion")
    p.add_argument("--input-noise", type=int, default=0, metavar="F",
                   help="train the ANN on every batch and its copy rate-coded over F Poisson frames (default 0: off)")
    p.add_argument("--poisson-seed", type=int, default=1, help="seed of the test spikes (default 1)")
    p.add_argument("--bias-correction", action="store_true",
                   help="xbar's conversions also correct their biases (to_snn(bias_correction=True))")
    p.add_argument("--correction-samples", type=int, default=512,
                   help="calibration images for --bias-correction (default 512)")
    p.add_argument("--train-seed", type=int, default=0,
                   help="seed of the ANN's initial weights, batch order and calibration batches (default 0)")
    p.add_argument("--cosine", action="store_true",
                   help="train the ANN with the learning rate decaying from 1e-3 to 0 along a cosine "
                        "(default: constant 1e-3)")
    args = p.parse_args(argv)
    rows = []
    for name in args.models:
        rows.append(check(name, args.out, args.epochs, tuple(args.timesteps), args.test_limit, not args.no_sj,
                          args.percentile, args.v_init, args.channelwise, args.qcfs, args.qcfs_epochs,
                          not args.qcfs_only, args.bias_correction, args.correction_samples, args.input_noise,
                          args.poisson_seed, args.cosine, args.train_seed))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "graph_acceptance.json").write_text(json.dumps(rows, indent=1))
        print(table(rows), flush=True)
        for r in rows:
            if "qcfs" in r:
                q = r["qcfs"]
                print(f"{r['model']} QCFS L={q['levels']} ({q['epochs']} epochs): ANN {100 * q['ann_acc']:.2f}%, on seed-4bit "
                      f"{100 * q['ann_seed4_acc']:.2f}%; SNN " + ", ".join(
                          f"T={t} {100 * v['acc']:.2f}%" for t, v in q["snn"].items()) + f" ({r['test_samples']} test images)")
        for r in rows:
            if "sj_refusal" in r:
                print(f"spikingjelly's converter refuses {r['model']}: {r['sj_refusal']}")


if __name__ == "__main__":
    main()
