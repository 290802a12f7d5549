"""One point of a sweep grid: the grid's ANN converted on the point's chip, then measured.

:func:`prepare_task` runs once, in the calling process: it resolves the model to a checkpoint
(a grid's ``model.checkpoint``, or a zoo model trained ``train_epochs`` on the dataset's train
split, seed 0, saved with :func:`xbar.save` as ``OUT/model-HASH.pt`` and reused on reruns) and
returns the *task*, plain data every worker gets. :func:`evaluate_point` runs in a worker:

1. the device profile: the point's ``device`` with its field overrides (:func:`xbar.grid.point_profile`);
2. the chip: the ANN mapped onto crossbars with ideal periphery, a defect map
   (:func:`xbar.fix_faults`) and programming (:func:`xbar.program_model`) from the chip seed;
3. conversion (:func:`xbar.to_snn`, percentile threshold balancing on ``calibration`` training
   images, ``timesteps``), then the full profile (periphery) put back, the chip re-programmed
   and, with an ADC or DAC, its ranges calibrated (:func:`xbar.calibrate_periphery`);
4. drift to ``drift_time_s`` (if > 0; ``drift_compensation``);
5. ``size`` images of ``split``, Poisson input at ``max_rate``: ``accuracy``; with ``energy``
   or ``spikes`` the same pass runs under an :class:`xbar.EnergyMeter` (per-sample figures).

Seeds: the chip and the input spikes take :func:`xbar.grid.point_seed` of the whole point
(streams 1 and 2), so every point is its own draw: a point's numbers depend on its values only,
not on the order, the worker or the machine. The grid's ``seed`` key gives further chips.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .grid import point_profile, point_seed

SYNTHETIC_TRAIN = 2000  # training images of the synthetic stand-in when train_size is not given
PERCENTILE = 99.9       # threshold balancing percentile (xbar.to_snn's default)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=4)
def _datasets(data_json: str) -> tuple[Any, Any, Any]:
    """``(train images, train labels, (eval images, eval labels))`` of a grid's ``data`` (cached per process)."""
    from .data import mnist_datasets, synthetic_dataset

    d = json.loads(data_json)
    if d["dataset"] == "synthetic":
        n_train = d["train_size"] or max(SYNTHETIC_TRAIN, d["calibration"])
        train = synthetic_dataset(n_train, seed=0)
        ev = synthetic_dataset(d["size"] or 500, seed=1 if d["split"] == "test" else 2)
    else:
        train, val, test = mnist_datasets(val_size=5000, seed=0)
        ev = test if d["split"] == "test" else val
    tr_x, tr_y = train.images, train.labels
    if d["train_size"]:
        tr_x, tr_y = tr_x[: d["train_size"]], tr_y[: d["train_size"]]
    ev_x, ev_y = ev.images, ev.labels
    if d["size"]:
        ev_x, ev_y = ev_x[: d["size"]], ev_y[: d["size"]]
    return tr_x, tr_y, (ev_x, ev_y)


def _data_json(data: dict) -> str:
    return json.dumps(data, sort_keys=True)


def prepare_task(grid: dict, out: Path, progress: bool = True, say: Callable[[str], None] = print) -> dict:
    """The plain-data task of a grid: checkpoint path, data, measures and their fingerprint.

    A zoo model is trained here (once: the checkpoint is cached by a hash of the model and data
    settings) and evaluated as an ANN on the grid's images (``ann_accuracy``).
    """
    m, d = grid["model"], grid["data"]
    task: dict[str, Any] = {"data": d, "measure": list(grid["measure"])}
    if "checkpoint" in m:
        path = Path(m["checkpoint"])
    else:
        spec = {"zoo": m["zoo"], "train_epochs": m["train_epochs"], "lr": m["lr"], "dataset": d["dataset"],
                "train_size": d["train_size"], "calibration": d["calibration"]}
        path = out / f"model-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]}.pt"
        if not path.is_file():
            say(f"training {m['zoo']} for {m['train_epochs']} epoch(s) on {d['dataset']} -> {path}")
            train_model(m["zoo"], m["train_epochs"], m["lr"], d, path, progress)
        else:
            say(f"using the cached model {path}")
    task["checkpoint"] = str(path.resolve())
    task["fingerprint"] = hashlib.sha256(json.dumps(
        {"model": _sha256(path), "data": d, "measure": task["measure"]}, sort_keys=True).encode()).hexdigest()[:16]
    return task


def train_model(zoo: str, epochs: int, lr: float, data: dict, path: Path, progress: bool = False) -> Path:
    """Train zoo model ``zoo`` on the train split of ``data`` (seed 0) and :func:`xbar.save` it."""
    import torch

    from .checkpoint import save
    from .models import build_model
    from .train import train

    tr_x, tr_y, _ = _datasets(_data_json(data))
    torch.manual_seed(0)
    net = build_model(zoo)
    gen = torch.Generator().manual_seed(0)

    class _Loader:  # seeded reshuffling every epoch
        def __len__(self) -> int:
            return (len(tr_y) + 127) // 128

        def __iter__(self):
            order = torch.randperm(len(tr_y), generator=gen)
            for i in range(0, len(tr_y), 128):
                idx = order[i:i + 128]
                yield tr_x[idx], tr_y[idx]

    train(net, _Loader(), epochs=epochs, lr=lr, seed=0, progress=progress, desc=zoo)
    net.eval()
    return save(net, path, metadata={"zoo": zoo, "train_epochs": epochs, "dataset": data["dataset"]})


@lru_cache(maxsize=2)
def _model(path: str) -> Any:
    from .checkpoint import load
    from .snn import SpikingNetwork

    net = load(path)
    if isinstance(net, SpikingNetwork):
        raise ValueError(f"{path}: a converted spiking network; a grid converts the float ANN on each "
                         "point's device: save the ANN with xbar.save and name that")
    return net.eval()


def _batches(x: Any, y: Any, size: int):
    for i in range(0, len(y), size):
        yield x[i:i + size], y[i:i + size]


def evaluate_point(task: dict, point: dict) -> dict:
    """Measure one grid point (module docstring).

    Returns:
        ``accuracy``; with ``energy``: ``energy_j`` and ``energy.LAYER_j`` (joules per sample);
        with ``spikes``: ``input_spikes`` and ``spikes`` (IF spikes) per sample.
    """
    import torch

    import xbar
    from .train import evaluate

    d, measure = task["data"], task["measure"]
    profile = point_profile(point)
    tr_x, _tr_y, (ev_x, ev_y) = _datasets(_data_json(d))
    calib = tr_x[: d["calibration"]]
    chip = point_seed(point, 1) % 2**31
    ann = copy.deepcopy(_model(task["checkpoint"]))
    with torch.no_grad():
        cb = xbar.to_crossbar(ann, profile.ideal_periphery())
        xbar.fix_faults(cb, chip)
        xbar.program_model(cb, chip)
        enc = xbar.PoissonEncoder(float(point["max_rate"]), torch.Generator().manual_seed(chip))
        snn = xbar.to_snn(cb, calibration=list(calib.split(d["batch_size"])), timesteps=int(point["timesteps"]),
                          norm="percentile", percentile=PERCENTILE, encoder=enc)
        for m in snn.modules():
            if isinstance(m, (xbar.CrossbarLinear, xbar.CrossbarConv2d, xbar.CrossbarConv1d)):
                m.profile = profile
        xbar.program_model(snn, chip)
        if profile.adc_bits is not None or profile.dac_bits is not None:
            xbar.calibrate_periphery(snn, list(calib.split(100)), method="percentile")
        if float(point["drift_time_s"]) > 0:
            xbar.drift(snn, float(point["drift_time_s"]), compensate=bool(point["drift_compensation"]))
    snn.eval()
    snn.encoder = xbar.PoissonEncoder(float(point["max_rate"]),
                                      torch.Generator().manual_seed(point_seed(point, 2) % 2**31))
    batches = _batches(ev_x, ev_y, d["batch_size"])
    row: dict[str, Any] = {}
    if "energy" in measure or "spikes" in measure:
        with xbar.EnergyMeter(snn, profile) as meter:
            row["accuracy"] = evaluate(snn, batches)
        rep = meter.report()
        if "energy" in measure:
            row["energy_j"] = sum(layer.joules for layer in rep.layers)
            for layer in rep.layers:
                row[f"energy.{layer.name}_j"] = layer.joules
        if "spikes" in measure:
            row["input_spikes"] = rep.layers[0].input_events if rep.layers else 0.0
            row["spikes"] = sum(layer.spikes for layer in rep.layers)
    else:
        row["accuracy"] = evaluate(snn, batches)
    if "accuracy" not in measure:
        row.pop("accuracy")
    return row
