"""`xbar reproduce` as phases of independent points, run on any executor (:mod:`xbar.executor`).

The study's steps depend on each other (the hybrids finetune the trained ANNs, the sweeps need
the networks, the headline needs each mode's best T), but inside a step the work splits into
points that do not: one per seed, per mode, per mapping x procedure. Each phase below is one
:func:`xbar.grid_run.run_points` call over such points:

==============  ========================================================================
phase           points
==============  ========================================================================
networks        ``ann`` per seed (with the seed's QCFS ANN when mode ``qcfs`` runs), then
                ``bptt`` per BPTT-trained mode x seed
timesteps       ``timesteps`` per mode (seed 0): validation sweep, best T, test sweep and
                the per-layer energy at best T
headline        ``headline`` per mode x seed after the first, at the mode's best T
rates           ``rates`` per mode (seed 0) at its best T
constrain       ``constrain`` per mapping x procedure (converted modes together; QCFS apart),
                ``reference`` per group, ``constrain-snn`` per BPTT mode x SNN variant
low-T           ``lowt`` per seed
==============  ========================================================================

A point runs in a worker (:func:`run_task`) on a read-only :class:`~experiments.study.Study`
that reads the finished phases from ``results.json`` and the networks from ``checkpoints/``;
it writes only its own checkpoints and returns its part of the results, which the main process
merges (in point order, so the record does not depend on which point finished first) and saves
after each phase. Points are seeded from their values and run on one torch thread
(:func:`xbar.grid_run.call_point`) in every executor, serial included: the study gives the
same numbers serially, with ``--workers N`` and on a Dask cluster, whatever the machine's
thread count. Every common random number is unchanged by the split: each sweep draws its
spike trains from its own seeded encoder, per batch, independent of which networks it feeds.
"""

from __future__ import annotations

import hashlib
import statistics
from functools import partial
from pathlib import Path
from typing import Any, Callable

from xbar.executor import SerialExecutor
from xbar.grid import canonical
from xbar.grid_run import PointsFailed, run_points

# -- worker side --------------------------------------------------------------------------------
_WORKER: dict[tuple, Any] = {}


def worker_study(config: dict, out_dir: str, device: str | None) -> Any:
    """This process's read-only Study of a run, kept between points; its results re-read from
    ``results.json`` at each point (the main process records every finished phase there)."""
    from .study import Study

    key = (str(Path(out_dir).resolve()), canonical(config), device)
    study = _WORKER.get(key)
    if study is None:
        _WORKER.clear()
        study = _WORKER[key] = Study(config, out_dir, device=device, progress=False, worker=True)
    else:
        study.results = study._load_or_new(None)
        study._nets.clear()  # converted with the state of the last point; cheap to redo
    return study


def _task_ann(study: Any, p: dict) -> dict:
    seed = int(p["seed"])
    study.ann(seed)
    out = {"ann": next(r for r in study.results["ann"]["per_seed"] if r["seed"] == seed), "qcfs": None}
    if "qcfs" in study.cfg["modes"]:
        study.qcfs_ann(seed)
        out["qcfs"] = next(r for r in study.results["qcfs_ann"]["per_seed"] if r["seed"] == seed)
    return out


def _task_bptt(study: Any, p: dict) -> dict:
    study.network(p["mode"], int(p["seed"]))
    return next(r for r in study._mode(p["mode"])["training"] if r["seed"] == int(p["seed"]))


def _task_timesteps(study: Any, p: dict) -> dict:
    study.step_timesteps_of([p["mode"]])
    rec = study._mode(p["mode"])
    return {k: rec[k] for k in ("timesteps", "best_T", "energy")}


def _task_headline(study: Any, p: dict) -> float:
    seed = int(p["seed"])
    return study.eval_snn(study.network(p["mode"], seed), "test", study.best_t(p["mode"]), 30_000 + seed)


def _task_rates(study: Any, p: dict) -> dict:
    study.step_rates_of([p["mode"]])
    rec = study._mode(p["mode"])
    return {k: rec[k] for k in ("rates", "best_rate")}


def _task_constrain(study: Any, p: dict) -> dict:
    modes, qcfs = constrain_group(study.cfg, p["group"])
    if p["kind"] == "constrain":
        study._constrain_ann(modes, p["mapping"], p["procedure"], qcfs)
    elif p["kind"] == "reference":
        study._unconstrained_reference(modes, qcfs)
    else:
        study._constrain_snn(p["mode"], p["mapping"], p["procedure"])
    c = study.results["constrain"]
    return {"runs": c["runs"], "reference": c.get("reference"), "reference_qcfs": c.get("reference_qcfs")}


def _task_lowt(study: Any, p: dict) -> dict:
    from .lowlatency import lowt_seed

    return lowt_seed(study, int(p["seed"]))


TASKS: dict[str, Callable[[Any, dict], Any]] = {
    "ann": _task_ann, "bptt": _task_bptt, "timesteps": _task_timesteps, "headline": _task_headline,
    "rates": _task_rates, "constrain": _task_constrain, "reference": _task_constrain,
    "constrain-snn": _task_constrain, "lowt": _task_lowt}


def run_task(config: dict, out_dir: str, device: str | None, point: dict) -> Any:
    """One point of a phase, in whatever process the executor chose: its part of the results."""
    return TASKS[point["task"]](worker_study(config, out_dir, device), point)


def constrain_group(cfg: dict, group: str) -> tuple[list[str], bool]:
    """The converted modes a constrained ANN run measures: ``conv`` (every converted mode but
    QCFS, from the ANN) or ``qcfs`` (from the QCFS ANN); and whether it is the QCFS one."""
    from .study import CONVERTED

    if group == "qcfs":
        return (["qcfs"] if "qcfs" in cfg["modes"] else []), True
    return [m for m in cfg["modes"] if m in CONVERTED and m != "qcfs"], False


# -- main side ----------------------------------------------------------------------------------
def fingerprint(study: Any) -> str:
    """What every point record of a run carries: a hash of the configuration and the device."""
    return hashlib.sha256(canonical({"config": study.cfg, "device": study.device.to_dict()}).encode()).hexdigest()[:16]


def run_phase(study: Any, points: list[dict], executor: Any, desc: str) -> list[dict]:
    """Run ``points`` on ``executor`` (default serial); their records in point order.

    Raises:
        PointsFailed: some points failed twice; the rest are saved in ``OUT/points``.
    """
    if not points:
        return []
    study.save()  # the workers read the finished phases from results.json
    run = run_points(partial(run_task, study.cfg, str(study.out), study.device_arg), points,
                     executor or SerialExecutor(), study.out, progress=study.progress,
                     fingerprint=fingerprint(study), desc=desc)
    PointsFailed.check(run, study.out)
    return run.records


def _replace(rows: list[dict], row: dict, key: str = "seed") -> list[dict]:
    return [r for r in rows if r[key] != row[key]] + [row]


def phase_networks(study: Any, executor: Any = None) -> None:
    """The ANN (and QCFS ANN) of every seed, then every BPTT-trained mode x seed."""
    from .study import CONVERTED

    have = {r["seed"] for r in study.results["ann"]["per_seed"]}
    qcfs = "qcfs" in study.cfg["modes"]
    have_q = {r["seed"] for r in study.results.get("qcfs_ann", {}).get("per_seed", [])}
    points = [{"task": "ann", "seed": s} for s in study.seeds if s not in have or (qcfs and s not in have_q)]
    for rec in run_phase(study, points, executor, "networks (ANNs)"):
        ann = study.results["ann"]
        ann["per_seed"] = sorted(_replace(ann["per_seed"], rec["result"]["ann"]), key=lambda r: r["seed"])
        accs = [r["test_acc"] for r in ann["per_seed"]]
        ann["test_acc_mean"] = statistics.fmean(accs)
        ann["test_acc_std"] = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        if rec["result"]["qcfs"] is not None:
            q = study.results.setdefault("qcfs_ann", {"per_seed": []})
            q["per_seed"] = sorted(_replace(q["per_seed"], rec["result"]["qcfs"]), key=lambda r: r["seed"])
    points = [{"task": "bptt", "mode": m, "seed": s} for m in study.cfg["modes"] if m not in CONVERTED
              for s in study.seeds if not any(r["seed"] == s for r in study._mode(m)["training"])]
    for rec in run_phase(study, points, executor, "networks (BPTT)"):
        mode = study._mode(rec["point"]["mode"])
        mode["training"] = sorted(_replace(mode["training"], rec["result"]), key=lambda r: r["seed"])
    study.save()


def _per_mode(study: Any, executor: Any, task: str, done: str, desc: str) -> None:
    """One ``task`` point per mode whose record lacks ``done``; each result updates that record."""
    points = [{"task": task, "mode": m} for m in study.cfg["modes"] if done not in study._mode(m)]
    for rec in run_phase(study, points, executor, desc):
        study._mode(rec["point"]["mode"]).update(rec["result"])
    study.save()


def phase_timesteps(study: Any, executor: Any = None) -> None:
    """The timestep sweep of every mode that has no best T yet (one point per mode)."""
    phase_networks(study, executor)
    _per_mode(study, executor, "timesteps", "best_T", "timestep sweep")


def phase_energy(study: Any, executor: Any = None) -> None:
    """Per-layer energy at best T: measured in the timestep sweep's test pass (that phase)."""
    phase_timesteps(study, executor)
    missing = [m for m in study.cfg["modes"] if "energy" not in study._mode(m)]
    if missing:  # a results file from before the energy moved into the sweep: redo those modes' sweeps
        for m in missing:
            study._mode(m).pop("best_T", None)
        phase_timesteps(study, executor)


def phase_headline(study: Any, executor: Any = None) -> None:
    """Test accuracy at best T of every mode for every seed: mean and std."""
    phase_timesteps(study, executor)
    todo = [m for m in study.cfg["modes"] if study._mode(m).get("headline", {}).get("n_seeds") != len(study.seeds)]
    points = [{"task": "headline", "mode": m, "seed": s} for m in todo for s in study.seeds[1:]]
    accs = {(r["point"]["mode"], r["point"]["seed"]): r["result"] for r in run_phase(study, points, executor, "headline")}
    for m in todo:
        rec = study._mode(m)
        t = int(rec["best_T"])
        per_seed = [{"seed": 0, "test_acc": next(r["test_acc"] for r in rec["timesteps"] if r["T"] == t)}]
        per_seed += [{"seed": s, "test_acc": accs[(m, s)]} for s in study.seeds[1:]]
        values = [p["test_acc"] for p in per_seed]
        rec["headline"] = {"T": t, "n_seeds": len(values), "per_seed": per_seed, "test_acc_mean": statistics.fmean(values),
                           "test_acc_std": statistics.pstdev(values) if len(values) > 1 else 0.0}
    study.save()


def phase_rates(study: Any, executor: Any = None) -> None:
    """The firing-rate sweep of every mode at its best T (one point per mode)."""
    phase_timesteps(study, executor)
    _per_mode(study, executor, "rates", "best_rate", "rate sweep")


def constrain_points(study: Any) -> list[dict]:
    """The constrained-finetuning runs still missing, as points."""
    from .study import CONVERTED

    c = study.cfg["constrain"]
    done = {(r["mode"], r["mapping"], r["procedure"]) for r in study.results["constrain"]["runs"]}
    points = []
    for group in ("conv", "qcfs"):
        modes, qcfs = constrain_group(study.cfg, group)
        if not modes:
            continue
        points += [{"task": "constrain", "kind": "constrain", "group": group, "mapping": mapping, "procedure": proc}
                   for mapping in c["mappings"] for proc in c["procedures"]
                   if any((m, mapping, proc) not in done for m in modes)]
        todo = "reference_qcfs" not in study.results["constrain"] if qcfs else \
            any((m, "none", "unconstrained") not in done for m in modes)
        if c["unconstrained_reference"] and todo:
            points.append({"task": "reference", "kind": "reference", "group": group})
    for variant in c["snn_variants"]:
        mapping, proc = variant.split("/")
        points += [{"task": "constrain-snn", "kind": "snn", "group": "snn", "mode": m, "mapping": mapping,
                    "procedure": proc} for m in study.cfg["modes"] if m not in CONVERTED and (m, mapping, proc) not in done]
    return points


def phase_constrain(study: Any, executor: Any = None) -> None:
    """Constrained finetuning on the device: every mapping x procedure, the unconstrained
    reference, the SNN variants; one point each."""
    phase_timesteps(study, executor)
    records = run_phase(study, constrain_points(study), executor, "constrained finetuning")
    c = study.results["constrain"]
    for rec in records:
        p, res = rec["point"], rec["result"]
        if p["kind"] == "constrain":
            keys = {(m, p["mapping"], p["procedure"]) for m in constrain_group(study.cfg, p["group"])[0]}
        elif p["kind"] == "reference":
            if p["group"] == "qcfs":
                c["reference_qcfs"] = res["reference_qcfs"]
                continue
            c["reference"] = res["reference"]
            keys = {(m, "none", "unconstrained") for m in constrain_group(study.cfg, p["group"])[0]}
        else:
            keys = {(p["mode"], p["mapping"], p["procedure"])}
        new = [r for r in res["runs"] if (r["mode"], r["mapping"], r["procedure"]) in keys]
        c["runs"] = [r for r in c["runs"] if (r["mode"], r["mapping"], r["procedure"]) not in keys] + new
    study.save()


def phase_lowt(study: Any, executor: Any = None) -> None:
    """The low-T study, one point per seed (:mod:`experiments.lowlatency`)."""
    from .lowlatency import merge_lowt, start_lowt

    todo = start_lowt(study)
    phase_networks(study, executor)
    points = [{"task": "lowt", "seed": s} for s in todo]
    merge_lowt(study, [r["result"] for r in run_phase(study, points, executor, "low-T study")])
    study.save()


PHASES: list[tuple[str, Callable[[Any, Any], None]]] = [
    ("train", phase_networks), ("timestep sweep", phase_timesteps), ("headline", phase_headline),
    ("rate sweep", phase_rates), ("energy", phase_energy), ("constrained finetuning", phase_constrain),
    ("low-T study", phase_lowt)]
