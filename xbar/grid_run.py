"""Running sweep points on any executor: seeding, result files, resume, retries, progress.

:func:`run_points` is the engine (usable by any sweep, not only grid files): it calls
``fn(point)`` for every point (a dict of plain values) on a :class:`concurrent.futures.Executor`
(:func:`xbar.executor.make_executor`) and

* **seeds** each call from the point alone: ``torch.manual_seed``, ``random.seed`` and
  ``numpy.random.seed`` get :func:`xbar.grid.point_seed` (a SHA-256 of the point's canonical
  JSON) and torch runs with **one thread** while the point runs, in every executor, serial
  included; so a point gives the same bits wherever and in whatever order it runs;
* **writes** each finished point at once, in this process, to ``OUT/points/KEY.json``
  (``KEY`` = :func:`xbar.grid.point_key`; temporary file + ``os.replace``, never half a file);
* **resumes**: a point whose file exists (same point, same ``fingerprint``) is not run again,
  so after Ctrl-C or a crash the same call computes only the rest;
* **retries** a point that raised, or whose worker died, once (``retries``); points lost
  with a dead worker run again one at a time (that first loss is not counted as an attempt:
  the death may have been another point's), so only a point that kills its worker when run
  alone counts a failure. A failure is reported with the point's values and the last line of its
  traceback; the other points go on. Final failures are listed in ``OUT/failures.json``;
* shows **one progress bar** over all points (tqdm, with an ETA), advanced as futures complete,
  on a cluster too.

:func:`run_grid` runs a validated grid file (:mod:`xbar.grid`) this way and writes its table and
plots (:mod:`xbar.grid_table`).
"""

from __future__ import annotations

import json
import os
import random
import socket
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .grid import canonical, expand, point_key, point_seed

POINTS_DIR = "points"


def call_point(fn: Callable[[dict], Any], point: dict) -> dict:
    """Run ``fn(point)`` seeded from the point, on one torch thread; never raises an ordinary error.

    Returns:
        ``{"ok": True, "result", "seconds", "host", "pid"}`` or ``{"ok": False, "error"`` (the
        traceback's last line) ``, "traceback", "host", "pid"}``.
    """
    import numpy as np
    import torch

    seed = point_seed(point)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    t0 = time.perf_counter()
    try:
        result = fn(dict(point))
    except Exception as exc:  # reported to the caller, which retries or lists it
        return {"ok": False, "error": traceback.format_exception_only(type(exc), exc)[-1].strip(),
                "traceback": traceback.format_exc(), **where}
    finally:
        torch.set_num_threads(threads)
    return {"ok": True, "result": result, "seconds": time.perf_counter() - t0, **where}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, allow_nan=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path, point: Mapping[str, Any], fingerprint: Any) -> dict | None:
    """The finished record of ``point`` at ``path``, or None (missing, unreadable, stale)."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("fingerprint") != fingerprint:
        return None
    if canonical(rec.get("point", {})) != canonical(point):
        return None
    return rec


def _label(point: Mapping[str, Any], axes: Iterable[str] | None) -> str:
    keys = list(axes) if axes is not None else list(point)
    return ", ".join(f"{k}={point[k]}" for k in keys if k in point)


class PointsFailed(RuntimeError):
    """Raised by a study whose points did not all finish; ``failures`` as in :class:`RunResult`."""

    def __init__(self, message: str, failures: list[dict]) -> None:
        super().__init__(message)
        self.failures = failures

    @classmethod
    def check(cls, run: "RunResult", out_dir: str | os.PathLike) -> None:
        """Raise for ``run``'s failures (each point's values and error), if it has any."""
        if not run.failures:
            return
        lines = "; ".join(f"{_label(f['point'], None)}: {f['error']}" for f in run.failures)
        raise cls(f"{len(run.failures)} point(s) failed ({lines}); the others are saved in "
                  f"{Path(out_dir) / POINTS_DIR}; run the same command again to retry the failed ones", run.failures)


@dataclass
class RunResult:
    """What :func:`run_points` did: ``records`` (finished points, in the order given),
    ``computed`` / ``skipped`` (point keys run now / found on disk) and ``failures``."""

    records: list[dict] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)


def run_points(fn: Callable[[dict], Any], points: list[dict], executor: Executor, out_dir: str | os.PathLike,
               retries: int = 1, progress: bool = True, fingerprint: Any = None, axes: Iterable[str] | None = None,
               desc: str = "points", say: Callable[[str], None] | None = None) -> RunResult:
    """Run ``fn`` on every point not finished yet (module docstring).

    Args:
        fn: ``fn(point) -> JSON-serialisable result``; picklable (a module-level function or a
            ``functools.partial`` of one) for process and cluster executors.
        points: dicts of plain JSON values; each is passed to ``fn`` (a copy).
        executor: from :func:`xbar.executor.make_executor` (or any ``Executor``).
        out_dir: results folder; records go to ``out_dir/points/``.
        retries: extra attempts for a point that raised or lost its worker.
        progress: show the progress bar.
        fingerprint: JSON value stored in each record; a record with another one is stale and
            recomputed (e.g. the model and data a grid evaluates on).
        axes: the point keys named in messages (default all).
        desc: the progress bar's label.
        say: where failure messages go (default: above the progress bar).

    Returns:
        A :class:`RunResult`.

    Raises:
        KeyboardInterrupt: after cancelling what had not finished; finished points are on disk.
    """
    from tqdm.auto import tqdm

    folder = Path(out_dir) / POINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    keys = [point_key(p) for p in points]
    if len(set(keys)) != len(keys):
        raise ValueError("points: two points are equal (every point needs its own values)")
    records: dict[str, dict] = {}
    result = RunResult()
    for key, p in zip(keys, points):
        rec = read_record(folder / f"{key}.json", p, fingerprint)
        if rec is not None:
            records[key] = rec
            result.skipped.append(key)
    todo = [(k, p) for k, p in zip(keys, points) if k not in records]
    bar = tqdm(total=len(points), initial=len(records), desc=desc, unit="point", disable=not progress,
               dynamic_ncols=True)
    say = say or (lambda msg: tqdm.write(msg))
    attempts = dict.fromkeys((k for k, _ in todo), 0)
    pending: dict[Future, tuple[str, dict]] = {}
    isolated: list[tuple[str, dict]] = []  # lost with a dead worker: retried one at a time
    alone: set[str] = set()

    def submit(key: str, p: dict) -> None:
        attempts[key] += 1
        pending[executor.submit(call_point, fn, p)] = (key, p)

    def finish(fut: Future, key: str, p: dict) -> None:
        try:
            out = fut.result()
        except BaseException as exc:  # noqa: BLE001 - the worker died, or the task was cancelled
            if isinstance(exc, KeyboardInterrupt):
                raise
            out = {"ok": False, "died": True, "traceback": "",
                   "error": f"worker died: {type(exc).__name__}: {exc}".rstrip(": ")}
        if out["ok"]:
            rec = {"key": key, "point": p, "fingerprint": fingerprint, "result": out["result"],
                   "seconds": out["seconds"], "attempts": attempts[key], "host": out["host"], "pid": out["pid"]}
            write_json_atomic(folder / f"{key}.json", rec)
            records[key] = rec
            result.computed.append(key)
            bar.update(1)
            return
        if out.get("died") and key not in alone:  # lost with a dead worker, maybe another point's: no attempt
            attempts[key] -= 1                      # counted; it runs again alone, where a death is its own
            alone.add(key)
            say(f"point {_label(p, axes)}: {out['error']}; running it again on its own")
            isolated.append((key, p))
            return
        again = attempts[key] <= retries
        say(f"point {_label(p, axes)} failed (attempt {attempts[key]} of {retries + 1}"
            f"{'; will retry' if again else ''}): {out['error']}")
        if not again:
            result.failures.append({"key": key, "point": p, "error": out["error"],
                                    "traceback": out.get("traceback", ""), "attempts": attempts[key]})
            bar.update(1)
            bar.set_postfix(failed=len(result.failures))
        elif key in alone:
            isolated.append((key, p))
        else:
            submit(key, p)

    queue = list(todo)
    window = int(getattr(executor, "in_flight", 0) or max(len(queue), 1))  # serial: 1, so each point is saved at once
    try:
        while queue or pending or isolated:
            while queue and len(pending) < window:
                submit(*queue.pop(0))
            if not pending:
                submit(*isolated.pop(0))
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                finish(fut, *pending.pop(fut))
    except KeyboardInterrupt:
        for fut in pending:
            fut.cancel()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    failures_path = Path(out_dir) / "failures.json"
    if result.failures:
        write_json_atomic(failures_path, result.failures)
    else:
        failures_path.unlink(missing_ok=True)
    result.records = [records[k] for k in keys if k in records]
    return result


def run_grid(grid: dict, out_dir: str | os.PathLike, executor: Executor, progress: bool = True,
             say: Callable[[str], None] = print) -> tuple[RunResult, list[Path]]:
    """Run every point of a validated grid (:func:`xbar.grid.load_grid`) and write its outputs.

    The model is prepared first, in this process (a zoo model is trained and cached in
    ``out_dir``); then the points run on ``executor``; then ``grid.csv`` (and ``grid.parquet``
    when pandas and pyarrow are importable) and one PNG per ``plots`` pair are written.

    Returns:
        ``(RunResult, paths written)``.
    """
    from .grid_point import evaluate_point, prepare_task
    from .grid_table import write_plots, write_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = prepare_task(grid, out, progress=progress, say=say)
    points = expand(grid)
    write_json_atomic(out / "grid.json", {"grid": grid, "task": task, "points": len(points)})
    run = run_points(partial(evaluate_point, task), points, executor, out, progress=progress,
                     fingerprint=task["fingerprint"], axes=list(grid["axes"]), desc=grid["name"])
    rows = [{**r["point"], **r["result"]} for r in run.records]
    paths = write_table(rows, list(grid["axes"]) + [k for k in grid["fixed"]], out / "grid")
    paths += write_plots(rows, grid["plots"], out)
    return run, paths
