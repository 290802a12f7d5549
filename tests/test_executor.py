"""Executors and run_points: one torch thread per worker, the same bits serially, in a local pool
and on a Dask LocalCluster, resume after an interrupted run, failing points reported and retried."""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from xbar.executor import LocalPool, SerialExecutor, make_executor
from xbar.grid import expand, load_grid, point_key
from xbar.grid_point import evaluate_point, prepare_task
from xbar.grid_run import call_point, run_points

sys.path.insert(0, str(Path(__file__).parent))
from test_grid import tiny_grid  # noqa: E402

POINTS = [{"i": i, "sigma": s} for i in range(3) for s in (0.0, 0.5)]


def noisy(point: dict) -> dict:
    """A point function using the global generator (seeded per point by run_points)."""
    x = torch.randn(64, 64) @ torch.randn(64, 64)
    return {"value": float(x.sum()) * (1 + point["sigma"]), "threads": torch.get_num_threads()}


def flaky(marker: str, point: dict) -> dict:
    """Raises for i == 1; for i == 2 kills its worker process (its first time only, when marker says)."""
    if point["i"] == 1:
        raise ValueError(f"boom at {point['i']}")
    if point["i"] == 2 and point["sigma"] == 0.0 and marker and not os.path.exists(marker):
        Path(marker).write_text("died once")
        os._exit(3)
    return {"value": point["i"]}


class Interrupt:
    """Counts calls; raises KeyboardInterrupt at call ``stop`` (serial runs only)."""

    def __init__(self, stop: int | None = None) -> None:
        self.calls, self.stop = [], stop

    def __call__(self, point: dict) -> dict:
        if self.stop is not None and len(self.calls) == self.stop:
            raise KeyboardInterrupt
        self.calls.append(point_key(point))
        return {"i": point["i"]}


def test_pool_workers_use_one_torch_thread():
    with make_executor(2) as ex:
        assert isinstance(ex, LocalPool)
        assert [ex.submit(torch.get_num_threads).result() for _ in range(4)] == [1, 1, 1, 1]


def test_points_run_on_one_thread_everywhere_and_serial_restores(tmp_path):
    before = torch.get_num_threads()
    out = call_point(noisy, POINTS[0])
    assert out["ok"] and out["result"]["threads"] == 1 and torch.get_num_threads() == before
    assert make_executor(1).__class__ is SerialExecutor


def test_scheduler_from_environment_needs_a_cluster(monkeypatch):
    pytest.importorskip("distributed")
    import dask

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:1")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(OSError):
        make_executor(4)  # the environment wins over --workers; nothing listens there


def _results(run) -> list:
    return [(r["point"], r["result"]) for r in run.records]


def test_serial_equals_pool_in_any_order(tmp_path):
    serial = run_points(noisy, POINTS, SerialExecutor(), tmp_path / "a", progress=False)
    with make_executor(2) as ex:
        pool = run_points(noisy, POINTS[::-1], ex, tmp_path / "b", progress=False)
    assert sorted(map(json.dumps, _results(serial))) == sorted(map(json.dumps, _results(pool)))


def test_grid_rows_serial_pool_and_local_cluster_bit_identical(tmp_path):
    """The real point evaluation (conversion, programming noise, Poisson input, energy) of a tiny
    checkpoint: the same bits serially, with 2 local workers and on a 2-process Dask LocalCluster."""
    grid = load_grid(tiny_grid(tmp_path, "device: [seed-4bit, pcm]\nnoise.programming_sigma: [0.0, 0.03]\n"
                                         "timesteps: [3]\n"))
    task = prepare_task(grid, tmp_path, say=lambda _m: None)
    fn, points = partial(evaluate_point, task), expand(grid)
    runs = {"serial": run_points(fn, points, SerialExecutor(), tmp_path / "serial", progress=False)}
    with make_executor(2) as ex:
        runs["pool"] = run_points(fn, points, ex, tmp_path / "pool", progress=False)
    distributed = pytest.importorskip("distributed", reason="Dask distributed not installed (pip install 'xbar[dask]')")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, make_executor(scheduler=cluster.scheduler_address) as ex:
        runs["dask"] = run_points(fn, points, ex, tmp_path / "dask", progress=False)
        hosts = {r["pid"] for r in runs["dask"].records}
    assert len(hosts) >= 1 and os.getpid() not in hosts
    ref = _results(runs["serial"])
    assert len(ref) == 4 and all("energy_j" in res and "spikes" in res for _p, res in ref)
    assert _results(runs["pool"]) == ref and _results(runs["dask"]) == ref
    assert len({res["accuracy"] for p, res in ref if p["device"] == "pcm"} | {0}) >= 1


def test_resume_computes_only_the_remainder(tmp_path):
    first = Interrupt(stop=3)
    with pytest.raises(KeyboardInterrupt):
        run_points(first, POINTS, SerialExecutor(), tmp_path, progress=False)
    assert len(first.calls) == 3 and len(list((tmp_path / "points").glob("*.json"))) == 3
    assert not list((tmp_path / "points").glob(".*tmp"))
    again = Interrupt()
    run = run_points(again, POINTS, SerialExecutor(), tmp_path, progress=False)
    assert sorted(again.calls) == sorted(point_key(p) for p in POINTS[3:])
    assert sorted(run.skipped) == sorted(first.calls) and len(run.records) == len(POINTS)
    stale = Interrupt()
    run_points(stale, POINTS, SerialExecutor(), tmp_path, progress=False, fingerprint="other model")
    assert len(stale.calls) == len(POINTS)  # records of another model are recomputed


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_point_reported_retried_rest_complete(tmp_path, workers):
    messages = []
    marker = str(tmp_path / "died") if workers > 1 else ""
    with make_executor(workers) as ex:
        run = run_points(partial(flaky, marker), POINTS, ex, tmp_path / "out", progress=False, say=messages.append,
                         axes=["i", "sigma"])
    failed = {(f["point"]["i"], f["point"]["sigma"]) for f in run.failures}
    assert failed == {(1, 0.0), (1, 0.5)}
    assert all(f["attempts"] == 2 and f["error"] == "ValueError: boom at 1" for f in run.failures)
    assert {r["point"]["i"] for r in run.records} == {0, 2} and len(run.records) == 4
    assert any("i=1, sigma=0.0 failed (attempt 1 of 2; will retry): ValueError: boom at 1" in m for m in messages)
    if workers > 1:  # the point whose worker died was retried and finished; nothing else was lost
        assert any("worker died" in m and "running it again on its own" in m for m in messages)
    written = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert len(written) == 2 and "Traceback" in written[0]["traceback"]
