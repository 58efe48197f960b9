"""Comparing runs: arms over seeds with rliable bands, in the analysis and in the dashboard's widget."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mbdpo_lab.analysis.curves import run_arms
from mbdpo_lab.config import make_config
from mbdpo_lab.trainer import CSV_COLUMNS

STEPS = (10_000, 20_000, 30_000)


def _run(root, name, finals, task="cartpole-swingup", **cfg):
    """A run directory as the trainer writes it, whose eval returns rise linearly to ``finals``."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(make_config("cpu", task=task, **cfg).to_dict()))
    with open(run / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerow(dict(step=500, kind="episode", episode_return=1.0))
        for k, step in enumerate(STEPS, 1):
            writer.writerow(dict(step=step, kind="eval", eval_return=finals * k / 3, eval_return_std=5.0))
    return run


@pytest.fixture
def runs(tmp_path):
    anchored = [_run(tmp_path / "sweep", f"eta=0.01-s{s}", v, seed=s) for s, v in ((1, 800), (2, 820), (3, 700))]
    plain = [_run(tmp_path / "sweep", f"eta=0-s{s}", v, seed=s, eta=0.0) for s, v in ((1, 500), (2, 640), (3, 560))]
    return tmp_path, anchored, plain


def test_runs_that_differ_only_in_seed_form_one_arm_with_a_band_over_seeds(runs):
    _, anchored, plain = runs
    arms = run_arms(anchored + plain + [anchored[0].parent / "missing"])
    assert [a.label for a in arms] == ["mbdpo-lab (cpu preset), eta=0.01", "mbdpo-lab (cpu preset), eta=0"]
    top = arms[0]
    assert top.steps.tolist() == list(STEPS) and len(top.runs) == 3 and "IQM of 3 seeds" in top.band
    assert np.all(top.low <= top.centre) and np.all(top.centre <= top.high) and top.high[-1] - top.low[-1] > 50
    np.testing.assert_allclose(top.final_returns(), [800, 820, 700])
    single = run_arms(anchored[:1])[0]  # one run: its spread over evaluation episodes
    np.testing.assert_allclose(single.high - single.low, 10.0)


def test_runs_of_different_tasks_are_refused(runs):
    root, anchored, _ = runs
    other = _run(root, "reacher", 100, task="reacher-easy")
    with pytest.raises(ValueError, match="different tasks"):
        run_arms([anchored[0], other])


def test_the_widget_finds_runs_and_draws_bands_and_the_improvement_table(runs):
    from mbdpo_lab.widgets.run_comparison import RunComparison

    root, anchored, plain = runs
    widget = RunComparison(root)
    assert set(widget.picker.options) == {str(r) for r in anchored + plain}
    assert widget.results.children == ()  # no empty figure in the page before a selection
    widget.select(anchored + plain)
    assert widget.figure in widget.results.children and len(widget.figure.data) == 6  # band edges and centre line per arm
    fill = [t for t in widget.figure.data if t.fill == "tonexty"]
    assert len(fill) == 2
    assert "P(beats mbdpo-lab (cpu preset), eta=0.01)" in widget.table.value
    assert "773.3 [700.0, 820.0]" in widget.table.value  # IQM of 3 seeds is their mean; CI from rliable
    # eta=0 loses every pairing of final returns against eta=0.01: P(improvement) is 0
    assert "0.00 [0.00, 0.00]" in widget.table.value
    widget.select([anchored[0], _run(root, "reacher", 100, task="reacher-easy")])
    assert "different tasks" in widget.message.value and widget.figure.data == () and widget.results.children == ()
