"""`xbar robustness`: accuracy under device and periphery non-idealities, one at a time.

The 784-100-10 MLP is trained once, then evaluated as a converted SNN (``T`` steps, Poisson
input) on emulated chips. Each sweep starts from the base device with every non-ideality off
(:meth:`~xbar.DeviceProfile.ideal_devices`, :meth:`~xbar.DeviceProfile.ideal_periphery`) and
varies one: programming sigma, stuck-at fraction, drift time (with and without global drift
compensation), ADC bits, tile size. Every point is measured for two networks:

* **conversion only**: the trained ANN, converted on the chip;
* **hardware-aware**: the ANN finetuned once with :func:`xbar.hardware_aware_finetune` at the
  ``hardware_aware.device`` condition (the acceptance condition by default), then converted.
  With ``faults: chip`` (fault-aware training) it is finetuned once per chip, for that chip's
  defect map; with ``faults: random`` one network serves every chip.

A chip is a seed: its defect map (:func:`xbar.fix_faults`; maps are nested, so a larger stuck
fraction adds faults to a smaller one's), its programming noise (:func:`xbar.program_model`) and
its read noise. Conversion runs on the chip with ideal periphery (percentile threshold
balancing sees the programmed devices); the ADC ranges are then calibrated on the SNN's own
reads (:func:`xbar.calibrate_periphery`), and drift happens after calibration. The device
comparison evaluates every shipped profile as it is and with ideal periphery, with accuracy and
energy per sample (:class:`xbar.EnergyMeter`).

Results go to ``results.json`` (after every point, so an interrupted run resumes), CSVs, PNGs
and ``report.md`` in the output folder (:mod:`experiments.robustness_report`).
"""

from __future__ import annotations

import hashlib
import time
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import torch

import xbar
from xbar.data import mnist_datasets
from xbar.models import build_model
from xbar.train import evaluate, hardware_aware_finetune, train

from xbar.executor import SerialExecutor
from xbar.grid import canonical, point_key
from xbar.grid_run import POINTS_DIR, PointsFailed, run_points

from .config import ConfigError, read_merged
from .study import _atomic, _versions, read_results, write_json_atomic
from .sweeps import TensorLoader

DEFAULT = "robustness"
MODELS = ("conversion", "hardware-aware")
_COST_RANK = {"devices": 0, "read_noise": 1, "tile": 2, "acceptance": 3, "adc_bits": 4}  # submission order
SWEEPS = ("programming_sigma", "stuck", "drift", "adc_bits", "tile", "read_noise", "compensation")


def _check(cfg: dict, where: str) -> None:
    def fail(field: str, msg: str) -> None:
        raise ConfigError(f"{where}: {field}: {msg}")

    def ints(field: str, value: Any, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            fail(field, f"must be an integer >= {low}, got {value!r}")

    def numbers(field: str, values: Any, low: float, high: float | None = None) -> None:
        if not isinstance(values, list) or not values:
            fail(field, "must be a non-empty list of numbers")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < low or (high is not None and v > high):
                fail(field, f"{v!r} is not a number in [{low}, {high if high is not None else 'inf'}]")

    for field, value, low in (("timesteps", cfg["timesteps"], 1), ("chips", cfg["chips"], 1),
                              ("ann.epochs", cfg["ann"]["epochs"], 0),
                              ("hardware_aware.epochs", cfg["hardware_aware"]["epochs"], 0)):
        ints(field, value, low)
    if not 0 < float(cfg["max_rate"]) <= 1:
        fail("max_rate", "must be in (0, 1]")
    if cfg["adc_calibration"]["method"] not in ("max", "percentile"):
        fail("adc_calibration.method", "must be 'max' or 'percentile'")
    if cfg["hardware_aware"]["faults"] not in ("chip", "random"):
        fail("hardware_aware.faults", "must be 'chip' or 'random'")
    for name in ("hardware_aware.device", "acceptance"):
        node = cfg["hardware_aware"]["device"] if name != "acceptance" else cfg["acceptance"]
        numbers(f"{name}.programming_sigma", [node["programming_sigma"]], 0.0)
        numbers(f"{name}.stuck", [node["stuck"]], 0.0, 1.0)
        ints(f"{name}.adc_bits", node["adc_bits"], 2)
        ints(f"{name}.tile", node["tile"], 1)
    ints("acceptance.chips", cfg["acceptance"]["chips"], 1)
    s = cfg["sweeps"]
    numbers("sweeps.programming_sigma", s["programming_sigma"], 0.0)
    numbers("sweeps.stuck", s["stuck"], 0.0, 1.0)
    numbers("sweeps.drift_time_s", s["drift_time_s"], 0.0)
    numbers("sweeps.drift_nu", [s["drift_nu"], s["drift_nu_sigma"]], 0.0)
    for field in ("adc_bits", "tile"):
        if not isinstance(s[field], list) or not s[field]:
            fail(f"sweeps.{field}", "must be a non-empty list of integers")
        for v in s[field]:
            ints(f"sweeps.{field}", v, 2 if field == "adc_bits" else 1)
    ints("sweeps.adc_tile", s["adc_tile"], 1)
    numbers("sweeps.read_noise_sigma", [s["read_noise_sigma"]], 0.0)
    numbers("sweeps.read_noise_flicker", s["read_noise_flicker"], 0.0, 1.0)
    numbers("sweeps.compensation_time_s", s["compensation_time_s"], 0.0)
    if not isinstance(s["compensation_device"], str) or not s["compensation_device"]:
        fail("sweeps.compensation_device", "must be a profile name or path")
    d = cfg["devices"]
    if d["names"] != "all" and not (isinstance(d["names"], list) and d["names"]):
        fail("devices.names", "must be 'all' or a non-empty list of profile names / paths")
    if not d["periphery"] or any(p not in ("shipped", "ideal") for p in d["periphery"]):
        fail("devices.periphery", "must be a non-empty list of 'shipped' / 'ideal'")


def load_robustness_config(name_or_path: str | Path = DEFAULT, overrides: dict[str, Any] | None = None) -> dict:
    """Load and validate a robustness configuration (defaults from ``robustness.yaml``).

    Raises:
        ConfigError: naming the file and the key of the first problem.
    """
    cfg, where = read_merged(DEFAULT, name_or_path, overrides)
    _check(cfg, where)
    return cfg


def _condition(base: xbar.DeviceProfile, spec: dict) -> xbar.DeviceProfile:
    """``base`` with a programming sigma, a stuck fraction (half off, half on), an ADC, tiles."""
    return base.replace(programming_sigma=float(spec["programming_sigma"]), stuck_off=spec["stuck"] / 2,
                        stuck_on=spec["stuck"] / 2, adc_bits=int(spec["adc_bits"]), tile_rows=int(spec["tile"]),
                        tile_cols=int(spec["tile"]), name=f"{base.name}+condition")


_NU_FIELDS = ("drift_nu", "drift_nu_sigma", "drift_t0", "drift_time_origin", "drift_nu_ln", "drift_nu_range",
              "drift_nu_sigma_ln", "drift_nu_sigma_range")


def _read_noise(base: xbar.DeviceProfile, sigma: float, flicker: float) -> xbar.DeviceProfile:
    """``base`` with read noise of total sigma ``sigma`` (fraction of ``g_max``, at ``G = g_max``
    and ``t0``): a share ``flicker`` of its variance 1/f (held per sample), the rest white."""
    from xbar.noise_models import flicker_time_factor

    q = sigma * (flicker ** 0.5) / flicker_time_factor(base.drift_t0, base.read_time)
    return base.replace(read_sigma=sigma * (1 - flicker) ** 0.5, flicker_q=q, flicker_exponent=0.0,
                        flicker_q_max=None, flicker_t_read=None)


class Robustness:
    """One run of a robustness configuration into an output folder (resumable).

    Args:
        config: from :func:`load_robustness_config`.
        out_dir: results folder.
        progress: progress bars and step messages.
        command: the command line, recorded in the results.
    """

    def __init__(self, config: dict, out_dir: str | Path, progress: bool = True, command: str | None = None,
                 worker: bool = False) -> None:
        self.cfg = config
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.worker = worker
        shipped = xbar.load_device(config["base_device"])
        self.base = shipped.ideal_devices().ideal_periphery().replace(name=shipped.name)
        self._data: tuple | None = None
        self._models: dict[str, torch.nn.Module] = {}
        self.results = self._load_or_new(command)
        self._t0 = time.perf_counter() - float(self.results.get("wall_time_s", 0.0))

    # -- bookkeeping -------------------------------------------------------------------------
    def _load_or_new(self, command: str | None) -> dict:
        fresh = {"study": self.cfg["name"], "kind": "robustness", "config": self.cfg, "versions": _versions(),
                 "command": command, "wall_time_s": 0.0, "base_device": self.base.to_dict(), "models": {},
                 "points": [], "devices": []}
        path = self.out / "results.json"
        old = read_results(path)
        if self.worker:  # a worker reads what the main process wrote, and never starts over
            if not (old and old.get("config") == self.cfg and old.get("kind") == "robustness"):
                raise RuntimeError(f"{path}: missing or written by another configuration (worker of a robustness run)")
            return old
        if path.exists():
            if old and old.get("config") == self.cfg and old.get("kind") == "robustness":
                self._say(f"resuming from {path}")
                return old
            self._say(f"{path}: written by another configuration; starting over")
            for f in [*self.out.glob("*.pt"), *(self.out / POINTS_DIR).glob("*.json")]:
                f.unlink()
        return fresh

    def _say(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    def save(self) -> None:
        """Write ``results.json`` now (atomically); a worker's results are returned, not saved."""
        if self.worker:
            return
        self.results["wall_time_s"] = time.perf_counter() - self._t0
        write_json_atomic(self.out / "results.json", self.results)

    # -- data and networks -------------------------------------------------------------------
    def data(self) -> tuple:
        """``(train, test, calibration images)``: image/label tensor pairs and a tensor."""
        if self._data is None:
            d = self.cfg["data"]
            train_ds, _val, test_ds = mnist_datasets(val_size=d["val_size"], seed=0)
            lim = lambda ds, n: (ds.images[:n], ds.labels[:n]) if n else (ds.images, ds.labels)  # noqa: E731
            tr, te = lim(train_ds, d["train_limit"]), lim(test_ds, d["test_limit"])
            self._data = (tr, te, tr[0][: d["calibration_samples"]])
        return self._data

    def _loader(self, split: str, shuffle_seed: int | None = None, limit: int | None = None) -> TensorLoader:
        tr, te, _ = self.data()
        images, labels = tr if split == "train" else te
        d = self.cfg["data"]
        bs = d["batch_size"] if shuffle_seed is not None else d["eval_batch_size"]
        return TensorLoader(images, labels, bs, shuffle=shuffle_seed is not None, seed=shuffle_seed or 0, limit=limit)

    def _float_state(self, model: torch.nn.Module) -> dict:
        return {k: v for k, v in model.state_dict().items() if k.endswith(("weight", "bias"))}

    def model_name(self, key: str, chip: int = 0) -> str:
        """The checkpoint name of network ``key`` for ``chip`` (``hardware-aware-chipN`` for chips
        after the first when ``hardware_aware.faults`` is ``chip``; else ``key``)."""
        per_chip = key == "hardware-aware" and self.cfg["hardware_aware"]["faults"] == "chip"
        return f"{key}-chip{chip}" if per_chip and chip else key

    def model(self, key: str, chip: int = 0) -> torch.nn.Module:
        """The float ANN of ``key`` (``conversion``: trained; ``hardware-aware``: finetuned).

        With ``hardware_aware.faults: chip`` the hardware-aware network is finetuned for each
        chip's own defect map (``hardware-aware-chipN`` for chips after the first). Read from its
        checkpoint when there; else trained now (not in a worker: :meth:`train_model` runs first)."""
        name = self.model_name(key, chip)
        if name in self._models:
            return self._models[name]
        ck = self.out / f"{name}.pt"
        if not (ck.exists() and name in self.results["models"]):
            if self.worker:
                raise RuntimeError(f"{ck}: network {name!r} not trained yet (the models phase runs before the points)")
            self.results["models"][name] = self.train_model(key, chip)
            self.save()
        torch.manual_seed(0)
        net = build_model(self.cfg["model"])
        net.load_state_dict(torch.load(ck, weights_only=True))
        net.eval()
        self._models[name] = net
        return net

    def train_model(self, key: str, chip: int = 0) -> dict:
        """Train network ``key`` (for ``chip``), write its checkpoint ``NAME.pt`` (atomically) and
        return its record (``results["models"][NAME]``); the conversion network must exist for
        ``hardware-aware``."""
        name = self.model_name(key, chip)
        torch.manual_seed(0)
        net = build_model(self.cfg["model"])
        if key == "conversion":
            a = self.cfg["ann"]
            self._say("== training the ANN")
            hist = train(net, self._loader("train", shuffle_seed=0), epochs=a["epochs"], lr=a["lr"], seed=0,
                         progress=self.progress, desc="ANN")
            record = {"history": hist, "ann_test_acc": evaluate(net.eval(), self._loader("test"))}
        else:
            h = self.cfg["hardware_aware"]
            dev = _condition(self.base, h["device"])
            self._say(f"== hardware-aware finetuning on {dev.name} ({h['epochs']} epochs, faults: {h['faults']}, "
                      f"chip {chip})")
            t0 = time.perf_counter()
            hw = hardware_aware_finetune(self.model("conversion"), dev, self._loader("train", shuffle_seed=1),
                                         epochs=h["epochs"], lr=h["lr"], noise_scale=h["noise_scale"],
                                         calibration=self.data()[2][:200], seed=0, chip_seed=chip,
                                         faults=h["faults"], progress=self.progress)
            net.load_state_dict(self._float_state(hw))
            record = {"history": hw.history, "device": dev.to_dict(), "chip": chip,
                      "train_s": time.perf_counter() - t0, "ann_on_chip_test_acc": evaluate(hw, self._loader("test"))}
        _atomic(self.out / f"{name}.pt", lambda tmp: torch.save(net.state_dict(), tmp))
        return record

    def model_chips(self) -> int:
        """How many chips need a network of their own (``faults: chip``: every chip measured)."""
        if self.cfg["hardware_aware"]["faults"] != "chip":
            return 1
        return max(int(self.cfg["chips"]), int(self.cfg["acceptance"]["chips"]))

    def chip_snn(self, key: str, device: xbar.DeviceProfile, chip: int) -> xbar.SpikingNetwork:
        """The network ``key`` converted on chip ``chip`` of ``device``, converters calibrated."""
        calib = self.data()[2]
        on_chip = device.ideal_periphery()
        cb = xbar.to_crossbar(self.model(key, chip), on_chip)
        xbar.fix_faults(cb, chip)
        xbar.program_model(cb, chip)
        enc = xbar.PoissonEncoder(float(self.cfg["max_rate"]), torch.Generator().manual_seed(7))
        snn = xbar.to_snn(cb, calibration=calib.split(500), timesteps=int(self.cfg["timesteps"]), norm="percentile",
                          percentile=float(self.cfg["percentile"]), encoder=enc)
        for m in snn.modules():
            if isinstance(m, xbar.CrossbarLinear | xbar.CrossbarConv2d):
                m.profile = device
        xbar.program_model(snn, chip)
        if device.adc_bits is not None or device.dac_bits is not None:
            a = self.cfg["adc_calibration"]
            xbar.calibrate_periphery(snn, calib[: a["samples"]].split(100), method=a["method"],
                                     percentile=float(a["percentile"]))
        snn.eval()
        return snn

    def _accuracy(self, snn: xbar.SpikingNetwork, seed: int) -> float:
        snn.encoder = xbar.PoissonEncoder(float(self.cfg["max_rate"]), torch.Generator().manual_seed(seed))
        return evaluate(snn, self._loader("test"))

    # -- points ------------------------------------------------------------------------------
    def sweep_points(self) -> Iterator[tuple[str, float, bool | None, xbar.DeviceProfile, float | None]]:
        """Every ``(sweep, value, compensation, device, drift time)`` of the configuration."""
        s, acc, base = self.cfg["sweeps"], self.cfg["acceptance"], self.base
        for v in s["programming_sigma"]:
            yield "programming_sigma", float(v), None, base.replace(programming_sigma=float(v)), None
        for v in s["stuck"]:
            yield "stuck", float(v), None, base.replace(stuck_off=v / 2, stuck_on=v / 2), None
        drifting = base.replace(drift_nu=float(s["drift_nu"]), drift_nu_sigma=float(s["drift_nu_sigma"]))
        for comp in (False, True):
            for v in s["drift_time_s"]:
                yield "drift", float(v), comp, drifting, float(v)
        for v in s["adc_bits"]:
            yield "adc_bits", float(v), None, base.replace(adc_bits=int(v), tile_rows=s["adc_tile"],
                                                           tile_cols=s["adc_tile"]), None
        for v in s["tile"]:
            yield "tile", float(v), None, base.replace(adc_bits=int(acc["adc_bits"]), tile_rows=int(v),
                                                       tile_cols=int(v)), None
        for v in s["read_noise_flicker"]:
            yield "read_noise", float(v), None, _read_noise(base, float(s["read_noise_sigma"]), float(v)), None
        nu = xbar.load_device(s["compensation_device"])
        nu_model = base.replace(**{k: getattr(nu, k) for k in _NU_FIELDS})
        for comp in ("global", "column"):
            for v in s["compensation_time_s"]:
                yield "compensation", float(v), comp, nu_model, float(v)

    def _measure(self, key: str, device: xbar.DeviceProfile, drift: tuple[float, bool] | None = None,
                 energy: int | None = None, chips: int | None = None) -> dict:
        accs, joules = [], []
        for chip in range(int(chips or self.cfg["chips"])):
            snn = self.chip_snn(key, device, chip)
            if drift is not None:
                xbar.drift(snn, drift[0], compensate=drift[1])
            accs.append(self._accuracy(snn, 1000 + chip))
            if energy:
                snn.encoder = xbar.PoissonEncoder(float(self.cfg["max_rate"]), torch.Generator().manual_seed(99))
                with xbar.EnergyMeter(snn, device) as meter:
                    evaluate(snn, self._loader("test", limit=energy))
                joules.append(meter.report().to_dict())
        row: dict[str, Any] = {"model": key, "acc": sum(accs) / len(accs), "acc_per_chip": accs}
        if joules:
            row["energy"] = joules[0]
        return row

    # -- the run as independent points ----------------------------------------------------
    def fingerprint(self) -> str:
        """What every point record of this run carries: a hash of the configuration."""
        return hashlib.sha256(canonical(self.cfg).encode()).hexdigest()[:16]

    def model_points(self) -> list[list[dict]]:
        """The networks still to train, as two phases of points: the conversion ANN, then the
        hardware-aware finetuning of each chip (independent of each other)."""
        phases = [[{"step": "models", "model": "conversion", "chip": 0}],
                  [{"step": "models", "model": "hardware-aware", "chip": c} for c in range(self.model_chips())]]
        todo = []
        for phase in phases:
            left = []
            for p in phase:
                name = self.model_name(p["model"], p["chip"])
                if not ((self.out / f"{name}.pt").exists() and name in self.results["models"]):
                    (self.out / POINTS_DIR / f"{point_key(p)}.json").unlink(missing_ok=True)  # no stale record
                    left.append(p)
            todo.append(left)
        return todo

    def measure_points(self) -> list[dict]:
        """Every measurement of the run, in report order: the acceptance condition (both networks),
        each sweep point for both networks, each device x periphery for both networks."""
        pts = [{"step": "acceptance", "model": key} for key in MODELS]
        pts += [{"step": "sweeps", "sweep": sweep, "value": value, "compensation": comp, "model": key}
                for sweep, value, comp, _dev, _t in self.sweep_points() for key in MODELS]
        pts += [{"step": "devices", "device": name, "periphery": per, "model": key}
                for name in self.device_list() for per in self.cfg["devices"]["periphery"] for key in MODELS]
        return pts

    def measure_point(self, point: dict) -> dict:
        """The row of one point of :meth:`measure_points` (accuracy per chip, energy for devices)."""
        key = point["model"]
        if point["step"] == "acceptance":
            return self._measure(key, _condition(self.base, self.cfg["acceptance"]),
                                 chips=int(self.cfg["acceptance"]["chips"]))
        if point["step"] == "sweeps":
            for sweep, value, comp, dev, t in self.sweep_points():
                if (sweep, value, comp) == (point["sweep"], point["value"], point["compensation"]):
                    drift = None if t is None else (t, comp if isinstance(comp, str) else bool(comp))
                    return self._measure(key, dev, drift)
            raise ValueError(f"point {point}: no such sweep point in the configuration")
        if point["step"] == "devices":
            dev = xbar.load_device(point["device"])
            dev = dev.ideal_periphery() if point["periphery"] == "ideal" else dev
            return self._measure(key, dev, energy=int(self.cfg["devices"]["energy_samples"]))
        raise ValueError(f"point {point}: unknown step {point.get('step')!r}")

    def _run(self, fn: Any, points: list[dict], executor: Any, desc: str) -> list[dict]:
        run = run_points(partial(fn, self.cfg, str(self.out)), points, executor, self.out, progress=self.progress,
                         fingerprint=self.fingerprint(), desc=desc)
        PointsFailed.check(run, self.out)
        return run.records

    def step_models(self, executor: Any = None) -> None:
        """Train the conversion ANN, then finetune the hardware-aware network of every chip."""
        for phase in self.model_points():
            if phase:
                for rec in self._run(train_point, phase, executor or SerialExecutor(), "networks"):
                    p = rec["point"]
                    self.results["models"][self.model_name(p["model"], p["chip"])] = rec["result"]
                self.save()

    def step_measure(self, executor: Any = None) -> None:
        """Every measurement point (acceptance, sweeps, devices) on ``executor``, into the results."""
        points = self.measure_points()
        # longest first (measured: a device point with energy metering takes up to ~90 s, a 1/f read-noise
        # or tile point ~20-30 s, most sweep points ~1 s), so that no worker is left with a long point
        # while the others idle; the record keeps report order
        first = sorted(points, key=lambda p: _COST_RANK.get(p["step"], _COST_RANK.get(p.get("sweep"), 9)))
        rows = {point_key(r["point"]): r["result"] for r in
                self._run(measure_point, first, executor or SerialExecutor(), "robustness points")}
        acc = [rows[point_key(p)] for p in points if p["step"] == "acceptance"]
        dev = _condition(self.base, self.cfg["acceptance"])
        self.results["acceptance"] = {"device": dev.to_dict(), "T": int(self.cfg["timesteps"]),
                                      **{r["model"]: r["acc"] for r in acc}, "rows": acc}
        self.results["points"] = [{"sweep": p["sweep"], "value": p["value"], "compensation": p["compensation"],
                                   **rows[point_key(p)]} for p in points if p["step"] == "sweeps"]
        self.results["devices"] = [{"device": p["device"], "periphery": p["periphery"], **rows[point_key(p)]}
                                   for p in points if p["step"] == "devices"]
        self.save()

    def device_list(self) -> list[str]:
        names = self.cfg["devices"]["names"]
        return xbar.list_devices() if names == "all" else list(names)

    def run_all(self, executor: Any = None) -> Path:
        """Train, finetune, measure everything, write the outputs; returns the report path.

        Every network and every measurement is a point run by :func:`xbar.grid_run.run_points`
        on ``executor`` (default serial, in this process): seeded from its values, on one torch
        thread, saved to ``OUT/points`` as it finishes; so the numbers are the same serially,
        with local workers and on a Dask cluster."""
        executor = executor or SerialExecutor()
        self.save()  # workers read the configuration and the finished networks from results.json
        for name, fn in (("networks", self.step_models), ("measurements", self.step_measure)):
            t0 = time.perf_counter()
            self._say(f"== {name}")
            fn(executor)
            self._say(f"   {name} done in {time.perf_counter() - t0:.1f} s")
        return self.write_outputs()

    def write_outputs(self) -> Path:
        """CSVs, plots and ``report.md``."""
        from .robustness_report import write_all

        self.save()
        return write_all(self.results, self.out)


# -- worker side: module-level functions, picklable for process pools and Dask ---------------
_WORKER: dict[tuple[str, str], Robustness] = {}


def worker_study(config: dict, out_dir: str) -> Robustness:
    """This process's read-only :class:`Robustness` of a run (kept between points; its results
    re-read from ``results.json`` each time, where the main process records finished phases)."""
    key = (str(Path(out_dir).resolve()), canonical(config))
    study = _WORKER.get(key)
    if study is None:
        _WORKER.clear()
        study = _WORKER[key] = Robustness(config, out_dir, progress=False, worker=True)
    else:
        study.results = study._load_or_new(None)
    return study


def train_point(config: dict, out_dir: str, point: dict) -> dict:
    """Point of the networks phase: train ``point["model"]`` for ``point["chip"]``; its record."""
    return worker_study(config, out_dir).train_model(point["model"], int(point["chip"]))


def measure_point(config: dict, out_dir: str, point: dict) -> dict:
    """Point of the measurements phase (:meth:`Robustness.measure_point`)."""
    return worker_study(config, out_dir).measure_point(point)

