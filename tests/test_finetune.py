"""Offline-to-online fine-tuning: a new task embedding from the most similar pretraining task, fresh
optimisers and statistics, the pretrained planner acting from the first step, resumable."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_pretrain import _cfg, _dataset

from mbdpo_lab.agent import TaskSpec
from mbdpo_lab.checkpoint import load_checkpoint
from mbdpo_lab.cli import main
from mbdpo_lab.errors import UsageError
from mbdpo_lab.finetune import most_similar_task, prepare
from mbdpo_lab.pretrain import Pretrainer
from mbdpo_lab.trainer import Trainer


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    Pretrainer(_cfg(eval_every=0, checkpoint_every=0), _dataset(root / "data"), root / "run").run()
    return root / "run" / "agent.safetensors"


def test_the_source_task_is_the_releases_pair_else_the_closest_of_the_same_sizes():
    tasks = [TaskSpec("walker-walk", 24, 6), TaskSpec("walker-stand", 24, 6), TaskSpec("cheetah-run", 17, 6),
             TaskSpec("reacher-easy", 6, 2)]
    assert most_similar_task("walker-run", 24, 6, tasks) == "walker-walk"  # the release's pair
    assert most_similar_task("reacher-hard", 6, 2, tasks) == "reacher-easy"
    assert most_similar_task("walker-walk-fast", 24, 6, tasks) == "walker-walk"  # longest shared prefix
    assert most_similar_task("hopper-hop", 17, 6, tasks) == "cheetah-run"  # only the sizes match
    with pytest.raises(UsageError, match="--source"):
        most_similar_task("finger-spin", 9, 2, tasks)


def test_the_new_task_starts_from_its_source_with_fresh_optimisers_and_statistics(pretrained):
    before = load_checkpoint(pretrained, device="cpu").agent
    cfg, agent, source = prepare(pretrained, "reacher-hard", device="cpu")
    assert source == "reacher-easy" and [t.name for t in agent.tasks][-1] == "reacher-hard"
    assert agent.bound_task == 2 and cfg.task == "reacher-hard" and cfg.seed_actions == "planner"
    emb = agent.wm.task_emb.weight
    torch.testing.assert_close(emb[2], emb[1])  # reacher-easy's embedding, copied
    torch.testing.assert_close(emb[:2], before.wm.task_emb.weight)  # the pretraining tasks' kept
    assert not any(k.startswith(("optim.", "pi_optim.")) for k in agent.tensors(include_optimizer=True))
    assert float(agent.q_scale.value) == 1.0
    assert float(agent.wm.energy_mean) == 0.0 and float(agent.wm.energy_std) == 1.0
    # the new embedding is trained: it is in the rebuilt optimiser
    assert any(p is agent.wm.task_emb.weight for g in agent.optim.param_groups for p in g["params"])
    assert agent.act(np.zeros(6, np.float32), t0=True, eval_mode=True).shape == (2,)  # acts for its task


def test_fine_tuning_acts_with_the_planner_from_the_first_step_and_resumes(pretrained, tmp_path):
    cfg, agent, _ = prepare(pretrained, "reacher-hard", overrides=["steps=60", "seed_steps=20", "eval_every=0"],
                            device="cpu")
    trainer = Trainer(cfg, tmp_path / "ft", agent=agent)
    random_calls = []
    for env in trainer.envs:
        original = env.random_action
        env.random_action = lambda rng, original=original: (random_calls.append(1), original(rng))[1]
    planned = []
    act = trainer.agent.act
    trainer.agent.act = lambda *a, **k: (planned.append(trainer.agent_step), act(*a, **k))[1]
    trainer.run(steps=40)
    assert not random_calls and planned[:3] == [0, 1, 2]  # no random seed phase
    assert trainer.buffer.sample(4)["obs"].shape[-1] == agent.obs_dim  # padded, as the model reads it
    resumed = Trainer.resume_from(tmp_path / "ft")
    assert resumed.agent.bound_task == 2 and [t.name for t in resumed.agent.tasks][-1] == "reacher-hard"
    assert resumed.agent_step == 40
    resumed.run()
    assert resumed.state == "finished" and resumed.agent_step == 60


def test_a_task_smaller_than_the_models_padding_trains_and_evaluates(pretrained, tmp_path):
    # pretrained on 5- and 6-entry observations (padded to 6, actions to 2); pendulum has 3 and 1
    cfg, agent, _ = prepare(pretrained, "pendulum-swingup", source="cartpole-swingup", device="cpu",
                            overrides=["steps=30", "seed_steps=20", "eval_every=30", "eval_episodes=1"])
    trainer = Trainer(cfg, tmp_path / "small", agent=agent).run()
    assert trainer.state == "finished" and trainer.agent_step == 30
    assert trainer.buffer.sample(4)["obs"].shape[-1] == agent.obs_dim == 6
    assert [r for r in trainer.history if r["kind"] == "eval"]


def test_the_command_line(pretrained, tmp_path, capsys):
    args = ["finetune", "--from", str(pretrained), "--task", "reacher-hard", "--out", str(tmp_path / "ft"),
            "--steps", "30", "--no-progress", "--set", "seed_steps=20", "--set", "eval_every=30",
            "--set", "eval_episodes=1", "--set", "save_video=false"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "starts from reacher-easy's" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["step"] == 30
    assert main(["finetune", "--out", str(tmp_path / "x"), "--task", "reacher-hard"]) == 2
    assert "--from" in capsys.readouterr().err
    assert main(["finetune", "--from", str(pretrained), "--task", "finger-spin", "--out", str(tmp_path / "y")]) == 2
    assert "--source" in capsys.readouterr().err
    assert main(["finetune", "--from", "cartpole-swingup", "--task", "reacher-hard", "--out", str(tmp_path / "z")]) == 2
    assert "single-task" in capsys.readouterr().err


def test_the_comparison_trains_both_arms_per_seed_and_resumes(pretrained, tmp_path, capsys):
    import csv

    args = ["offline-to-online", "--from", str(pretrained), "--task", "reacher-hard", "--steps", "30", "--seeds", "1",
            "2", "--out", str(tmp_path / "cmp"), "--set", "seed_steps=20", "--set", "eval_every=15",
            "--set", "eval_episodes=1", "--set", "save_video=false"]
    assert main(args) == 0
    assert "At 30 online steps (2 seeds): fine-tuned" in capsys.readouterr().err  # the verdict, from the numbers
    for arm in ("finetune", "scratch"):
        for seed in (1, 2):
            config = json.loads((tmp_path / "cmp" / f"{arm}-s{seed}" / "config.json").read_text())
            assert config["seed"] == seed and config["seed_actions"] == ("planner" if arm == "finetune" else "random")
    scratch = load_checkpoint(tmp_path / "cmp" / "scratch-s1" / "agent.safetensors", device="cpu").agent
    assert not scratch.tasks  # from scratch: a single-task model, nothing pretrained
    with open(tmp_path / "cmp" / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the fine-tuned curve starts where fine-tuning starts: the pretrained model before any online step
    assert {(r["arm"], r["step"]) for r in rows} == ({(a, s) for a in ("finetune", "scratch") for s in ("15", "30")}
                                                      | {("finetune", "0")})
    assert all(float(r["low"]) <= float(r["eval_return_iqm"]) <= float(r["high"]) for r in rows)
    assert (tmp_path / "cmp" / "curves.html").exists()
    capsys.readouterr()
    assert main(args) == 0  # everything done: nothing retrained, nothing evaluated twice
    err = capsys.readouterr().err
    assert err.count(": done") == 4 and "before any online step" not in err
    metrics = tmp_path / "cmp" / "finetune-s1" / "metrics.csv"
    kept = [line for line in metrics.read_text().splitlines() if not line.startswith("0,0,0,eval,")]
    metrics.write_text("\n".join(kept) + "\n")  # a run that began before the step-0 evaluation existed
    assert main(args) == 0
    assert capsys.readouterr().err.count("before any online step") == 1


def test_the_comparisons_verdict_reads_the_last_common_step(tmp_path):
    from mbdpo_lab.experiments.offline_to_online import verdict

    path = tmp_path / "curves.csv"
    path.write_text("arm,step,eval_return_iqm,low,high,seeds\n"
                    "finetune,2000,300,250,350,3\nfinetune,4000,600,550,650,3\nfinetune,6000,700,690,710,3\n"
                    "scratch,2000,100,50,150,3\nscratch,4000,200,150,560,3\n")
    assert verdict(path) == ("At 4,000 online steps (3 seeds): fine-tuned 600.0 [550.0, 650.0], from scratch 200.0 "
                             "[150.0, 560.0] (IQM, 95% CI): fine-tuned ahead, the intervals overlap.")
    path.write_text("arm,step,eval_return_iqm,low,high,seeds\nfinetune,2000,100,90,110,1\nscratch,2000,300,200,400,1\n")
    assert verdict(path).endswith("(1 seed): fine-tuned 100.0 [90.0, 110.0], from scratch 300.0 [200.0, 400.0] "
                                  "(IQM, 95% CI): from scratch ahead, the intervals apart.")


def test_the_docs_table_of_the_comparisons_lists_each_arms_evaluations_per_task(tmp_path):
    from mbdpo_lab.doc_tables import offline_to_online_table
    from mbdpo_lab.experiments.offline_to_online import shipped_curves

    (tmp_path / "offline_to_online-reacher-hard.csv").write_text(
        "arm,step,eval_return_iqm,low,high,seeds\nfinetune,0,50,40,60,3\nfinetune,2000,300,250,350,3\n"
        "finetune,4000,600,550,650,3\nscratch,2000,100,50,150,3\nscratch,4000,200,150,560,2\n")
    (tmp_path / "offline_to_online-cartpole-balance.csv").write_text(
        "arm,step,eval_return_iqm,low,high,seeds\nfinetune,1000,900,850,950,3\nscratch,1000,10,5,15,3\n")
    assert list(shipped_curves(tmp_path)) == ["cartpole-balance", "reacher-hard"]
    lines = offline_to_online_table(tmp_path).splitlines()
    assert lines[0] == ("| held-out task | online steps | fine-tuned (IQM [95% CI]) | from scratch (IQM [95% CI]) "
                        "| seeds |")
    assert lines[2:] == ["| cartpole-balance | 1,000 | 900.0 [850.0, 950.0] | 10.0 [5.0, 15.0] | 3 |",
                         "| reacher-hard | 0 | 50.0 [40.0, 60.0] | – | 3 |",
                         "| reacher-hard | 2,000 | 300.0 [250.0, 350.0] | 100.0 [50.0, 150.0] | 3 |",
                         "| reacher-hard | 4,000 | 600.0 [550.0, 650.0] | 200.0 [150.0, 560.0] | 2 |"]
