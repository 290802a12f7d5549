"""The studies built on xbar: sweeps, constrained finetuning, device comparison, plots, report."""
