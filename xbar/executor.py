"""Where sweep points run: one :class:`concurrent.futures.Executor` for every case.

:func:`make_executor` returns

* ``workers=1``: :class:`SerialExecutor`, the points run one after another in this process;
* ``workers=N`` (default: one per core): :class:`LocalPool`, ``N`` spawned processes, each with
  one torch thread (``torch.set_num_threads(1)`` in the worker initializer), so that ``N``
  workers use ``N`` cores and do not oversubscribe them; a pool whose worker died is replaced
  on the next ``submit``;
* ``scheduler=ADDRESS`` (or the environment variable ``DASK_SCHEDULER_ADDRESS``):
  :class:`DaskExecutor`, the points run on a Dask distributed cluster through
  ``distributed.Client(ADDRESS).get_executor()`` (``pip install 'xbar[dask]'``).

The caller sees the same interface in each case (``submit``, futures, ``shutdown``); nothing
else differs between a laptop and a cluster. Whatever the executor, :func:`xbar.grid_run.run_points`
also fixes torch to one thread while a point runs, so a point's numbers do not depend on where
it ran (torch's CPU kernels may sum in a thread-count-dependent order).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def one_thread() -> None:
    """Worker initializer: one torch intra-op thread (and one inter-op thread where still allowed)."""
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any parallel work ran in this process
        pass


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process; the future is done on return.

    A call that raises gives a future holding the exception, as a pool's would.
    """

    in_flight = 1  # run_points submits one call at a time: each finished point is saved before the next runs

    def __init__(self) -> None:
        self._shut = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._shut:
            raise RuntimeError("cannot submit after shutdown")
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - a KeyboardInterrupt stops the run
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shut = True

    def __repr__(self) -> str:
        return "SerialExecutor()"


class LocalPool(Executor):
    """``workers`` spawned processes, one torch thread each; rebuilt after a worker died.

    Args:
        workers: number of processes (>= 1).
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be >= 1, got {workers}")
        self.workers = int(workers)
        self._pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=one_thread)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:  # a worker died: its futures failed, the pool is unusable
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __repr__(self) -> str:
        return f"LocalPool(workers={self.workers})"


class DaskExecutor(Executor):
    """The points on a Dask distributed cluster: ``distributed.Client(address).get_executor()``.

    Args:
        address: the scheduler, e.g. ``tcp://10.0.0.1:8786``; or an existing
            ``distributed.Client`` (not closed on shutdown then).

    Raises:
        ImportError: ``distributed`` is not installed (``pip install 'xbar[dask]'``).
    """

    def __init__(self, address: Any) -> None:
        try:
            import distributed
        except ImportError:
            raise ImportError("--scheduler needs Dask distributed: pip install 'xbar[dask]'") from None
        self._own = not isinstance(address, distributed.Client)
        self.client = distributed.Client(address) if self._own else address
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self._executor.shutdown(wait=False)
        else:
            self._executor.shutdown(wait=wait)
        if self._own:
            self.client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client.scheduler.address})"


def make_executor(workers: int | None = None, scheduler: Any = None) -> Executor:
    """The executor for a run (module docstring).

    Args:
        workers: local processes; None means one per core, 1 means serial in this process.
            Ignored with a scheduler (the cluster's workers decide).
        scheduler: a Dask scheduler address (or ``distributed.Client``); None reads
            ``$DASK_SCHEDULER_ADDRESS`` and runs locally when that is unset too.

    Returns:
        A :class:`concurrent.futures.Executor`; shut it down when done (or use ``with``).
    """
    scheduler = scheduler if scheduler is not None else (os.environ.get(SCHEDULER_ENV) or None)
    if scheduler is not None:
        return DaskExecutor(scheduler)
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers: must be >= 1, got {n}")
    return SerialExecutor() if n == 1 else LocalPool(n)


def describe(executor: Executor) -> str:
    """A short human description (``serial``, ``4 local workers``, ``Dask at tcp://...``)."""
    if isinstance(executor, SerialExecutor):
        return "serial, in this process"
    if isinstance(executor, LocalPool):
        return f"{executor.workers} local worker processes"
    if isinstance(executor, DaskExecutor):
        n = len(executor.client.scheduler_info().get("workers", {}))
        return f"Dask at {executor.client.scheduler.address} ({n} workers)"
    return repr(executor)
