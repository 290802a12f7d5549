"""CSV files of a study's results (one per sweep), written from ``results.json``'s dict."""

from __future__ import annotations

import csv
from pathlib import Path


def _write(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_csvs(results: dict, out_dir: Path) -> list[Path]:
    """Write ``ann.csv``, ``timesteps.csv``, ``rates.csv``, ``constrain.csv`` and ``energy.csv``.

    Args:
        results: the study's results dict (schema of ``results.json``).
        out_dir: the results folder.

    Returns:
        The files written (a sweep that has no rows gets no file).
    """
    out_dir = Path(out_dir)
    tables: dict[str, list[dict]] = {"ann": [], "timesteps": [], "rates": [], "constrain": [], "energy": []}
    for r in results.get("ann", {}).get("per_seed", []):
        tables["ann"].extend({"seed": r["seed"], **h} for h in r["history"])
    for mode, rec in results.get("modes", {}).items():
        tables["timesteps"].extend({"mode": mode, **row} for row in rec.get("timesteps", []))
        tables["rates"].extend({"mode": mode, **row} for row in rec.get("rates", []))
        for layer in rec.get("energy", {}).get("layers", []):
            tables["energy"].append({"mode": mode, "T": rec.get("best_T"), **layer})
    for run in results.get("constrain", {}).get("runs", []):
        head = {"mode": run["mode"], "mapping": run["mapping"], "procedure": run["procedure"], "T": run["T"]}
        tables["constrain"].extend({**head, **h} for h in run["history"])
    written = []
    for name, rows in tables.items():
        if rows:
            path = out_dir / f"{name}.csv"
            _write(path, rows)
            written.append(path)
    return written
