"""The EE 518 study, reproduced: ANN baseline, six modes, sweeps, hardware constraints, energy.

:class:`Study` runs the steps of a configuration (``experiments/configs/*.yaml``) and keeps
everything it measures in ``results.json`` inside its output folder, written after every step
(atomically), with trained networks in ``checkpoints/``: ``<name>.pt`` state dicts (what a rerun
resumes from) and ``<name>.xbar.pt``, the same networks written by :func:`xbar.save` for
``xbar.load``. A rerun with the same configuration
resumes: finished steps are read back, not recomputed. ``xbar reproduce`` runs every step;
``xbar train``, ``xbar sweep``, ``xbar constrain`` and ``xbar energy`` run one each (and what it
needs). Inside each step the independent points (seeds, modes, constrained runs) run on an
executor, seeded from their values and on one torch thread each (:mod:`experiments.study_points`).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import xbar
from xbar.data import mnist_datasets
from xbar.models import build_model
from xbar.train import apply_constraints, evaluate, set_surrogate, train, train_epoch

from .sweeps import TensorLoader, rate_sweep, timestep_sweep

MODE_INFO = {
    "vanilla": ("vanilla", "ANN converted with norm='none': threshold 1, raw weights"),
    "spike-norm": ("spike norm", "ANN converted with Sengupta et al.'s spike-norm (layer-wise max input)"),
    "percentile": (None, "ANN converted with 99.9th-percentile data-based normalisation (Rueckauer et al.)"),
    "surrogate": ("surrogate function", "SNN trained from scratch by BPTT, spikingjelly sigmoid surrogate (alpha 4), threshold 1"),
    "surrogate-hybrid": (None, "percentile-converted ANN (initial potential surrogate.v_init of the threshold), then BPTT "
                               "finetuning with the sigmoid surrogate at surrogate.finetune_lr"),
    "spike-norm+surrogate": ("spike norm + surrogate function", "spike-norm-converted ANN (initial potential surrogate.v_init), "
                             "then BPTT finetuning with the sigmoid surrogate at surrogate.finetune_lr"),
    "qcfs": (None, "ANN with QCFS activations (Bu et al., ICLR 2022; qcfs.levels levels, learned clips), converted with "
                   "norm='qcfs': thresholds = the clips, initial potential half the threshold"),
}
CONVERTED = ("vanilla", "spike-norm", "percentile", "qcfs")
HYBRID = ("surrogate-hybrid", "spike-norm+surrogate")
STUDY_REFERENCE = {
    "vanilla": {"best_T": 32, "runtime_s": 72, "best_rate": 0.46, "acc_5_epochs": "> 85%", "constrained_20_epochs": 0.841},
    "spike-norm": {"best_T": 128, "runtime_s": 240, "best_rate": 0.76, "acc_5_epochs": "> 82%", "constrained_20_epochs": 0.864},
    "surrogate": {"best_T": 64, "runtime_s": 200, "best_rate": 0.24, "acc_5_epochs": "> 96%", "constrained_20_epochs": 0.943},
    "spike-norm+surrogate": {"best_T": 8, "runtime_s": 55, "best_rate": 0.38, "acc_5_epochs": "> 90%", "constrained_20_epochs": 0.913},
}
SPIKE_NORM_SAMPLES = 1024
TEST_SWEEP_SEED = 2  # encoder seed of the timestep sweep's test pass (validation: 1)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _versions() -> dict[str, str]:
    out = {"xbar": xbar.__version__, "torch": torch.__version__, "numpy": np.__version__,
           "python": platform.python_version()}
    from importlib import metadata

    for dist in ("spikingjelly", "torchvision"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def read_results(path: Path) -> dict | None:
    """A results file written earlier, or None when it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)


class Study:
    """One run of a study configuration into an output folder (resumable).

    Args:
        config: a configuration from :func:`experiments.config.load_config`.
        out_dir: the results folder.
        device: device profile (name or path) for every constrained step; default the
            configuration's ``constrain.device``.
        progress: show progress bars and step messages.
        command: the command line, recorded in the results.
    """

    def __init__(self, config: dict, out_dir: str | Path, device: str | None = None,
                 progress: bool = True, command: str | None = None, worker: bool = False) -> None:
        self.cfg = config
        self.worker = worker
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "checkpoints").mkdir(exist_ok=True)
        self.device_arg = device  # the name or path as given: workers load the same profile
        self.device = xbar.load_device(device or config["constrain"]["device"])
        self.progress = progress
        self.seeds = list(range(int(config["seeds"])))
        self._nets: dict[tuple[str, int], xbar.SpikingNetwork] = {}
        self._anns: dict[int, torch.nn.Module] = {}
        self._qcfs: dict[int, torch.nn.Module] = {}
        self._data: tuple | None = None
        self.results = self._load_or_new(command)
        for mode in config["modes"]:
            self._mode(mode)
        self._t0 = time.perf_counter() - float(self.results.get("wall_time_s", 0.0))

    # -- bookkeeping -------------------------------------------------------------------------
    def _load_or_new(self, command: str | None) -> dict:
        fresh = {"study": self.cfg["name"], "config": self.cfg, "seeds": self.seeds, "versions": _versions(),
                 "device": self.device.to_dict(), "command": command, "wall_time_s": 0.0,
                 "ann": {"per_seed": []}, "modes": {}, "constrain": {"device": self.device.name, "runs": []},
                 "study_reference": STUDY_REFERENCE}
        path = self.out / "results.json"
        old = read_results(path)
        if self.worker:  # a worker reads what the main process wrote (experiments.study_points), never starts over
            if not (old and old.get("config") == self.cfg and old.get("device") == fresh["device"]):
                raise RuntimeError(f"{path}: missing or written by another configuration (worker of a study run)")
            return old
        if path.exists():
            if old and old.get("config") == self.cfg and old.get("device") == fresh["device"]:
                _say(f"resuming from {path}")
                old["command"] = command or old.get("command")
                return old
            _say(f"{path}: written by another configuration or device; starting over")
            for f in [*(self.out / "checkpoints").glob("*.pt"), *(self.out / "points").glob("*.json")]:
                f.unlink()
        return fresh

    def save(self) -> None:
        """Write ``results.json`` now (atomically); a worker's results are returned, not saved."""
        if self.worker:
            return
        self.results["wall_time_s"] = time.perf_counter() - self._t0
        write_json_atomic(self.out / "results.json", self.results)

    def _mode(self, mode: str) -> dict:
        study_name, desc = MODE_INFO[mode]
        return self.results["modes"].setdefault(mode, {"description": desc, "study_name": study_name, "training": []})

    def _ckpt(self, key: str) -> Path:
        return self.out / "checkpoints" / f"{key}.pt"

    def _keep(self, model: torch.nn.Module, ck: Path, seed: int) -> None:
        """Write ``model``'s state dict to ``ck`` (what a rerun resumes from) and, unless it is
        there already, the whole network to ``<key>.xbar.pt`` with :func:`xbar.save`, which
        ``xbar.load`` reads without the study's code."""
        if not ck.exists():
            _atomic(ck, lambda tmp: torch.save(model.state_dict(), tmp))
        full = ck.with_name(ck.stem + ".xbar.pt")
        if not full.exists():  # two workers may load the same network at once: each writes its own file
            _atomic(full, lambda tmp: xbar.save(model, tmp, metadata={"study": self.cfg.get("name"),
                                                                      "checkpoint": ck.stem, "seed": seed}))

    # -- data --------------------------------------------------------------------------------
    def data(self) -> tuple[Any, Any, Any, torch.Tensor]:
        """Images and labels: (train, val, test) tensors pairs and the calibration images."""
        if self._data is None:
            d = self.cfg["data"]
            train_ds, val_ds, test_ds = mnist_datasets(val_size=d["val_size"], seed=0)
            lim = lambda ds, n: (ds.images[:n], ds.labels[:n]) if n else (ds.images, ds.labels)  # noqa: E731
            tr, va, te = lim(train_ds, d["train_limit"]), lim(val_ds, d["val_limit"]), lim(test_ds, d["test_limit"])
            self._data = (tr, va, te, tr[0][: d["calibration_samples"]])
        return self._data

    def loader(self, split: str, limit: int | None = None, shuffle_seed: int | None = None,
               batch_size: int | None = None) -> TensorLoader:
        """A batch loader over ``split`` (``train``, ``val`` or ``test``)."""
        tr, va, te, _ = self.data()
        images, labels = {"train": tr, "val": va, "test": te}[split]
        bs = batch_size or (self.cfg["data"]["batch_size"] if shuffle_seed is not None else self.cfg["data"]["eval_batch_size"])
        return TensorLoader(images, labels, bs, shuffle=shuffle_seed is not None, seed=shuffle_seed or 0, limit=limit)

    def _encoder(self, seed: int, rate: float | None = None) -> xbar.PoissonEncoder:
        return xbar.PoissonEncoder(rate or float(self.cfg["encoder"]["max_rate"]), torch.Generator().manual_seed(seed))

    def eval_snn(self, snn: xbar.SpikingNetwork, split: str, timesteps: int, seed: int, limit: int | None = None) -> float:
        """Accuracy of ``snn`` at ``timesteps`` on a split, with a seeded Poisson encoder."""
        snn.timesteps = timesteps
        snn.encoder = self._encoder(seed)
        return evaluate(snn, self.loader(split, limit))

    # -- networks ----------------------------------------------------------------------------
    def ann(self, seed: int) -> torch.nn.Module:
        """The trained ANN of ``seed`` (trained now, or read from its checkpoint)."""
        if seed in self._anns:
            return self._anns[seed]
        torch.manual_seed(seed)
        model = build_model(self.cfg["model"])
        ck = self._ckpt(f"ann_seed{seed}")
        done = {r["seed"]: r for r in self.results["ann"]["per_seed"]}
        if ck.exists() and seed in done:
            model.load_state_dict(torch.load(ck, weights_only=True))
            self._keep(model.eval(), ck, seed)
        else:
            a = self.cfg["ann"]
            hist = train(model, self.loader("train", shuffle_seed=seed), epochs=a["epochs"], lr=a["lr"],
                         val_loader=self.loader("val"), test_loader=self.loader("test"), seed=seed,
                         progress=self.progress, desc=f"ANN seed {seed}")
            ck.unlink(missing_ok=True)
            ck.with_name(ck.stem + ".xbar.pt").unlink(missing_ok=True)
            self._keep(model.eval(), ck, seed)
            row = {"seed": seed, "history": hist, "val_acc": hist[-1]["val_acc"] if hist else None,
                   "test_acc": hist[-1]["test_acc"] if hist else evaluate(model, self.loader("test"))}
            self.results["ann"]["per_seed"] = [r for r in self.results["ann"]["per_seed"] if r["seed"] != seed] + [row]
            accs = [r["test_acc"] for r in self.results["ann"]["per_seed"]]
            self.results["ann"]["test_acc_mean"] = statistics.fmean(accs)
            self.results["ann"]["test_acc_std"] = statistics.pstdev(accs) if len(accs) > 1 else 0.0
            self.save()
        model.eval()
        self._anns[seed] = model
        return model

    def qcfs_ann(self, seed: int) -> torch.nn.Module:
        """The QCFS ANN of ``seed`` (configuration ``qcfs``): the model with every ReLU a
        :class:`xbar.QCFS` of ``qcfs.levels`` levels, trained ``qcfs.epochs`` epochs from seed's
        trained ANN (``qcfs.init: ann``) or from fresh weights (``scratch``), every batch also
        rate-coded over ``qcfs.input_noise`` Poisson frames unless 0; or its checkpoint."""
        if seed in self._qcfs:
            return self._qcfs[seed]
        q = self.cfg["qcfs"]
        torch.manual_seed(seed)
        base = copy.deepcopy(self.ann(seed)) if q["init"] == "ann" else build_model(self.cfg["model"])
        model = xbar.to_qcfs(base, levels=int(q["levels"]), clip=float(q["clip"]))
        ck = self._ckpt(f"qcfs_ann_seed{seed}")
        record = self.results.setdefault("qcfs_ann", {"per_seed": []})
        if ck.exists() and any(r["seed"] == seed for r in record["per_seed"]):
            model.load_state_dict(torch.load(ck, weights_only=True))
        else:
            loader: Any = self.loader("train", shuffle_seed=seed)
            if int(q["input_noise"]):
                from .lowlatency import RateCodedCopies

                loader = RateCodedCopies(loader, int(q["input_noise"]), float(self.cfg["encoder"]["max_rate"]), seed)
            hist = train(model, loader, epochs=int(q["epochs"]), lr=float(q["lr"]),
                         val_loader=self.loader("val"), seed=seed, progress=self.progress, desc=f"QCFS ANN seed {seed}")
            ck.unlink(missing_ok=True)
            ck.with_name(ck.stem + ".xbar.pt").unlink(missing_ok=True)
            row = {"seed": seed, "history": hist, "test_acc": evaluate(model.eval(), self.loader("test")),
                   "clips": xbar.qcfs.qcfs_clips(model)}
            record["per_seed"] = [r for r in record["per_seed"] if r["seed"] != seed] + [row]
            self.save()
        self._keep(model.eval(), ck, seed)
        self._qcfs[seed] = model
        return model

    def convert(self, ann: torch.nn.Module, mode: str, seed: int, timesteps: int) -> xbar.SpikingNetwork:
        """Convert ``ann`` the way ``mode`` does (the conversion part of surrogate hybrids too)."""
        calib = self.data()[3]
        norm = {"vanilla": "none", "surrogate": "none", "spike-norm": "spike-norm",
                "spike-norm+surrogate": "spike-norm", "qcfs": "qcfs"}.get(mode, "percentile")
        cal = calib[:SPIKE_NORM_SAMPLES] if norm == "spike-norm" else calib
        v_init = float(self.cfg["surrogate"]["v_init"]) if mode in HYBRID else None
        return xbar.to_snn(ann, calibration=None if norm in ("none", "qcfs") else cal.split(500), timesteps=timesteps,
                           norm=norm, percentile=float(self.cfg["percentile"]), encoder=self._encoder(10_000 + seed),
                           v_init=v_init)

    def network(self, mode: str, seed: int) -> xbar.SpikingNetwork:
        """The spiking network of ``mode`` for ``seed`` (converted, or trained by BPTT)."""
        key = (mode, seed)
        if key in self._nets:
            return self._nets[key]
        s = self.cfg["surrogate"]
        if mode in CONVERTED:
            snn = self.convert(self.qcfs_ann(seed) if mode == "qcfs" else self.ann(seed), mode, seed, 32)
        else:
            snn = self._trained(mode, seed, s)
        snn.eval()
        self._nets[key] = snn
        return snn

    def _trained(self, mode: str, seed: int, s: dict) -> xbar.SpikingNetwork:
        t_train = int(s["timesteps"])
        if mode == "surrogate":
            torch.manual_seed(seed)
            snn = self.convert(build_model(self.cfg["model"]), "surrogate", seed, t_train)
            epochs, lr = int(s["epochs"]), float(s["lr"])
        else:
            snn = self.convert(self.ann(seed), mode, seed, t_train)
            epochs, lr = int(s["finetune_epochs"]), float(s["finetune_lr"])
        set_surrogate(snn)
        ck = self._ckpt(f"{mode}_seed{seed}")
        record = self._mode(mode)
        done = any(r["seed"] == seed for r in record["training"])
        if ck.exists() and done:
            snn.load_state_dict(torch.load(ck, weights_only=True))
            self._keep(snn.eval(), ck, seed)
            return snn
        snn.encoder = self._encoder(20_000 + seed)
        snn.timesteps = t_train
        hist = train(snn, self.loader("train", shuffle_seed=seed), epochs=epochs, lr=lr,
                     val_loader=self.loader("val"), seed=seed, progress=self.progress,
                     desc=f"{mode} BPTT seed {seed}")
        ck.unlink(missing_ok=True)
        ck.with_name(ck.stem + ".xbar.pt").unlink(missing_ok=True)
        self._keep(snn.eval(), ck, seed)
        record["training"] = [r for r in record["training"] if r["seed"] != seed] + [{"seed": seed, "T": t_train, "history": hist}]
        self.save()
        return snn

    # -- steps (each runs its points on an executor: experiments.study_points) -----------------
    def step_train(self, executor: Any = None) -> None:
        """ANN baseline for every seed, and the BPTT modes."""
        from .study_points import phase_networks

        phase_networks(self, executor)

    def step_timesteps(self, executor: Any = None) -> None:
        """Timestep sweep (seed 0) of every mode without a best T, one point per mode."""
        from .study_points import phase_timesteps

        phase_timesteps(self, executor)

    def step_timesteps_of(self, todo: list[str]) -> None:
        """Timestep sweep (seed 0) of ``todo`` at max rate ``encoder.max_rate``; best T chosen on
        validation.

        The test pass also meters every mode layer by layer at its best T (``energy``), on the
        same images and spike trains as its ``timesteps`` row at that T."""
        if not todo:
            return
        nets = {m: self.network(m, 0) for m in todo}
        ts, rate = list(self.cfg["timesteps"]), float(self.cfg["encoder"]["max_rate"])
        if self.progress:
            _say(f"timestep sweep: T in {ts}, modes {', '.join(todo)}")
        val = timestep_sweep(nets, self.loader("val"), ts, rate, 1, self.device, progress=self.progress, desc="T sweep (val)")
        tol = float(self.cfg["best_t_tolerance"])
        for m in todo:
            rows = [{"seed": 0, "T": v["T"], "val_acc": v["acc"]} for v in val[m]]
            best = max(r["val_acc"] for r in rows)
            rec = self._mode(m)
            rec["timesteps"] = rows
            rec["best_T"] = min(r["T"] for r in rows if r["val_acc"] >= best - tol)
        self._test_sweep(todo)

    def _test_sweep(self, modes: list[str]) -> None:
        """The timestep sweep's test pass (encoder seed ``TEST_SWEEP_SEED``) for ``modes``,
        whose validation rows and best T are known: test columns of ``timesteps`` and the
        per-layer ``energy`` report at best T."""
        nets = {m: self.network(m, 0) for m in modes}
        ts, rate = list(self.cfg["timesteps"]), float(self.cfg["encoder"]["max_rate"])
        best = {m: int(self._mode(m)["best_T"]) for m in modes}
        test = timestep_sweep(nets, self.loader("test"), ts, rate, TEST_SWEEP_SEED, self.device,
                              progress=self.progress, desc="T sweep (test)", reports=best)
        for m in modes:
            rec = self._mode(m)
            val = {r["T"]: r["val_acc"] for r in rec["timesteps"]}
            rec["timesteps"] = [{"seed": 0, "T": t["T"], "val_acc": val[t["T"]], "test_acc": t["acc"],
                                 "input_spikes": t["input_spikes"], "acs": t["acs"], "joules": t["joules"],
                                 "wall_s": t["wall_s"]} for t in test[m]]
            layer = test["reports"][m]
            report, est = layer["report"], self.cfg["periphery_estimate"]
            priced = report.with_periphery(adc_pj=float(est["adc_pj"]), neuron_update_pj=float(est["neuron_update_pj"]),
                                           spike_pj=float(est["spike_pj"]))
            rec["energy"] = {**report.to_dict(), "T": layer["T"], "seed": 0, "encoder_spikes": layer["encoder_spikes"],
                             "sample_set": {"split": "test", "images": report.samples, "encoder_seed": TEST_SWEEP_SEED,
                                            "source": "the timestep sweep's test pass"},
                             "with_periphery": priced.to_dict()["totals"]}
        self.save()

    def best_t(self, mode: str) -> int:
        """The mode's best T (runs the timestep sweep if needed)."""
        if "best_T" not in self._mode(mode):
            if self.worker:
                raise RuntimeError(f"mode {mode!r}: no best T yet (the timestep sweep runs before this point)")
            self.step_timesteps()
        return int(self._mode(mode)["best_T"])

    def step_headline(self, executor: Any = None) -> None:
        """Test accuracy at best T for every seed: mean and std (one point per mode x seed)."""
        from .study_points import phase_headline

        phase_headline(self, executor)

    def step_rates(self, executor: Any = None) -> None:
        """Firing-rate sweep (seed 0) at each mode's best T, one point per mode."""
        from .study_points import phase_rates

        phase_rates(self, executor)

    def step_rates_of(self, todo: list[str]) -> None:
        """Firing-rate sweep (seed 0) of ``todo`` at each mode's best T."""
        r = self.cfg["rates"]
        rates = [round(float(x), 6) for x in np.linspace(float(r["start"]), float(r["stop"]), int(r["count"]))]
        by_t: dict[int, list[str]] = {}
        for m in todo:
            by_t.setdefault(self.best_t(m), []).append(m)
        for t, modes in sorted(by_t.items()):
            nets = {m: self.network(m, 0) for m in modes}
            if self.progress:
                _say(f"rate sweep at T={t}: {len(rates)} rates, modes {', '.join(modes)}")
            val = rate_sweep(nets, self.loader("val", r["val_limit"]), t, rates, 3, self.device, self.progress, f"rates T={t} (val)")
            test = rate_sweep(nets, self.loader("test", r["test_limit"]), t, rates, 4, self.device, self.progress, f"rates T={t} (test)")
            for m in modes:
                rows = [{"seed": 0, "T": t, "rate": v["rate"], "val_acc": v["acc"], "test_acc": x["acc"],
                         "input_spikes": x["input_spikes"], "acs": x["acs"]} for v, x in zip(val[m], test[m])]
                best = max(row["val_acc"] for row in rows)
                rec = self._mode(m)
                rec["rates"] = rows
                rec["best_rate"] = min(row["rate"] for row in rows if row["val_acc"] >= best - 0.005)
            self.save()

    def step_energy(self, executor: Any = None) -> None:
        """Per-layer energy of every mode at its best T (seed 0) on the constraint device: measured
        in the timestep sweep's test pass; reruns that sweep for modes that lack it."""
        from .study_points import phase_energy

        phase_energy(self, executor)

    def step_constrain(self, executor: Any = None) -> None:
        """Constrained finetuning on the device: each mapping x procedure, accuracy per epoch."""
        from .study_points import phase_constrain

        phase_constrain(self, executor)

    def _constrained_eval(self, hw: Any, modes: list[str], epoch: int, histories: dict, convert: bool) -> None:
        """Accuracy of each mode on subsets (``constrain.val_limit`` / ``test_limit``); the last
        epoch is also measured on the full test set (``test_acc_full``)."""
        c = self.cfg["constrain"]
        for m in modes:
            t = self.best_t(m)
            snn = self.convert(hw, m, 0, t) if convert else hw
            row = {"epoch": epoch, "val_acc": self.eval_snn(snn, "val", t, 50_000 + epoch, c["val_limit"]),
                   "test_acc": self.eval_snn(snn, "test", t, 60_000 + epoch, c["test_limit"])}
            if epoch == int(c["epochs"]):
                row["test_acc_full"] = self.eval_snn(snn, "test", t, 65_000)
            histories[m].append(row)

    def _finish_runs(self, modes: list[str], mapping: str, proc: str, histories: dict) -> None:
        runs = self.results["constrain"]["runs"]
        for m in modes:
            runs[:] = [r for r in runs if (r["mode"], r["mapping"], r["procedure"]) != (m, mapping, proc)]
            runs.append({"mode": m, "mapping": mapping, "procedure": proc, "T": self.best_t(m), "history": histories[m]})
        self.save()

    def _constrain_ann(self, modes: list[str], mapping: str, proc: str, qcfs: bool = False) -> None:
        c = self.cfg["constrain"]
        dev = self.device
        model = copy.deepcopy(self.qcfs_ann(0) if qcfs else self.ann(0))
        model = apply_constraints(model, dev, mapping) if proc == "study" else xbar.to_crossbar(model, dev, mapping=mapping)
        hw: Callable[[], Any] = (lambda: xbar.to_crossbar(model, dev, mapping=mapping)) if proc == "study" else (lambda: model)
        hist: dict[str, list] = {m: [] for m in modes}
        self._constrained_eval(hw().eval(), modes, 0, hist, convert=True)
        opt = torch.optim.Adam(model.parameters(), lr=float(c["lr"]))
        loader = self.loader("train", shuffle_seed=100)
        from tqdm.auto import trange
        for epoch in trange(1, int(c["epochs"]) + 1, desc=f"constrain ANN {mapping}/{proc}", disable=not self.progress, leave=False):
            train_epoch(model, loader, opt)
            if proc == "study":
                apply_constraints(model, dev, mapping)
            self._constrained_eval(hw().eval(), modes, epoch, hist, convert=True)
        self._finish_runs(modes, mapping, proc, hist)

    def _unconstrained_reference(self, modes: list[str], qcfs: bool = False) -> None:
        """The reference for the constrained runs: seed 0's ANN finetuned for the same epochs with
        the same optimiser and batches, without constraints (float weights). Per epoch: the ANN's
        own accuracy (``constrain.reference``) and each converted mode's (runs with mapping
        ``none``, procedure ``unconstrained``), on the same subsets as the constrained runs. With
        ``qcfs`` the QCFS ANN's, all of it in ``constrain.reference_qcfs`` (``history`` the ANN's,
        ``converted`` each mode's per epoch)."""
        c = self.cfg["constrain"]
        model = copy.deepcopy(self.qcfs_ann(0) if qcfs else self.ann(0))
        hist: dict[str, list] = {m: [] for m in modes}
        ann_hist: list[dict] = []

        def measure(epoch: int) -> None:
            model.eval()
            row = {"epoch": epoch, "val_acc": evaluate(model, self.loader("val", c["val_limit"])),
                   "test_acc": evaluate(model, self.loader("test", c["test_limit"]))}
            if epoch == int(c["epochs"]):
                row["test_acc_full"] = evaluate(model, self.loader("test"))
            ann_hist.append(row)
            self._constrained_eval(model, modes, epoch, hist, convert=True)

        measure(0)
        opt = torch.optim.Adam(model.parameters(), lr=float(c["lr"]))
        loader = self.loader("train", shuffle_seed=100)
        from tqdm.auto import trange
        for epoch in trange(1, int(c["epochs"]) + 1, desc="unconstrained reference", disable=not self.progress, leave=False):
            model.train()
            train_epoch(model, loader, opt)
            measure(epoch)
        what = {"what": f"seed 0's {'QCFS ' if qcfs else ''}ANN finetuned without constraints (float weights)",
                "epochs": int(c["epochs"]), "lr": float(c["lr"]), "history": ann_hist}
        if qcfs:  # kept beside the runs: the report's reference rows are the plain ANN's
            self.results["constrain"]["reference_qcfs"] = {**what, "converted": hist}
            self.save()
        else:
            self.results["constrain"]["reference"] = what
            self._finish_runs(modes, "none", "unconstrained", hist)

    def _constrain_snn(self, mode: str, mapping: str, proc: str) -> None:
        c, s = self.cfg["constrain"], self.cfg["surrogate"]
        dev = self.device
        snn = copy.deepcopy(self.network(mode, 0))
        snn = apply_constraints(snn, dev, mapping) if proc == "study" else xbar.to_crossbar(snn, dev, mapping=mapping)
        hw = (lambda: xbar.to_crossbar(snn, dev, mapping=mapping)) if proc == "study" else (lambda: snn)
        hist: dict[str, list] = {mode: []}
        self._constrained_eval(hw().eval(), [mode], 0, hist, convert=False)
        opt = torch.optim.Adam(snn.parameters(), lr=float(c["lr"]))
        n = int(c["snn_samples_per_epoch"])
        from tqdm.auto import trange
        for epoch in trange(1, int(c["epochs"]) + 1, desc=f"constrain {mode} {mapping}/{proc}", disable=not self.progress, leave=False):
            snn.timesteps, snn.encoder = int(s["timesteps"]), self._encoder(70_000 + epoch)
            train_epoch(snn, self.loader("train", shuffle_seed=200 + epoch).take(n), opt)
            if proc == "study":
                apply_constraints(snn, dev, mapping)
            self._constrained_eval(hw().eval(), [mode], epoch, hist, convert=False)
        self._finish_runs([mode], mapping, proc, hist)

    def step_lowt(self, executor: Any = None) -> None:
        """Accuracy and energy at few timesteps on the constraint device: percentile conversion,
        hybrid BPTT finetuning at each ``lowt.hybrid_timesteps``, QCFS (:mod:`experiments.lowlatency`)."""
        from .study_points import phase_lowt

        phase_lowt(self, executor)

    # -- outputs -----------------------------------------------------------------------------
    def write_outputs(self) -> Path:
        """CSV files, plots and ``report.md``; returns the report's path."""
        from .lowlatency import write_lowt_outputs
        from .outputs import write_csvs
        from .plots import make_plots, plot_lowt
        from .report import write_report

        self.save()
        write_csvs(self.results, self.out)
        write_lowt_outputs(self.results, self.out)
        plots = make_plots(self.results, self.out)
        lowt = plot_lowt(self.results, self.out)
        if lowt is not None:
            plots["lowt"] = lowt
        return write_report(self.results, self.out, plots)

    def run_all(self, executor: Any = None) -> Path:
        """Every step, then the outputs. Each step's independent points run on ``executor``
        (:func:`xbar.executor.make_executor`; default serial, in this process), seeded from their
        values and on one torch thread each, so the numbers do not depend on the executor."""
        from .study_points import PHASES

        for name, fn in PHASES:
            t0 = time.perf_counter()
            _say(f"== {name}")
            fn(self, executor)
            _say(f"   {name} done in {time.perf_counter() - t0:.1f} s")
        return self.write_outputs()


def command_line() -> str:
    """The command that started this process, for the record."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
