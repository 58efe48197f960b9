"""Training with several environments in lock-step (``num_envs``) and the updates-per-step knob."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.analysis.anchoring import BehaviourData
from mbdpo_lab.buffer import ParallelReplay
from mbdpo_lab.config import ConfigError, make_config
from mbdpo_lab.errors import CheckpointError
from mbdpo_lab.trainer import Trainer


def _cfg(**kw):
    """Lab's seed-phase rule (first updates after step S - 1): the update counts below are written for it;
    the release's rule has its own test at the end."""
    base = dict(variant="lab", task="cartpole-swingup", steps=120, episode_length=20, seed_steps=40, eval_every=0,
                checkpoint_every=0, eval_episodes=1, device="cpu", batch_size=8)
    base.update(kw)
    return make_config("tiny", **base)


# --- the replay of several streams ------------------------------------------------------------

def _fill(buf, stream, episode, length):
    buf.start_episode(np.array([stream, episode, 0], np.float32), stream=stream)
    for t in range(length):
        buf.add(np.array([t], np.float32), float(100 * stream + t), np.array([stream, episode, t + 1], np.float32),
                stream=stream)
    buf.end_episode(stream=stream)


def _streams_buffer(release=False):
    buf = ParallelReplay(obs_dim=3, act_dim=1, capacity=60, horizon=3, streams=3, seed=0, release=release)
    for episode in range(2):
        for stream in range(3):  # interleaved, as lock-step training fills them
            _fill(buf, stream, episode, 6 + stream)
    return buf


def test_samples_never_mix_streams_or_episodes_and_reach_every_stream():
    buf = _streams_buffer()
    s = buf.sample(3000)
    obs = s["obs"]
    assert obs.shape == (4, 3000, 3) and s["action"].shape == (3, 3000, 1)
    assert (obs[..., 0] == obs[0, :, 0]).all() and (obs[..., 1] == obs[0, :, 1]).all()
    assert (np.diff(obs[..., 2], axis=0) == 1).all()
    np.testing.assert_array_equal(s["reward"], 100 * obs[:-1, :, 0] + obs[:-1, :, 2])
    # uniform over all valid starts: streams with longer episodes hold more of them
    counts = np.bincount(obs[0, :, 0].astype(int), minlength=3)
    starts = np.array([2 * (6 + k - 3 + 1) for k in range(3)])
    np.testing.assert_allclose(counts / 3000, starts / starts.sum(), atol=0.03)
    assert len(set(map(tuple, s["episode"][0].reshape(-1, 1)))) == 6  # episode ids unique across streams


def test_the_saved_form_round_trips_and_reads_as_one_replay():
    buf = _streams_buffer(release=True)
    _fill(buf, 1, 9, 2)  # an open short episode too
    state = buf.state_dict()
    other = ParallelReplay(obs_dim=3, act_dim=1, capacity=60, horizon=3, streams=3, seed=0, release=True)
    other.load_state_dict(state)
    assert len(other) == len(buf) and other.num_starts == buf.num_starts and other.num_episodes == buf.num_episodes
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    # the analyses read it as one replay: one behaviour row per transition, none across streams
    assert len(BehaviourData.from_state_dict(state, max_rows=None)) == len(buf)
    with pytest.raises(ValueError, match="3 environment stream"):
        ParallelReplay(obs_dim=3, act_dim=1, capacity=60, horizon=3, streams=2).load_state_dict(state)


# --- the training loop --------------------------------------------------------------------------

def _spy(trainer):
    calls = {"plan_batch": [], "update": [], "act": []}
    plan_batch, update, act = trainer.agent.plan_batch, trainer.agent.update, trainer.agent.act
    trainer.agent.plan_batch = lambda obs, *a, **k: (calls["plan_batch"].append((trainer.agent_step, len(obs))),
                                                       plan_batch(obs, *a, **k))[1]
    trainer.agent.update = lambda batch: (calls["update"].append(trainer.agent_step), update(batch))[1]
    trainer.agent.act = lambda *a, **k: (calls["act"].append(trainer.agent_step), act(*a, **k))[1]
    return calls


def test_lockstep_rounds_plan_once_for_all_envs_after_a_random_seed_phase():
    cfg = _cfg(num_envs=4)
    trainer = Trainer(cfg)
    calls = _spy(trainer)
    trainer.run()
    assert trainer.state == "finished" and trainer.env_step == 120 and len(trainer.buffer) == 120
    assert [len(b) for b in trainer.buffer.streams] == [30] * 4
    # seed phase: rounds that start at or before step 39 act at random; then one batched call per round
    assert calls["act"] == [] and calls["plan_batch"] == [(s, 4) for s in range(40, 120, 4)]
    # the burst of S updates runs once, right after the round holding step 39; then one per transition
    assert calls["update"].count(40) == cfg.num_seed_steps
    assert len(calls["update"]) == cfg.num_seed_steps + (120 - 40)
    # every env's episodes are recorded: 4 envs x 30 steps / 20-step episodes = 4 finished ones
    episodes = [r for r in trainer.history if r["kind"] == "episode"]
    assert len(episodes) == 4 and all(r["step"] == 80 for r in episodes)


def test_a_single_env_trains_exactly_as_before():
    """num_envs=1 keeps the one-environment path (agent.act, one update per step): the defaults stay
    comparable with every published number."""
    trainer = Trainer(_cfg())
    calls = _spy(trainer)
    trainer.run()
    assert calls["act"] == list(range(40, 120)) and len(calls["plan_batch"]) == 80
    assert len(calls["update"]) == trainer.cfg.num_seed_steps + 80


@pytest.mark.parametrize("updates_per_env_step, expected", [(0.25, 20), (2.0, 160), (0.5, 40)])
def test_updates_per_env_step_sets_the_update_count_after_the_burst(updates_per_env_step, expected):
    trainer = Trainer(_cfg(num_envs=2, updates_per_env_step=updates_per_env_step))
    calls = _spy(trainer)
    trainer.run()
    assert len(calls["update"]) - trainer.cfg.num_seed_steps == expected


def test_the_last_round_stops_at_the_step_budget():
    trainer = Trainer(_cfg(num_envs=4, steps=50))
    trainer.run()
    assert trainer.env_step == 50 and [len(b) for b in trainer.buffer.streams] == [13, 13, 12, 12]


def test_resume_restores_the_update_credit(tmp_path):
    """With 0.5 updates per transition, a stop after an odd step leaves half an update owed; a resumed run
    that forgot it would run one update fewer than an uninterrupted one."""
    cfg = _cfg(updates_per_env_step=0.5, steps=60)
    whole = Trainer(cfg)
    whole_calls = _spy(whole)
    whole.run()
    first = Trainer(cfg, out_dir=tmp_path)
    first_calls = _spy(first)
    first.run(steps=45)
    assert first._update_credit == 0.5
    resumed = Trainer.resume_from(tmp_path)
    resumed_calls = _spy(resumed)
    resumed.run()
    assert len(first_calls["update"]) + len(resumed_calls["update"]) == len(whole_calls["update"])


def test_a_parallel_run_resumes_with_its_streams_and_refuses_another_count(tmp_path):
    cfg = _cfg(num_envs=3, steps=90)
    first = Trainer(cfg, out_dir=tmp_path)
    first.run(steps=60)
    resumed = Trainer.resume_from(tmp_path)
    assert [len(b) for b in resumed.buffer.streams] == [20, 20, 20]
    resumed.run()
    assert resumed.state == "finished" and len(resumed.buffer) == 90
    with pytest.raises(CheckpointError, match="num_envs=3; resume it with the same"):
        Trainer.resume_from(tmp_path, overrides=["num_envs=2"])


def test_training_actions_explore_and_the_noise_is_the_only_difference():
    cfg = _cfg(exploration_std=0.0)
    agent = MBDPO(cfg, 5, 1)
    obs = [np.full(5, v, np.float32) for v in (0.1, -0.3)]
    torch.manual_seed(0)
    quiet, _ = agent.act_batch(obs, [None, None])
    torch.manual_seed(0)
    planned = np.stack([r.action.clamp(-1, 1).numpy() for r in agent.plan_batch(obs, [None, None], [None, None])])
    np.testing.assert_array_equal(quiet, planned)
    agent.cfg.exploration_std = 0.3
    torch.manual_seed(0)
    noisy, _ = agent.act_batch(obs, [None, None])
    assert np.abs(noisy - quiet).max() > 0.05


def test_bad_values_are_refused():
    with pytest.raises(ConfigError, match="num_envs must be >= 1"):
        _cfg(num_envs=0)
    with pytest.raises(ConfigError, match="updates_per_env_step must be > 0"):
        _cfg(updates_per_env_step=0)


def test_the_release_seed_phase_covers_one_episode_in_every_environment():
    """The release samples completed episodes only: with N environments the seed phase must hold N
    episodes, or the first update would find nothing to sample."""
    with pytest.raises(ConfigError, match="must cover one episode in each"):
        _cfg(variant="release", num_envs=4, seed_steps=40)
    cfg = _cfg(variant="release", num_envs=4, seed_steps=80, steps=160)
    trainer = Trainer(cfg)
    calls = _spy(trainer)
    trainer.run()
    # rounds that start at or before step S = 80 act at random; the burst runs after the round holding it
    assert calls["plan_batch"] == [(s, 4) for s in range(84, 160, 4)]
    assert calls["update"].count(84) == cfg.num_seed_steps + 3  # the burst, then the round's 3 transitions past S
    assert len(calls["update"]) == cfg.num_seed_steps + (160 - 81)
