"""The constrained-finetuning part of ``xbar reproduce``'s report: which runs there are, the
section's table and caption, and the unconstrained reference they are compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xbar.experiments.report_format import NOT_RUN, _num, _plot, _table, images_phrase, pct, plain


def _history_sorted(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A run's per-epoch history, ascending by epoch."""
    return sorted(run.get("history") or [], key=lambda h: _num(h.get("epoch")) or 0.0)


def final_entry(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The last epoch of a constrained run's history (empty dict when it has none).

    Per-epoch test accuracy is measured on a subset; when the last epoch also has the full
    test set's accuracy (``test_acc_full``), that figure is returned as ``test_acc``.
    """
    history = _history_sorted(run)
    if not history:
        return {}
    last = dict(history[-1])
    if last.get("test_acc_full") is not None:
        last["test_acc"] = last["test_acc_full"]
    return last


REFERENCE = "unconstrained"  # procedure name of the runs without constraints (the reference)


def constrain_runs(results: Mapping[str, Any], mode: str | None = None) -> list[Mapping[str, Any]]:
    """The constrained-finetuning runs with a history, optionally those of one mode (the
    unconstrained reference runs are not among them: :func:`reference_runs`)."""
    runs = (results.get("constrain") or {}).get("runs") or []
    return [r for r in runs if r.get("history") and r.get("procedure") != REFERENCE
            and (mode is None or r.get("mode") == mode)]


def reference_runs(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The converted modes of the ANN finetuned the same way without constraints."""
    runs = (results.get("constrain") or {}).get("runs") or []
    return [r for r in runs if r.get("history") and r.get("procedure") == REFERENCE]


def best_val_entry(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The epoch with the highest (subset) validation accuracy, the earliest on ties (empty
    dict when no epoch has one)."""
    rows = [h for h in _history_sorted(run) if _num(h.get("val_acc")) is not None]
    return max(rows, key=lambda h: (_num(h["val_acc"]), -(_num(h.get("epoch")) or 0.0))) if rows else {}


def study_procedure_run(results: Mapping[str, Any], mode: str) -> Mapping[str, Any] | None:
    """The mode's run with the study's setup: mapping "clip", procedure "study"."""
    return next((r for r in constrain_runs(results, mode)
                 if r.get("mapping") == "clip" and r.get("procedure") == "study"), None)


def best_constrained_run(results: Mapping[str, Any], mode: str) -> Mapping[str, Any] | None:
    """The mode's constrained run with the highest final-epoch validation accuracy.

    The choice is made on validation (falling back to test only when a run has no validation
    figure), so the test accuracy reported for it is not selected on the test set.
    """
    def key(run: Mapping[str, Any]) -> float:
        last = final_entry(run)
        val = _num(last.get("val_acc"))
        return val if val is not None else (_num(last.get("test_acc")) or 0.0)

    runs = constrain_runs(results, mode)
    return max(runs, key=key) if runs else None


def _run_label(run: Mapping[str, Any]) -> str:
    """``mapping + procedure`` of a constrained run."""
    return f"{run.get('mapping', '?')} + {run.get('procedure', '?')}"


def _row(mode: str, mapping: str, procedure: str, run: Mapping[str, Any]) -> list[str]:
    """A table row: epochs, epoch-0 and final subset accuracy, full-test final, best-val epoch."""
    history = _history_sorted(run)
    best = best_val_entry(run)
    return [mode, mapping, procedure, plain(run.get("T")), plain(history[-1].get("epoch")),
            pct(history[0].get("test_acc")), pct(history[-1].get("test_acc")),
            pct(final_entry(run).get("test_acc")), pct(best.get("test_acc")), plain(best.get("epoch"))]


def _constrain_section(results: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    """Constrained finetuning: plot and a table of epoch-0, final and best-val-epoch test
    accuracy, with the unconstrained reference finetuned the same way."""
    runs = constrain_runs(results)
    lines = ["## Hardware constraints", ""]
    if not runs:
        return lines + [NOT_RUN, ""]
    device = (results.get("constrain") or {}).get("device", "?")
    lines += [f"Device: `{device}`. Epoch 0 is the accuracy with the constraints applied before "
              "any finetuning. Procedure \"study\" re-applies the constraints after each epoch, as "
              "the study did; \"hardware-aware\" trains through the snapping with a "
              "straight-through gradient; \"unconstrained\" is the reference: the same ANN "
              "finetuned with the same optimiser, batches and epochs, without constraints (float "
              "weights), then converted the same way.", ""]
    lines += _plot(plots, "constrained_finetuning", "Constrained finetuning") + [""]
    rows = [_row(str(r.get("mode", "?")), str(r.get("mapping", "?")), str(r.get("procedure", "?")), r)
            for r in runs]
    rows += [_row(str(r.get("mode", "?")), "none (float)", f"{REFERENCE} (reference)", r)
             for r in reference_runs(results)]
    ref = (results.get("constrain") or {}).get("reference") or {}
    if ref.get("history"):
        rows.append(_row("ANN (not converted)", "none (float)", f"{REFERENCE} (reference)", ref))
    lines += _table(["Mode", "Mapping", "Procedure", "T", "Epochs", "Epoch-0 acc", "Final acc",
                     "Final acc, full test set", "Acc at best-val epoch", "Best-val epoch"], rows)
    ann = _num((results.get("ann") or {}).get("test_acc_mean"))
    seeds = len(results.get("seeds") or [])
    note = (f" The ANN before finetuning: {pct(ann)} on {images_phrase(results, 'test')} (mean over {seeds} seed(s))."
            if ann is not None else "")
    return lines + ["", "Test accuracy on the per-epoch test subset, except \"Final acc, full "
                    f"test set\" ({images_phrase(results, 'test')}, last epoch). \"Acc at best-val epoch\" is the "
                    "subset test accuracy at the epoch with the best subset validation accuracy "
                    "(the epoch is picked on validation, never on test)." + note
                    + _constrain_scope(results), ""]


def _constrain_scope(results: Mapping[str, Any]) -> str:
    """What the constrained runs are, from the configuration: one seed, the evaluation subsets,
    every layer constrained, and the extra epochs beyond the ANN's training."""
    cfg = results.get("config") or {}
    c, a = cfg.get("constrain") or {}, cfg.get("ann") or {}
    parts = [" Every run starts from seed 0's networks (one seed, no spread)."]
    if c.get("val_limit") is not None and c.get("test_limit") is not None:
        parts.append(f" Per-epoch accuracies use {images_phrase(results, 'val', c['val_limit'])} and "
                     f"{images_phrase(results, 'test', c['test_limit'])}.")
    model = cfg.get("model", "mlp")
    which = " (both layers of the 784-100-10 MLP)" if model == "mlp" else f" of `{model}`"
    parts.append(f" xbar constrains every weight layer{which}; the study constrained one.")
    if c.get("epochs") is not None and a.get("epochs") is not None:
        parts.append(f" Each run finetunes {plain(c['epochs'])} more epochs (the ANN itself trained "
                     f"{plain(a['epochs'])}), so an accuracy above the ANN's can come from the extra "
                     "training")
        has_ref = bool(((results.get("constrain") or {}).get("reference") or {}).get("history"))
        parts.append(": compare each run with the unconstrained reference of the same mode."
                     if has_ref else "; no unconstrained finetuning of the same length was run "
                     "(configuration `constrain.unconstrained_reference`).")
    return "".join(parts)
