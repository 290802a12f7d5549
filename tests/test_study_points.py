"""`xbar reproduce` as points on an executor (experiments.study_points): the same numbers serially
and on two worker processes, whatever the thread count; a failing point is reported and the
others are kept; a rerun resumes from the saved points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TINY = {"seeds": 2, "ann.epochs": 1, "timesteps": [1, 2, 4], "rates.count": 2, "rates.val_limit": 100,
        "rates.test_limit": 100, "constrain.epochs": 1, "constrain.mappings": ["clip"],
        "constrain.procedures": ["study"], "constrain.snn_variants": ["clip/study"],
        "constrain.val_limit": 100, "constrain.test_limit": 100, "constrain.snn_samples_per_epoch": 100,
        "data.train_limit": 600, "data.val_limit": 150, "data.test_limit": 200, "data.calibration_samples": 100,
        "surrogate.epochs": 1, "surrogate.timesteps": 2, "lowt.timesteps": [1, 2], "lowt.hybrid_timesteps": [2],
        "lowt.finetune_samples": 100, "qcfs.epochs": 1}
TIMING = {"wall_s", "wall_time_s", "train_s", "seconds", "command"}


def _untimed(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


def _study(out: Path) -> Any:
    from xbar.experiments.config import load_config
    from xbar.experiments.study import Study

    return Study(load_config("quick", TINY), out, progress=False)


@pytest.mark.slow
def test_serial_equals_two_workers_at_any_thread_count(tmp_path: Path) -> None:
    import torch

    from xbar.executor import LocalPool

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the main process's count does not reach the points
        _study(tmp_path / "serial").run_all()
    finally:
        torch.set_num_threads(threads)
    with LocalPool(2) as pool:
        _study(tmp_path / "pool").run_all(pool)
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("serial", "pool"))
    for key in ("ann", "qcfs_ann", "modes", "constrain", "lowt"):
        assert _untimed(a[key]) == _untimed(b[key]), key
    for name in ("ann", "rates", "constrain", "energy", "lowt"):
        assert (tmp_path / "serial" / f"{name}.csv").read_text() == (tmp_path / "pool" / f"{name}.csv").read_text()
    points = list((tmp_path / "pool" / "points").glob("*.json"))
    assert len(points) >= 2 + 2 * 3, "one record per finished point (ANNs, BPTT modes x seeds, ...)"
    assert len({json.loads(p.read_text())["pid"] for p in points}) == 2, "the points ran in both workers"


def test_a_failing_point_is_reported_and_the_others_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xbar.experiments import study_points
    from xbar.grid_run import PointsFailed

    cfg = {**TINY, "seeds": 3, "modes": ["vanilla", "percentile"], "lowt.enabled": False}
    from xbar.experiments.config import load_config
    from xbar.experiments.study import Study

    study = Study(load_config("quick", cfg), tmp_path, progress=False)
    real = study_points.TASKS["ann"]

    def flaky(s: Any, p: dict) -> Any:
        if p["seed"] == 1:
            raise RuntimeError("planted failure")
        return real(s, p)

    monkeypatch.setitem(study_points.TASKS, "ann", flaky)
    with pytest.raises(PointsFailed, match=r"task=ann, seed=1: RuntimeError: planted failure") as err:
        study.step_train()
    assert [f["attempts"] for f in err.value.failures] == [2], "retried once"
    assert json.loads((tmp_path / "failures.json").read_text())[0]["point"] == {"task": "ann", "seed": 1}
    # the other seeds' networks are saved; a rerun computes only the failed one
    monkeypatch.setitem(study_points.TASKS, "ann", real)
    assert len(list((tmp_path / "points").glob("*.json"))) == 2
    calls: list[int] = []
    monkeypatch.setitem(study_points.TASKS, "ann", lambda s, p: calls.append(p["seed"]) or real(s, p))
    again = Study(load_config("quick", cfg), tmp_path, progress=False)
    again.step_train()
    assert calls == [1]
    assert [r["seed"] for r in again.results["ann"]["per_seed"]] == [0, 1, 2]
    assert not (tmp_path / "failures.json").exists()
