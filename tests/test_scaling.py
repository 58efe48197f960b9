"""The scaling study: sizes from a CPU-small one to the paper's, each pretrained for the same updates."""
from __future__ import annotations

from test_pretrain import TASKS, _dataset

from mbdpo_lab import model_sizes
from mbdpo_lab.cli import main
from mbdpo_lab.experiments import scaling


def test_the_paper_sizes_span_the_papers_parameter_range():
    """The paper's multi-task models run from 1.7M to 340M parameters (mt30: 24 observations, 6 actions)."""
    count = {size: model_sizes.parameters(model_sizes.size_config(size), 24, 6, 30) for size in model_sizes.SIZES}
    assert 1.6e6 < count["1"] < 1.75e6 and 335e6 < count["317"] < 345e6
    assert list(count.values()) == sorted(count.values())  # xs < s < m < 1 < 5 < 19 < 48 < 317
    assert model_sizes.memory_estimate(model_sizes.size_config("317"), 24, 6, 30)["state_gib"] > 5


def test_every_size_trains_for_the_same_updates_and_lands_in_one_csv(tmp_path):
    data = _dataset(tmp_path / "data")
    tiny = dict(episode_length=20, batch_size=16, horizon=3, num_samples=32, num_levels=4, num_elites=8,
                num_pi_trajs=4)
    path = scaling.run_sizes(data, ["xs", "s"], 4, tmp_path / "study", episodes=1, overrides=tiny, report=lambda m: None)
    rows = scaling.read_rows(path)
    assert [(r["size"], r["task"]) for r in rows] == [(s, t) for s in ("xs", "s") for t in (*TASKS, "all")]
    assert {r["updates"] for r in rows} == {"4"}
    xs, s = (int(next(r for r in rows if r["size"] == k)["parameters"]) for k in ("xs", "s"))
    assert xs < s
    # a size stopped before its first checkpoint starts clean (no rows of the lost attempt)
    (tmp_path / "study" / "size-m").mkdir()
    (tmp_path / "study" / "size-m" / "metrics.csv").write_text("update,kind\n3,train\n")
    scaling.run_sizes(data, ["m"], 2, tmp_path / "study", episodes=1, overrides=tiny, report=lambda m: None)
    with open(tmp_path / "study" / "size-m" / "metrics.csv") as fh:
        updates = [line.split(",")[0] for line in fh.read().splitlines()[1:]]
    assert "3" not in updates and updates[-1] == "2"
    # run again with more updates: each size resumes where it stopped
    path = scaling.run_sizes(data, ["xs"], 6, tmp_path / "study", episodes=1, overrides=tiny, report=lambda m: None)
    assert {r["updates"] for r in scaling.read_rows(path)} == {"6"}
    fig = scaling.scaling_figure(rows)
    assert len(fig.data) == len(TASKS) + 1 and fig.layout.xaxis.type == "log"
    assert scaling.save_scaling_png(rows, tmp_path / "s.png").stat().st_size > 1000


def test_monotonic_means_every_bigger_model_scores_higher():
    rows = [dict(size=k, parameters=p, task="all", normalised_score=s) for k, p, s in
            (("a", "10", "5"), ("b", "20", "7"), ("c", "40", "6"))]
    assert not scaling.is_monotonic(rows)
    rows[2]["normalised_score"] = "8"
    assert scaling.is_monotonic(rows)


def test_the_command_line(capsys, tmp_path):
    assert main(["scaling", "--table"]) == 0
    assert "| `317` |" in capsys.readouterr().out
    assert main(["scaling", "--sizes", "huge", "--table"]) == 2
    assert "unknown size 'huge'" in capsys.readouterr().err
    assert main(["scaling", "--out", str(tmp_path / "x")]) == 2
    assert "--data" in capsys.readouterr().err


def test_the_docs_table_of_a_scaling_study_lists_sizes_by_parameters(tmp_path):
    import csv

    from mbdpo_lab.doc_tables import scaling_table
    from mbdpo_lab.experiments.scaling import COLUMNS

    rows = [dict(size="m", parameters=900, updates=10, task="walker-walk", eval_return=30.5, eval_return_std=2.0,
                 normalised_score=3.05),
            dict(size="m", parameters=900, updates=10, task="all", normalised_score=3.05),
            dict(size="xs", parameters=70, updates=10, task="walker-walk", eval_return=10.0, eval_return_std=1.0,
                 normalised_score=1.0),
            dict(size="xs", parameters=70, updates=10, task="all", normalised_score=1.0)]
    with open(tmp_path / "scaling.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = scaling_table(tmp_path).splitlines()
    assert lines[0] == "| size | parameters | updates | normalised score | walker-walk |"
    assert lines[2] == "| `xs` | 70 | 10 | **1.0** | 10.0 ± 1.0 |" and lines[3].startswith("| `m` | 900 |")


def test_the_verdict_reads_the_order_of_the_sizes_from_the_numbers():
    from mbdpo_lab.experiments.scaling import verdict

    def rows(scores):
        return [dict(size=s, parameters=str(p), updates="100", task="all", normalised_score=str(v))
                for s, p, v in scores]

    assert verdict(rows([("m", 800, 13.0), ("xs", 70, 4.9), ("s", 240, 20.5)])) == (
        "Normalised score by size, smallest first: xs 4.9 < s 20.5 >= m 13.0 (100 updates each): "
        "not monotonic at this scale.")
    assert verdict(rows([("xs", 70, 4.9), ("s", 240, 20.5)])).endswith(": monotonic at this scale.")
