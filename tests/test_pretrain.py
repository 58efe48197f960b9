"""`mbdpo-lab pretrain`: offline multi-task updates, per-task evaluation, checkpoints and resume."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mbdpo_lab.checkpoint import load_checkpoint
from mbdpo_lab.cli import main
from mbdpo_lab.config import make_config
from mbdpo_lab.datasets import DatasetWriter
from mbdpo_lab.envs import make_env
from mbdpo_lab.errors import CheckpointError
from mbdpo_lab.pretrain import Pretrainer

TASKS = ("cartpole-swingup", "reacher-easy")  # 5 and 6 observations, 1 and 2 actions


def _dataset(path, episodes=3, length=20, seed=0):
    """Random-action episodes of two real tasks."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(path, how="random actions (a test)") as writer:
        for task in TASKS:
            env = make_env(task, seed=seed, episode_length=length)
            for _ in range(episodes):
                obs, acts, rews, done = [env.reset()], [], [], False
                while not done:
                    a = env.random_action(rng)
                    o, r, done = env.step(a)
                    obs.append(o), acts.append(a), rews.append(r)
                writer.add(task, np.asarray(obs, np.float32), np.asarray(acts, np.float32),
                           np.asarray(rews, np.float32))
            env.close()
    return path


def _cfg(**kw):
    base = dict(steps=20, eval_every=10, eval_episodes=2, episode_length=20, checkpoint_every=10, device="cpu",
                task_dim=8, batch_size=16)
    base.update(kw)
    return make_config("tiny", **base)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_pretraining_updates_and_evaluates_every_task(tmp_path):
    data = _dataset(tmp_path / "data")
    trainer = Pretrainer(_cfg(), data, tmp_path / "run").run()
    assert trainer.updates == 20 and trainer.evaluable == list(TASKS)
    rows = _rows(tmp_path / "run" / "metrics.csv")
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [(r["update"], r["task"]) for r in evals] == [(u, t) for u in ("10", "20") for t in (*TASKS, "all")]
    per_task = [float(r["eval_return"]) for r in evals[-3:-1]]
    assert float(evals[-1]["normalised_score"]) == pytest.approx(np.mean(per_task) / 10)
    assert all(np.isfinite(float(r["total_loss"])) for r in rows if r["kind"] == "train")
    agent = load_checkpoint(tmp_path / "run" / "agent.safetensors", device="cpu").agent
    assert [t.name for t in agent.tasks] == list(TASKS)
    assert agent.act(np.zeros(5, np.float32), t0=True, eval_mode=True, task="cartpole-swingup").shape == (1,)
    assert agent.act(np.zeros(6, np.float32), t0=True, eval_mode=True, task="reacher-easy").shape == (2,)


def test_a_resumed_run_continues_at_its_update_with_its_optimiser(tmp_path):
    data = _dataset(tmp_path / "data")
    Pretrainer(_cfg(), data, tmp_path / "run").run(updates=10)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors", device="cpu")
    assert ckpt.has_optimizer and ckpt.meta["updates"] == 10
    resumed = Pretrainer.resume_from(tmp_path / "run")
    assert resumed.updates == 10
    steps = {int(k.split(".")[1]): v for k, v in resumed.agent.tensors(include_optimizer=True).items()
             if k.startswith("optim.") and k.endswith(".step")}
    assert steps and all(float(v) == 10 for v in steps.values())  # Adam's step counts came back
    resumed.run()
    assert resumed.updates == 20
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert [r["update"] for r in rows if r["kind"] == "eval" and r["task"] == "all"] == ["10", "20"]


def test_a_finished_run_resumed_keeps_its_final_evaluation_and_does_not_evaluate_again(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "data")
    first = Pretrainer(_cfg(), data, tmp_path / "run").run()
    resumed = Pretrainer.resume_from(tmp_path / "run")
    back, was = resumed.last_eval, first.last_eval
    assert back["update"] == 20 and back["normalised_score"] == pytest.approx(was["normalised_score"])
    assert {t: pytest.approx(v) for t, v in back["tasks"].items()} == was["tasks"]
    monkeypatch.setattr(Pretrainer, "evaluate", lambda *a, **k: pytest.fail("evaluated a finished run again"))
    assert resumed.run().last_eval["tasks"].keys() == set(TASKS)


def test_a_run_refuses_to_resume_on_another_dataset(tmp_path):
    data = _dataset(tmp_path / "data")
    other = _dataset(tmp_path / "other", seed=1)
    Pretrainer(_cfg(), data, tmp_path / "run").run(updates=10)
    with pytest.raises(CheckpointError, match="not the dataset this run pretrained on"):
        Pretrainer.resume_from(tmp_path / "run", other)


def test_the_command_line(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    args = ["pretrain", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--updates", "10",
            "--no-progress", "--set", "eval_every=10", "--set", "eval_episodes=1", "--set", "episode_length=20",
            "--set", "task_dim=8", "--set", "device=cpu"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["updates"] == 10 and np.isfinite(out["normalised_score"])
    assert main(args) == 2 and "already holds a run" in capsys.readouterr().err
    assert main(["pretrain", "--out", str(tmp_path / "r2"), "--data", str(tmp_path)]) == 2
    assert "no card.json" in capsys.readouterr().err
    assert main(["pretrain", "--out", str(tmp_path / "r3")]) == 2
    assert "--data is required" in capsys.readouterr().err
    # a multi-task agent is evaluated on the task asked for
    agent = str(tmp_path / "run" / "agent.safetensors")
    assert main(["eval", "--checkpoint", agent, "--task", "reacher-easy", "--episodes", "1",
                 "--set", "episode_length=10"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "reacher-easy"
    assert main(["eval", "--checkpoint", agent, "--episodes", "1"]) == 2
    assert "is multi-task: pass --task (cartpole-swingup, reacher-easy)" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", "cartpole-swingup", "--task", "reacher-easy"]) == 2
    assert "trained on cartpole-swingup" in capsys.readouterr().err
    # and its latent paths are collected for one task
    assert main(["latents", "--checkpoint", agent, "--task", "cartpole-swingup", "--episodes", "1", "--max-steps",
                 "8", "--method", "pca", "--out", str(tmp_path / "lat")]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "cartpole-swingup"
    # shipping: each kind of run through its own command, a missing one named
    assert main(["export", "--run", str(tmp_path / "run"), "--name", "mt"]) == 2
    assert "ship it with `mbdpo-lab export-generalist`" in capsys.readouterr().err
    assert main(["export-generalist", "--run", str(tmp_path / "none"), "--name", "mt"]) == 2
    assert "has no agent.safetensors" in capsys.readouterr().err


def test_a_generalist_ships_with_its_final_evaluation_beside_the_single_task_agents(tmp_path):
    from mbdpo_lab.checkpoint import file_sha256, list_pretrained, load_pretrained, read_manifest
    from mbdpo_lab.pretrained import export_generalist

    data = _dataset(tmp_path / "data")
    trainer = Pretrainer(_cfg(), data, tmp_path / "run").run()
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / "manifest.json").write_text(json.dumps({"agents": {"single": {"file": "single.safetensors"}}}))
    entry = export_generalist(tmp_path / "run", "mt-tiny", directory=shelf)
    assert read_manifest(shelf) == {"single": {"file": "single.safetensors"}}  # the agents' section untouched
    assert read_manifest(shelf, "generalists") == {"mt-tiny": entry} and list_pretrained(shelf, "generalists") == ["mt-tiny"]
    assert entry["tasks"] == list(TASKS) and entry["updates"] == 20
    assert entry["parameters"] == trainer.agent.wm.num_params()
    last = trainer.last_eval
    assert entry["normalised_score"] == pytest.approx(last["normalised_score"], abs=0.01)
    assert entry["eval_returns"] == {t: [round(m, 2), round(s, 2)] for t, (m, s) in last["tasks"].items()}
    assert entry["sha256"] == file_sha256(shelf / "mt-tiny.safetensors")
    assert entry["command"].startswith("mbdpo-lab pretrain --data runs/data --preset tiny --updates 20")
    loaded = load_pretrained("mt-tiny", directory=shelf, device="cpu").agent
    assert [t.name for t in loaded.tasks] == list(TASKS)
    assert not any(k.startswith("optim.") for k in loaded.tensors(include_optimizer=False))
    with pytest.raises(CheckpointError, match="already called"):
        export_generalist(tmp_path / "run", "single", directory=shelf)  # names are unique across sections
    with pytest.raises(CheckpointError, match="--replace"):
        export_generalist(tmp_path / "run", "mt-tiny", directory=shelf)
    # stopped before its final evaluation: refused, with what to run
    half = Pretrainer(_cfg(steps=5, eval_every=0, checkpoint_every=5), data, tmp_path / "unfinished")
    half.run(should_stop=lambda: half.updates >= 3)
    with pytest.raises(CheckpointError, match="--resume"):
        export_generalist(tmp_path / "unfinished", "mt-half", directory=shelf)
    assert "mt-half" not in read_manifest(shelf, "generalists")
