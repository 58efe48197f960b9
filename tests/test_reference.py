"""The published curves load, average over seeds, and fail politely."""
import numpy as np
import pytest

from mbdpo_lab.reference import (REFERENCE_CSV, reference_curve, reference_curves, reference_methods,
                                 reference_tasks)


def test_shipped_csv_exists():
    assert REFERENCE_CSV.exists(), "mbdpo_lab/data/reference/paper_curves.csv is missing"
    assert (REFERENCE_CSV.parent / "README.md").exists()


def test_cartpole_swingup_mean_over_seeds():
    curves = reference_curves("cartpole-swingup")
    assert set(curves) == {"mbdpo", "tdmpc2"}
    mbdpo, tdmpc2 = curves["mbdpo"], curves["tdmpc2"]
    assert mbdpo.steps[0] == 0 and np.all(np.diff(mbdpo.steps) > 0)
    assert mbdpo.seeds[1] == 3
    # seeds 1-3 at 100k: 878.1, 882.9, 882.0 (MBDPO); 860.5, 789.8, 867.9 (TD-MPC2)
    assert mbdpo.at(100_000) == pytest.approx((878.1 + 882.9 + 882.0) / 3)
    assert tdmpc2.at(100_000) == pytest.approx((860.5 + 789.8 + 867.9) / 3)
    assert np.all((mbdpo.mean >= 0) & (mbdpo.mean <= 1000)) and np.all(mbdpo.std >= 0)


def test_names_are_normalised_and_unknown_is_none(tmp_path):
    assert reference_curve("mbdpo", "Ball_in_Cup-Catch").task == "cup-catch"
    assert reference_curve("mbdpo", "no-such-task") is None
    assert reference_curves("no-such-task") == {}
    assert "cartpole-swingup" in reference_tasks("mbdpo")
    assert {"mbdpo", "tdmpc2"} <= set(reference_methods("cartpole-swingup"))
    with pytest.raises(FileNotFoundError, match="mbdpo_lab/data/reference"):
        reference_curve("mbdpo", "cartpole-swingup", path=tmp_path / "missing.csv")


def test_clipped_keeps_one_point_beyond():
    curve = reference_curve("mbdpo", "cartpole-swingup").clipped(50_000)
    assert curve.steps.tolist() == [0, 100_000]
    with pytest.raises(KeyError):
        curve.at(50_000)


def test_custom_csv(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("method,task,step,seed,reward\nm,t,0,1,0\nm,t,10,1,4\nm,t,10,2,6\nm,t,20,1,\n")
    curve = reference_curve("m", "t", path=path)
    assert curve.steps.tolist() == [0, 10] and curve.mean.tolist() == [0.0, 5.0] and curve.std[1] == 1.0


def test_learning_curves_share_a_panel_per_task(tmp_path):
    """Runs of one task (e.g. eta twins) are drawn in one panel; each task gets its own."""
    import json

    from PIL import Image

    from mbdpo_lab.analysis.curves import plot_runs, read_eval_curve

    header = "step,kind,episode_return,eval_return,eval_return_std\n"
    runs = []
    specs = [("a", "cartpole-swingup", 0.01), ("b", "cartpole-swingup", 0.0), ("c", "reacher-easy", 0.01)]
    for name, task, eta in specs:
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"task": task, "eta": eta}))
        (run / "metrics.csv").write_text(header + "500,episode,10,,\n1000,eval,,100,5\n2000,eval,,300,\n")
        runs.append(run)
    task, steps, mean, std = read_eval_curve(runs[0])
    assert task == "cartpole-swingup" and list(steps) == [1000, 2000] and list(mean) == [100, 300]
    assert list(std) == [5, 0]  # an empty std reads as 0
    out = plot_runs(runs, tmp_path / "curves.png")
    width, height = Image.open(out).size
    assert width == round(2 * 5.2 * 110) and height == round(3.8 * 110)  # cartpole (two runs) and reacher
    for name, task in (("d", "walker-walk"), ("e", "cheetah-run")):  # four tasks wrap into two rows
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"task": task, "eta": 0.01}))
        (run / "metrics.csv").write_text(header + "1000,eval,,100,5\n")
        runs.append(run)
    width, height = Image.open(plot_runs(runs, tmp_path / "four.png")).size
    assert width == round(3 * 5.2 * 110) and height == round(2 * 3.8 * 110)


def test_a_goal_directed_task_draws_its_success_rate_beside_its_return(tmp_path):
    import json

    from mbdpo_lab.analysis.curves import learning_curves_figure, read_success_curve

    run = tmp_path / "jaco"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "jaco-reach-site", "eta": 0.01}))
    (run / "metrics.csv").write_text("step,kind,episode_return,eval_return,eval_return_std,eval_success\n"
                                     "125,episode,3,,,\n1000,eval,,40,5,0.2\n2000,eval,,180,9,0.8\n")
    steps, success = read_success_curve(run)
    assert list(steps) == [1000, 2000] and list(success) == [0.2, 0.8]
    fig = learning_curves_figure([run])
    ret, twin = fig.axes
    assert ret.get_ylim()[1] == 250  # 250 control steps of at most 1 reward each
    assert twin.get_ylabel() == "success rate" and list(twin.lines[0].get_ydata()) == [0.2, 0.8]
    assert "success rate" in [t.get_text() for t in ret.get_legend().get_texts()]
    other = tmp_path / "cartpole"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "cartpole-swingup"}))
    (other / "metrics.csv").write_text("step,kind,episode_return,eval_return,eval_return_std,eval_success\n"
                                       "1000,eval,,100,5,\n")
    assert read_success_curve(other) is None and len(learning_curves_figure([other]).axes) == 1


def test_curve_labels_name_what_differs_between_runs_of_a_panel():
    from mbdpo_lab.analysis.curves import run_labels

    smooth = {"preset": "cpu", "eta": 0.01, "energy_negatives": "smooth", "seed": 1}
    legacy = {"preset": "cpu", "eta": 0.01, "seed": 1}  # written before the energy-rule option: hardest
    twin = {**smooth, "eta": 0.0}
    assert run_labels([smooth, legacy, twin]) == ["mbdpo-lab (cpu preset), eta=0.01, smooth rule",
                                                  "mbdpo-lab (cpu preset), eta=0.01, hardest rule",
                                                  "mbdpo-lab (cpu preset), eta=0, smooth rule"]
    assert run_labels([smooth, {**smooth, "seed": 2}]) == ["mbdpo-lab (cpu preset), seed 1",
                                                          "mbdpo-lab (cpu preset), seed 2"]
    assert run_labels([smooth]) == ["mbdpo-lab (cpu preset)"]
