"""Measuring and formatting for the side-by-side speed benchmarks (:mod:`xbar.bench`).

Times are the best of ``repeats`` interleaved rounds (robust to other load on the machine).
Peak memory (measured on the warm-up run): on CUDA ``torch.cuda.max_memory_allocated`` above
the allocation before the run; on the CPU the peak of live tensor memory reconstructed from the
profiler's allocation events (``torch.profiler``, ``profile_memory=True``): tensors only, not
the process's resident set (allocator caches, libraries).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

__all__ = ["BenchResult", "format_result", "measure", "peak_memory"]


@contextlib.contextmanager
def _quiet_stderr() -> Any:
    """Silence file descriptor 2 (the profiler's C++ start/stop messages)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float | None]:
    """Run ``fn``; return its result and its peak tensor memory above the start, MiB.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the profiler's allocation events
    (``profile_memory=True``), summed in time order; this is the tensor memory the run held
    at its peak, not the process's resident set (None when the profiler is unavailable).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    try:
        from torch.profiler import ProfilerActivity, profile

        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
        events = sorted((e for e in prof.events() if e.self_cpu_memory_usage),
                        key=lambda e: e.time_range.start)
    except (RuntimeError, AttributeError):
        return fn(), None
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return out, peak / 2 ** 20


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def measure(fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int = 3,
            ) -> dict[str, dict[str, Any]]:
    """Warm up (measuring peak memory and keeping the result), then time ``repeats``
    interleaved rounds; returns ``{name: {"result", "mem_mib", "times"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        result, mem = peak_memory(fn, device)
        out[name] = {"result": result, "mem_mib": mem, "times": []}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name]["times"].append(_timed(fn, device))
    return out


@dataclass
class BenchResult:
    """Everything ``xbar bench`` prints.

    Attributes:
        samples: benchmark images; device: torch device name; threads: torch CPU threads;
        repeats: timed rounds (the best is kept).
        ann_acc: the ANN's test accuracy on the benchmark images (fraction).
        inference: ``{T: {config: {"result": #correct, "mem_mib", "times": [s, ...]}}}``.
        bptt: ``{name: {"result": final loss, "mem_mib", "times"}}``, or None when not run.
        bptt_shape: ``(T, batch, steps)`` of the BPTT rounds.
        model: the zoo name of the benchmarked model; model_info: what it is, in words.
        skipped: ``{config: why it was not run}``.
        bptt_note: why the BPTT comparison was not run (when ``bptt`` is None).
        batch: images per inference batch.
        tolerance: accuracy points by which xbar float and spikingjelly (same input) may differ
            before a warning.
    """

    samples: int
    device: str
    threads: int
    repeats: int
    ann_acc: float
    inference: dict[int, dict[str, dict[str, Any]]]
    bptt: dict[str, dict[str, Any]] | None
    bptt_shape: tuple[int, int, int]
    model: str = "mlp"
    model_info: str = "784-100-10 MLP"
    skipped: dict[str, str] = field(default_factory=dict)
    bptt_note: str = ""
    batch: int = 1000
    tolerance: float = 0.2


def _ratio(best: dict[str, float], num: str, den: str, width: int) -> str:
    if num not in best or den not in best:
        return f"{'n/a':>{width}} "
    return f"{best[num] / best[den]:>{width}.2f}x"


def _inference_lines(res: BenchResult) -> tuple[list[str], list[str]]:
    """The per-configuration table and the accuracy warnings."""
    lines = [f"{'T':>4}  {'configuration':<22}{'time s':>9}{'ms/batch':>10}{'acc %':>8}{'peak MiB':>10}"]
    batches = -(-res.samples // res.batch)
    warnings = []
    for t, rows in res.inference.items():
        for name, r in rows.items():
            best = min(r["times"])
            mem = "n/a" if r["mem_mib"] is None else f"{r['mem_mib']:.0f}"
            acc = 100 * r["result"] / res.samples
            lines.append(f"{t:>4}  {name:<22}{best:>9.3f}{1000 * best / batches:>10.1f}{acc:>8.2f}{mem:>10}")
        for name in res.skipped:
            lines.append(f"{t:>4}  {name:<22}{'not run':>9}")
        if "xbar float" in rows and "spikingjelly" in rows:
            a_float = 100 * rows["xbar float"]["result"] / res.samples
            a_sj = 100 * rows["spikingjelly"]["result"] / res.samples
            if abs(a_float - a_sj) > res.tolerance:
                warnings.append(f"WARNING: T={t}: xbar float {a_float:.2f}% and spikingjelly {a_sj:.2f}% "
                                f"differ by {abs(a_float - a_sj):.2f} points (> {res.tolerance:g}) "
                                f"on the same input")
    reasons: dict[str, list[str]] = {}
    for name, why in res.skipped.items():
        reasons.setdefault(why, []).append(name)
    lines += [f"{', '.join(names)}: not run: {why}" for why, names in reasons.items()]
    return lines, warnings


def _ratio_lines(res: BenchResult) -> list[str]:
    lines = ["ratios of best times (x+m = xbar crossbar+meter):",
             f"{'T':>4}{'sj / x+m':>12}{'sj own enc / x+m':>19}{'x+m / xbar float':>19}"
             f"{'x+m / crossbar':>17}{'torch loop / x+m':>19}"]
    xm = "xbar crossbar+meter"
    for t, rows in res.inference.items():
        best = {k: min(v["times"]) for k, v in rows.items()}
        lines.append(f"{t:>4}{_ratio(best, 'spikingjelly', xm, 11)}{_ratio(best, 'spikingjelly own enc', xm, 18)}"
                     f"{_ratio(best, xm, 'xbar float', 18)}{_ratio(best, xm, 'xbar crossbar', 16)}"
                     f"{_ratio(best, 'torch loop', xm, 18)}")
    return lines


def _bptt_lines(res: BenchResult) -> list[str]:
    if res.bptt is None:
        return [f"BPTT step: not run: {res.bptt_note}" if res.bptt_note else "BPTT step: not run"]
    tb, bb, steps = res.bptt_shape
    bx, bs = min(res.bptt["xbar"]["times"]), min(res.bptt["spikingjelly"]["times"])
    mem = {k: ("n/a" if v["mem_mib"] is None else f"{v['mem_mib']:.0f} MiB") for k, v in res.bptt.items()}
    lines = [f"BPTT step (T={tb}, batch {bb}, {steps} steps, Adam): xbar {1000 * bx / steps:.1f} ms/step "
             f"(peak {mem['xbar']}), spikingjelly {1000 * bs / steps:.1f} ms/step (peak {mem['spikingjelly']}); "
             f"spikingjelly / xbar = {bs / bx:.2f}x; final losses {res.bptt['xbar']['result']:.4f} / "
             f"{res.bptt['spikingjelly']['result']:.4f}"]
    own = res.bptt.get("spikingjelly own enc")
    if own is not None:
        bo = min(own["times"])
        lines.append(f"  spikingjelly with its own Poisson encoder: {1000 * bo / steps:.1f} ms/step; "
                     f"spikingjelly own enc / xbar = {bo / bx:.2f}x (other random spikes: final loss "
                     f"{own['result']:.4f})")
    return lines


def format_result(res: BenchResult) -> str:
    """The table ``xbar bench`` prints: the model, times, accuracies, peak memory, ratios,
    the BPTT comparison (or why it was not run) and the accuracy warnings."""
    header = (f"xbar bench: model {res.model} ({res.model_info}) on MNIST, ANN test accuracy "
              f"{100 * res.ann_acc:.2f}%, {res.samples} test images in batches of {res.batch}, "
              f"device {res.device}, {res.threads} threads, best of {res.repeats}")
    table, warnings = _inference_lines(res)
    lines = [header, "", *table, "", *_ratio_lines(res), "", *_bptt_lines(res)]
    return "\n".join(lines + ([""] + warnings if warnings else []))
