"""`mbdpo-lab fidelity`: one row per training run, the same measures for both variants, merged into a CSV
from which docs/algorithm.md's table is generated."""
from __future__ import annotations

import csv
import math

import pytest

from mbdpo_lab.cli import main
from mbdpo_lab.config import make_config
from mbdpo_lab.doc_tables import fidelity_table
from mbdpo_lab.trainer import Trainer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    for variant in ("lab", "release"):
        cfg = make_config("tiny", variant=variant, device="cpu", steps=300, eval_every=100, seed_steps=100)
        Trainer(cfg, out_dir=root / variant).run()
    return root


def test_rows_measure_both_variants_alike_and_merge(runs, capsys):
    table = runs / "fidelity.csv"
    assert main(["fidelity", str(runs / "lab"), str(runs / "release"), "--csv", str(table), "--episodes", "1"]) == 0
    assert main(["fidelity", str(runs / "release"), "--csv", str(table), "--episodes", "1"]) == 0  # replaces its row
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["variant"] for r in rows] == ["lab", "release"]
    for r in rows:
        assert r["steps"] == "300" and 0 <= float(r["f_accuracy"]) <= 1 and 0 <= float(r["f_auc_uniform"]) <= 1
        assert math.isfinite(float(r["overestimation"])) and float(r["f_std_data"]) >= 0
        assert float(r["state_nn_distance"]) >= 0 and float(r["prior_distance"]) >= 0  # drift, from the replay
    text = fidelity_table(runs)
    assert "| cartpole-swingup | release | 1 | 0k |" in text and text.count("\n") == 3


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    assert main(["fidelity", str(tmp_path), "--csv", str(tmp_path / "f.csv")]) == 2
    assert "checkpoints/last.safetensors" in capsys.readouterr().err
