"""experiments.graph_acceptance: cache names keep every training choice apart (the default name
is the one earlier runs wrote) and the table names each row's training."""

from __future__ import annotations

from xbar.experiments.graph_acceptance import _stem, table


def test_cache_names() -> None:
    assert _stem("bn-cnn", 3, 0, False, 0) == "bn-cnn-e3-s0"
    names = {_stem("bn-cnn", 3, n, c, s) for n in (0, 8) for c in (False, True) for s in (0, 1)}
    assert len(names) == 8


def test_table_columns() -> None:
    row = {"model": "bn-cnn", "lr_schedule": "cosine", "train_seed": 2, "test_samples": 10000,
           "input_noise": 0, "poisson_seed": 3, "percentile": 99.99, "v_init": 0.5, "bias_correction": 512,
           "ann_acc": 0.9926, "ann_seed4_acc": 0.9916, "snn": {16: {"acc": 0.9905}}, "sj": {}}
    lines = table([row]).splitlines()
    assert "train lr  train seed" in lines[0] and "SNN T=16 %" in lines[0]
    cells = lines[1].split()
    assert cells[:4] == ["bn-cnn", "cosine", "2", "10000"] and "99.05" in cells and "512" in cells
