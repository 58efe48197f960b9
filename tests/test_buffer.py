import numpy as np
import pytest

from mbdpo_lab.buffer import ReplayBuffer


def _fill(buf, lengths):
    for ep, length in enumerate(lengths):
        buf.start_episode(np.array([ep, 0], np.float32))
        for t in range(length):
            buf.add(np.array([ep * 1000 + t], np.float32), float(ep * 1000 + t), np.array([ep, t + 1], np.float32))


def test_samples_are_contiguous_and_within_one_episode():
    buf = ReplayBuffer(obs_dim=2, act_dim=1, capacity=200, horizon=3, seed=0)
    _fill(buf, [5, 3, 7, 4])
    s = buf.sample(2000)
    assert s["obs"].shape == (4, 2000, 2) and s["action"].shape == (3, 2000, 1) and s["reward"].shape == (3, 2000)
    ep = s["obs"][..., 0]
    assert (ep == ep[0]).all(), "a sub-trajectory crossed an episode boundary"
    t = s["obs"][..., 1]
    assert (np.diff(t, axis=0) == 1).all(), "observations are not consecutive"
    # the action at row t is the one taken from obs t of the same episode
    np.testing.assert_array_equal(s["action"][..., 0], ep[:-1] * 1000 + t[:-1])
    np.testing.assert_array_equal(s["reward"], ep[:-1] * 1000 + t[:-1])


def test_short_episode_gives_no_start_and_every_start_is_reachable():
    buf = ReplayBuffer(obs_dim=2, act_dim=1, capacity=100, horizon=3, seed=0)
    _fill(buf, [2, 4])  # the first episode is shorter than H: no valid start
    s = buf.sample(500)
    assert (s["obs"][..., 0] == 1).all()
    assert set(s["obs"][0, :, 1]) == {0.0, 1.0}


def test_state_round_trip_and_capacity_error():
    buf = ReplayBuffer(obs_dim=2, act_dim=1, capacity=20, horizon=2, seed=0)
    _fill(buf, [6, 6])
    other = ReplayBuffer(obs_dim=2, act_dim=1, capacity=20, horizon=2, seed=0)
    other.load_state_dict(buf.state_dict())
    assert other.num_transitions == 12 and other.num_starts == buf.num_starts
    np.testing.assert_array_equal(other.sample(10)["obs"], buf.sample(10)["obs"])
    with pytest.raises(MemoryError, match="buffer_size"):
        _fill(buf, [20])


def test_capacity_counts_transitions_however_many_episodes_hold_them():
    # Every episode's first observation takes a row of its own; storage grows for those rows
    # (many short episodes once overflowed a buffer sized for the planned steps).
    buf = ReplayBuffer(obs_dim=2, act_dim=1, capacity=20, horizon=2, seed=0, initial_rows=6)
    _fill(buf, [4] * 5)
    assert buf.num_transitions == 20 and buf.num_episodes == 5
    s = buf.sample(300)
    assert (np.diff(s["obs"][..., 1], axis=0) == 1).all() and (s["obs"][..., 0] == s["obs"][0, :, 0]).all()
    with pytest.raises(MemoryError, match="20 transitions"):
        buf.start_episode(np.zeros(2, np.float32))
        buf.add(np.zeros(1, np.float32), 0.0, np.zeros(2, np.float32))
    small = ReplayBuffer(obs_dim=2, act_dim=1, capacity=20, horizon=2, seed=0, initial_rows=3)
    small.load_state_dict(buf.state_dict())
    assert small.num_transitions == 20 and small.num_starts == buf.num_starts
    with pytest.raises(ValueError, match="capacity of 10"):
        ReplayBuffer(obs_dim=2, act_dim=1, capacity=10, horizon=2).load_state_dict(buf.state_dict())
