"""Seed statistics through rliable: intervals that behave, and curves that group seeds into arms."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mbdpo_lab.analysis.curves import seed_curve, seed_groups
from mbdpo_lab.statistics import aggregate, curve_band, performance_profile, probability_of_improvement


def test_iqm_and_mean_come_with_intervals_that_contain_them_and_shrink_with_more_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(500, 100, 3), rng.normal(500, 100, 30)
    est = aggregate({"few": few, "many": many}, reps=500)
    for arm in est.values():
        for e in arm.values():
            assert e.low <= e.point <= e.high
    assert est["few"]["mean"].point == pytest.approx(few.mean())
    width = {k: v["mean"].high - v["mean"].low for k, v in est.items()}
    assert width["many"] < width["few"]
    # the IQM ignores one wild seed, the mean does not
    wild = aggregate({"x": [500, 510, 490, 505, 495, 5000]}, reps=200)["x"]
    assert wild["IQM"].point < 520 < wild["mean"].point
    assert aggregate({"one": [700.0]})["one"]["IQM"].text() == "700.0 (1 run)"


def test_the_bootstrap_is_reproducible():
    scores = {"a": [100.0, 300, 250, 400]}
    assert aggregate(scores, reps=300, seed=3) == aggregate(scores, reps=300, seed=3)


def test_probability_of_improvement_orders_arms():
    better, worse = [800.0, 850, 900], [100.0, 150, 200]
    assert probability_of_improvement(better, worse, reps=300).point == 1.0
    assert probability_of_improvement(worse, better, reps=300).point == 0.0
    tie = probability_of_improvement([1.0, 2, 3], [1.0, 2, 3], reps=300)
    assert tie.point == pytest.approx(0.5) and tie.low < 0.5 < tie.high


def test_performance_profile_is_the_fraction_of_runs_above_each_threshold():
    point, ci = performance_profile({"a": [100.0, 500, 900]}, [0, 400, 950], reps=200)["a"]
    np.testing.assert_allclose(point, [1, 2 / 3, 0])
    assert ci.shape == (2, 3)


def test_curve_band_per_step():
    returns = np.array([[100, 400, 800], [50, 300, 700], [120, 500, 900.0], [90, 350, 750]])
    iqm, low, high = curve_band(returns, reps=300)
    assert iqm.shape == low.shape == high.shape == (3,)
    assert np.all(low <= iqm) and np.all(iqm <= high) and np.all(np.diff(iqm) > 0)


def test_runs_that_differ_only_in_seed_form_one_arm(tmp_path):
    configs = [{"task": "t", "eta": 0.01, "seed": 1}, {"task": "t", "eta": 0.0, "seed": 1},
               {"task": "t", "eta": 0.01, "seed": 2, "device": "cuda:0"}]
    assert seed_groups(configs) == [[0, 2], [1]]
    # a run written before a field existed joins the arm of a newer run that has that field's default
    from mbdpo_lab.config import make_config

    new = make_config("cpu", task="cartpole-swingup", seed=1).to_dict()
    old = {k: v for k, v in new.items() if k not in ("task_dim", "seed_actions")}
    old["seed"] = 2
    assert seed_groups([new, old]) == [[0, 1]]
    runs = []
    header = "step,kind,episode_return,eval_return,eval_return_std\n"
    for seed, evals in ((1, [(1000, 100), (2000, 300)]), (2, [(1000, 200), (2000, 500), (3000, 600)])):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"task": "t", "seed": seed}))
        (run / "metrics.csv").write_text(header + "".join(f"{s},eval,,{r},0\n" for s, r in evals))
        runs.append(run)
    steps, iqm, low, high = seed_curve(runs)
    assert list(steps) == [1000, 2000]  # only steps every seed evaluated
    np.testing.assert_allclose(iqm, [150, 400])
    assert list(low) == [100, 300] and list(high) == [200, 500]


def test_the_arms_table_reports_seed_intervals_and_the_probability_of_improvement():
    from mbdpo_lab.doc_tables import arms_table

    rows = [dict(task="t", eta=eta, seed=str(s), steps="30000", eval_30k=str(v))
            for eta, vals in (("0.01", [800, 850, 900]), ("0", [100, 150, 200])) for s, v in enumerate(vals)]
    rows.append(dict(task="u", eta="0.01", seed="0", steps="14393", eval_30k=""))
    table = arms_table(rows, ("task", "eta"), [("eval_30k", "eval 30k", 0)],
                       improvement=("eval_30k", "eta", "0.01", "0"), steps="steps").splitlines()
    assert table[0] == "| task | eta | seeds | steps | eval 30k | P(eta 0.01 beats eta 0) on eval_30k |"
    assert table[2].startswith("| t | 0 | 3 | 30k, 30k, 30k | 150 [")
    assert table[3].startswith("| t | 0.01 | 3 | 30k, 30k, 30k | 850 [") and table[3].endswith("| 1.00 [1.00, 1.00] |")
    assert table[4] == "| u | 0.01 | 1 | 14k | – | – |"
