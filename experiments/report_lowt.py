"""The report's low-T section: accuracy and joules per sample against T for conversion, hybrid
BPTT finetuning and QCFS on the device's crossbars (``results["lowt"]``, written by
:mod:`experiments.lowlatency`), with captions built from the data: which seeds, which test
images, which device, what each network is."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .report_format import DASH, NOT_RUN, _num, _plot, _table, images_phrase, pct, plain, sci

__all__ = ["acceptance_rows", "lowt_markdown", "lowt_section", "summarise"]


def _stats(values: Sequence[float]) -> tuple[float, float, int]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0, len(values)


def summarise(results: Mapping[str, Any], key: str = "test_acc") -> dict[str, dict[int, tuple[float, float, int]]]:
    """``{network: {T: (mean, std, seeds)}}`` of ``key`` over the seeds, in the rows' order."""
    rows = ((results.get("lowt") or {}).get("per_seed")) or []
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        v = _num(r.get(key))
        if v is not None:
            out.setdefault(str(r.get("network")), {}).setdefault(int(r["T"]), []).append(v)
    return {n: {t: _stats(vs) for t, vs in by_t.items()} for n, by_t in out.items()}


def _ann_stats(results: Mapping[str, Any], key: str) -> tuple[float, float, int] | None:
    vals = [_num(a.get(key)) for a in (results.get("lowt") or {}).get("anns") or []]
    vals = [v for v in vals if v is not None]
    return _stats(vals) if vals else None


def _acc(stat: tuple[float, float, int] | None) -> str:
    if stat is None:
        return DASH
    mean, std, n = stat
    return pct(mean) if n == 1 else f"{100 * mean:.2f} ± {100 * std:.2f}%"


def _points(a: float, b: float) -> str:
    d = 100 * (a - b)
    return f"{d:+.2f}"


def _seeds_phrase(results: Mapping[str, Any]) -> str:
    seeds = sorted({int(a["seed"]) for a in (results.get("lowt") or {}).get("anns") or []})
    if len(seeds) == 1:
        return f"seed {seeds[0]} only, no spread"
    return f"mean ± std over seeds {', '.join(map(str, seeds))}"


def _images(results: Mapping[str, Any]) -> str:
    s = (results.get("lowt") or {}).get("settings") or {}
    cfg_limit = ((results.get("config") or {}).get("lowt") or {}).get("test_limit")
    phrase = images_phrase(results, "test", cfg_limit)
    n = s.get("test_images")
    return phrase if n is None or str(f"{int(n):,}") in phrase else f"{phrase} ({int(n):,} images)"


def acceptance_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """The checks of the low-T study, one row each: every hybrid against the conversions at its
    own training T, and QCFS against its own ANN (float and on the crossbars) at every T up to
    2 x its levels."""
    acc = summarise(results)
    s = (results.get("lowt") or {}).get("settings") or {}
    v = s.get("v_init")
    base_v = f"percentile v_init={v:g}" if v is not None else None
    rows = []
    for t in s.get("hybrid_timesteps") or []:
        h = acc.get(f"hybrid T={t}", {}).get(int(t))
        for base in ("percentile", base_v):
            b = acc.get(base or "", {}).get(int(t))
            if h is not None and b is not None:
                rows.append([f"hybrid T={t} vs {base}", plain(t), _acc(h), _acc(b), _points(h[0], b[0])])
    q = acc.get("qcfs", {})
    levels = s.get("qcfs_levels")
    for key, label in (("qcfs_ann", "its ANN (float)"), ("qcfs_ann_crossbar", "its ANN on the crossbars")):
        ann = _ann_stats(results, key)
        if ann is None:
            continue
        for t, stat in sorted(q.items()):
            if levels is None or t <= 2 * int(levels):
                rows.append([f"qcfs vs {label}", plain(t), _acc(stat), _acc(ann), _points(stat[0], ann[0])])
    return rows


def _describe(results: Mapping[str, Any]) -> list[str]:
    s = (results.get("lowt") or {}).get("settings") or {}
    cfg = results.get("config") or {}
    q = cfg.get("qcfs") or {}
    samples = s.get("finetune_samples")
    per_epoch = "every training image" if not samples else f"the first {int(samples):,} images of a shuffled pass"
    v = s.get("v_init", 0.5)
    init = "the seed's trained ANN" if q.get("init") == "ann" else "fresh weights"
    frames = q.get("input_noise")
    noise = (f", every batch also shown as the average of {int(frames)} Poisson frames" if _num(frames) else "")
    return [
        f"- `percentile`: the study's {plain(s.get('percentile'))}th-percentile conversion, initial potential 0.",
        f"- `percentile v_init={v:g}`: the same with every neuron starting at {v:g} of its threshold (the hybrids' start)."
        if v else "- The hybrids start from the `percentile` conversion (`surrogate.v_init` 0).",
        f"- `hybrid T=t`: that conversion finetuned by BPTT at T = t on the crossbars (straight through the programmed "
        f"weights; sigmoid surrogate; Adam, lr {plain(s.get('finetune_lr'))}, {plain(s.get('finetune_epochs'))} epoch(s) "
        f"over {per_epoch}).",
        f"- `qcfs`: the ANN with QCFS activations ({plain(s.get('qcfs_levels'))} levels, learned clips; "
        f"{plain(q.get('epochs'))} epoch(s) from {init}{noise}) converted with `norm=\"qcfs\"` (thresholds = clips, "
        "initial potential half the threshold).",
    ]


def _tables(results: Mapping[str, Any]) -> list[str]:
    acc, joules = summarise(results), summarise(results, "joules")
    ts = sorted({t for by_t in acc.values() for t in by_t})
    lines = _table(["Network", *[f"T={t}" for t in ts]],
                   [[n, *[_acc(by_t.get(t)) for t in ts]] for n, by_t in acc.items()])
    lines += ["", _caption(results), ""]
    lines += _table(["Network", *[f"T={t}" for t in ts]],
                    [[n, *[sci(joules.get(n, {}).get(t, (None,))[0], "J") for t in ts]] for n in acc])
    s = (results.get("lowt") or {}).get("settings") or {}
    lines += ["", f"Joules per sample at each T, as the energy meter measured them in the same test pass "
              f"(crossbar reads, neurons, spikes, and converters and digital periphery where the profile has them, priced "
              f"by `{s.get('device', '?')}`; "
              f"mean over the same seeds)."]
    anns = [(label, _ann_stats(results, key)) for key, label in
            (("ann", "ANN (float)"), ("ann_crossbar", "ANN on the crossbars"),
             ("qcfs_ann", "QCFS ANN (float)"), ("qcfs_ann_crossbar", "QCFS ANN on the crossbars"))]
    lines += ["", "The ANNs on the same test images: "
              + "; ".join(f"{label} {_acc(stat)}" for label, stat in anns if stat is not None) + "."]
    checks = acceptance_rows(results)
    if checks:
        lines += [""] + _table(["Comparison", "T", "Accuracy", "Against", "Difference"], checks)
        lines += ["", "Checks: each hybrid against the conversions at its own training T, and QCFS against its own "
                  "ANN (float, and on the crossbars) up to twice its levels; differences in percentage points of the "
                  f"means ({_seeds_phrase(results)}, {_images(results)})."]
    return lines


def _caption(results: Mapping[str, Any]) -> str:
    s = (results.get("lowt") or {}).get("settings") or {}
    return (f"Test accuracy on {_images(results)}, {_seeds_phrase(results)}; every network on `{s.get('device', '?')}` "
            f"crossbars (`xbar.to_crossbar` before `to_snn`: thresholds are currents), Poisson input at maximum rate "
            f"{plain(s.get('max_rate'))}, all networks of a seed on the same spike trains.")


def lowt_markdown(results: Mapping[str, Any]) -> list[str]:
    """The section's body (tables, descriptions, caption) without heading or plot."""
    if not (results.get("lowt") or {}).get("per_seed"):
        return [NOT_RUN]
    return [*_describe(results), "", *_tables(results)]


def lowt_section(results: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    """``## Few timesteps`` of ``report.md``: plot, tables and checks from ``results["lowt"]``."""
    lines = ["## Few timesteps: conversion, hybrid finetuning and QCFS on the device", ""]
    if not (results.get("lowt") or {}).get("per_seed"):
        return lines + ["This run has no low-T study (configuration `lowt.enabled`; "
                        "`python -m xbar.experiments.lowlatency` runs it alone).", ""]
    lines += _plot(plots, "lowt", "Accuracy and energy against T") + [""]
    return lines + lowt_markdown(results) + [""]
