"""Offline datasets: chunk files and a card, a bounded-memory loader, and the three ways to make one."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mbdpo_lab.cli import main
from mbdpo_lab.config import make_config
from mbdpo_lab.datasets import (TDMPC2_TASK_SETS, DatasetError, DatasetWriter, EpisodeDataset, convert_tdmpc2,
                                write_replay)
from mbdpo_lab.trainer import Trainer


def _episode(task_id: int, episode: int, length: int, obs_dim: int, act_dim: int):
    """obs row t = (task, episode, t, 0...), action t = t + 0.5, reward t = 1000 episode + t: sub-trajectories
    can be traced back to where they came from."""
    obs = np.zeros((length + 1, obs_dim), np.float32)
    obs[:, 0], obs[:, 1], obs[:, 2] = task_id, episode, np.arange(length + 1)
    actions = np.tile((np.arange(length) + 0.5)[:, None], (1, act_dim)).astype(np.float32)
    return obs, actions, 1000.0 * episode + np.arange(length, dtype=np.float32)


@pytest.fixture
def dataset(tmp_path):
    with DatasetWriter(tmp_path / "ds", how="synthetic, for the tests", chunk_episodes=3) as writer:
        for e in range(7):  # task a: 5-D observations, 1-D actions, episodes of 6..12 steps
            writer.add("a", *_episode(0, e, 6 + e, 5, 1))
        for e in range(4):  # task b: 8-D observations, 2-D actions
            writer.add("b", *_episode(1, 100 + e, 10, 8, 2))
    return tmp_path / "ds"


def test_the_card_and_chunks_hold_every_episode(dataset):
    card = json.loads((dataset / "card.json").read_text())
    assert card["format"] == "mbdpo-lab episodes 1" and card["collected"]["how"] == "synthetic, for the tests"
    assert [(t["name"], t["obs_dim"], t["act_dim"], t["episodes"]) for t in card["tasks"]] == [("a", 5, 1, 7),
                                                                                             ("b", 8, 2, 4)]
    assert card["obs_dim"] == 8 and card["act_dim"] == 2 and card["transitions"] == sum(range(6, 13)) + 40
    assert [c["episodes"] for c in card["chunks"]] == [3, 3, 3, 1, 1] and all(len(c["sha256"]) == 64 for c in card["chunks"])
    ds = EpisodeDataset(dataset)
    read = list(ds.episodes("a"))
    assert len(read) == 7
    for e, (task, obs, actions, rewards) in enumerate(read):
        want = _episode(0, e, 6 + e, 5, 1)
        assert task == "a"
        np.testing.assert_array_equal(obs, want[0])
        np.testing.assert_array_equal(actions, want[1])
        np.testing.assert_array_equal(rewards, want[2])


def test_samples_stay_in_one_episode_and_are_padded_across_tasks(dataset):
    ds = EpisodeDataset(dataset, pool_chunks=10, seed=1)
    batch = ds.sample(500, horizon=3)
    obs, action, reward, task = batch["obs"], batch["action"], batch["reward"], batch["task"]
    assert obs.shape == (4, 500, 8) and action.shape == (3, 500, 2) and reward.shape == (3, 500)
    assert (obs[..., 0] == obs[0, :, 0]).all() and (obs[..., 1] == obs[0, :, 1]).all()
    assert (np.diff(obs[..., 2], axis=0) == 1).all()
    np.testing.assert_array_equal(task, obs[0, :, 0].astype(int))
    np.testing.assert_array_equal(reward, 1000 * obs[:-1, :, 1] + obs[:-1, :, 2])
    np.testing.assert_array_equal(action[..., 0], obs[:-1, :, 2] + 0.5)
    a = task == 0
    assert (obs[:, a, 5:] == 0).all() and (action[:, a, 1] == 0).all()  # task a padded to b's sizes
    assert set(np.unique(task)) == {0, 1}


def test_memory_stays_at_the_pool_however_many_chunks(dataset):
    ds = EpisodeDataset(dataset, pool_chunks=2, swap_every=2, seed=0)
    largest = max((dataset / c["file"]).stat().st_size for c in ds.chunks)
    for _ in range(40):
        ds.sample(16, horizon=3)
        assert len(ds._pool) <= 2 and ds.pool_bytes <= 2 * largest
    assert ds.loads > 5  # the pool was refreshed from disk as it went


def test_a_changed_chunk_or_a_missing_card_is_refused(dataset, tmp_path):
    first = dataset / "chunk-00000.safetensors"
    data = bytearray(first.read_bytes())
    data[-1] ^= 1
    first.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="chunk-00000.safetensors does not match the sha256"):
        list(EpisodeDataset(dataset).episodes())
    with pytest.raises(DatasetError, match="not a dataset folder"):
        EpisodeDataset(tmp_path)
    with pytest.raises(DatasetError, match="already holds a dataset"):
        DatasetWriter(dataset, how="again")


@pytest.mark.parametrize("num_envs", [1, 2])
def test_a_runs_replay_becomes_a_dataset(tmp_path, num_envs):
    cfg = make_config("tiny", task="cartpole-swingup", steps=100, episode_length=30, seed_steps=60, eval_every=0,
                      device="cpu", batch_size=8, num_envs=num_envs)
    trainer = Trainer(cfg).run()
    out = write_replay(trainer.buffer.state_dict(), cfg.task, tmp_path / "replay", how="a test run")
    ds = EpisodeDataset(out)
    episodes = list(ds.episodes())
    assert sum(len(a) for _, _, a, _ in episodes) == len(trainer.buffer) == 100
    assert {len(a) for _, _, a, _ in episodes} <= {30, 10, 20}  # whole episodes, and the one in progress
    assert ds.sample(8, horizon=cfg.horizon)["obs"].shape == (cfg.horizon + 1, 8, 5)


def test_train_save_replay_and_collect_write_datasets(tmp_path, capsys):
    replay = tmp_path / "replay"
    assert main(["train", "--task", "cartpole-swingup", "--preset", "tiny", "--steps", "80", "--out",
                 str(tmp_path / "run"), "--no-progress", "--save-replay", str(replay), "--set", "episode_length=20",
                 "--set", "seed_steps=40", "--set", "eval_every=0", "--set", "save_video=false"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dataset"] == str(replay)
    card = json.loads((replay / "card.json").read_text())
    assert card["transitions"] == 80 and "--save-replay" in card["collected"]["command"]
    for out in ("a", "b"):
        assert main(["collect", "--checkpoint", "cartpole-swingup", "--episodes", "3", "--noise", "0.2",
                     "--seed", "4", "--lockstep", "2", "--out", str(tmp_path / out), "--set", "episode_length=15"]) == 0
    a, b = (list(EpisodeDataset(tmp_path / out).episodes()) for out in ("a", "b"))
    assert len(a) == 3 and all(len(ep[2]) == 15 for ep in a)
    for x, y in zip(a, b):  # the same seed gives the same episodes, lock-step groups and all
        np.testing.assert_array_equal(x[2], y[2])
    assert main(["collect", "--checkpoint", "cartpole-swingup", "--out", str(tmp_path / "a")]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    # several agents and noise levels: one multi-task dataset
    capsys.readouterr()
    assert main(["collect", "--checkpoint", "cartpole-swingup", "reacher-easy", "--episodes", "2", "--noise", "0",
                 "0.5", "--lockstep", "2", "--out", str(tmp_path / "mt"), "--set", "episode_length=10"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["episodes"] == 8 and set(printed["mean_return"]) == {"cartpole-swingup", "reacher-easy"}
    mt = EpisodeDataset(tmp_path / "mt")
    assert [(t.name, t.episodes) for t in mt.tasks] == [("cartpole-swingup", 4), ("reacher-easy", 4)]
    quiet, noisy = [ep[2] for ep in mt.episodes("reacher-easy")][:2], [ep[2] for ep in mt.episodes("reacher-easy")][2:]
    assert not np.allclose(np.abs(np.concatenate(quiet)).mean(), np.abs(np.concatenate(noisy)).mean())
    assert main(["collect", "--checkpoint", "cartpole-swingup", "--noise", "0.1", "-1", "--out",
                 str(tmp_path / "n")]) == 2


def _tdmpc2_chunk(path):
    """A tiny mt30 chunk file as TD-MPC2 writes them: a TensorDict [episodes, T+1] with padded obs and actions
    and NaN at step 0 of action and reward."""
    from tensordict import TensorDict

    E, T, O, A = 3, 5, 24, 6
    gen = torch.Generator().manual_seed(0)
    obs, action, reward = torch.randn(E, T + 1, O, generator=gen), torch.rand(E, T + 1, A, generator=gen), \
        torch.rand(E, T + 1, generator=gen)
    action[:, 0], reward[:, 0] = float("nan"), float("nan")
    names = TDMPC2_TASK_SETS["mt30"]
    index = [names.index(n) for n in ("cartpole-swingup", "reacher-easy", "walker-walk-backwards")]
    task = torch.tensor(index)[:, None].expand(E, T + 1).clone()
    torch.save(TensorDict(dict(obs=obs, action=action, reward=reward, task=task), batch_size=(E, T + 1)), path)
    return obs, action, reward


def test_tdmpc2_chunks_convert_only_when_trusted(tmp_path, capsys):
    src = tmp_path / "chunk_0.pt"
    obs, action, reward = _tdmpc2_chunk(src)
    with pytest.raises(DatasetError, match="--trust-pickle"):
        convert_tdmpc2([src], "mt30", tmp_path / "no")
    assert not (tmp_path / "no").exists()
    assert main(["convert-tdmpc2", str(src), "--task-set", "mt30", "--out", str(tmp_path / "ds"), "--trust-pickle"]) == 0
    ds = EpisodeDataset(tmp_path / "ds")
    dims = {t.name: (t.obs_dim, t.act_dim) for t in ds.tasks}
    # known tasks lose the padding; a custom task of TD-MPC2's keeps the file's sizes
    assert dims == {"cartpole-swingup": (5, 1), "reacher-easy": (6, 2), "walker-walk-backwards": (24, 6)}
    for e, (task, o, a, r) in enumerate(ds.episodes()):
        o_dim, a_dim = dims[task]
        np.testing.assert_allclose(o, obs[e, :, :o_dim].numpy())
        np.testing.assert_allclose(a, action[e, 1:, :a_dim].numpy())  # step t+1 holds the transition from t
        np.testing.assert_allclose(r, reward[e, 1:].numpy())
    assert main(["convert-tdmpc2", str(src), "--task-set", "mt30", "--out", str(tmp_path / "x")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
