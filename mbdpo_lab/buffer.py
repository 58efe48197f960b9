"""Replay of whole episodes; samples (H+1)-long sub-trajectories that never cross an episode end.

Storage is flat: row r holds an observation, and the action and reward of the transition from row r
to row r+1. A row is a valid start when the H rows after it belong to the same episode.

``release=True`` follows the authors' replay: an episode is sampled only once it is complete
(`end_episode`), and when the buffer is full the oldest episodes make room (FIFO). The release
overwrites row by row, so a partly overwritten episode stays sampleable there; here the whole oldest
episode goes at once. Without it, every step is kept and a full buffer is an error.
"""
from __future__ import annotations

import numpy as np


class ReplayBuffer:
    def __init__(self, obs_dim: int, act_dim: int, capacity: int, horizon: int, seed: int = 0,
                 initial_rows: int | None = None, release: bool = False):
        """``capacity`` counts transitions; storage starts at ``initial_rows`` and grows up to it."""
        self.release = release
        self._pending: list[int] = []  # release: starts of the episode in progress
        self.obs_dim, self.act_dim, self.horizon = obs_dim, act_dim, horizon
        self.capacity = int(capacity)
        rows = self.capacity + 1 if initial_rows is None else max(2, int(initial_rows))
        self.obs = np.zeros((rows, obs_dim), np.float32)
        self.action = np.zeros((rows, act_dim), np.float32)
        self.reward = np.zeros(rows, np.float32)
        self.episode = np.full(rows, -1, np.int64)
        self._starts: list[int] = []
        self._row = -1  # row of the latest observation
        self._episode_start = 0
        self.num_episodes = 0
        self.num_transitions = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def num_starts(self) -> int:
        return len(self._starts)

    def start_episode(self, obs: np.ndarray) -> None:
        """Open a new episode with its first observation."""
        self._reserve_row()
        self._row += 1
        self._episode_start = self._row
        self.obs[self._row] = obs
        self.episode[self._row] = self.num_episodes
        self.num_episodes += 1

    def add(self, action: np.ndarray, reward: float, next_obs: np.ndarray) -> None:
        """Append one transition of the current episode."""
        if self._row < 0:
            raise RuntimeError("call start_episode(obs) before add()")
        if self.num_transitions >= self.capacity:
            if not (self.release and self._episode_start > 0):
                raise MemoryError(f"replay buffer full ({self.capacity} transitions); raise buffer_size")
            self._evict_oldest_episode()
        self._reserve_row()
        r = self._row
        self.action[r], self.reward[r] = action, reward
        self.obs[r + 1] = next_obs
        self.episode[r + 1] = self.episode[r]
        self._row = r + 1
        self.num_transitions += 1
        start = self._row - self.horizon
        if start >= self._episode_start:
            (self._pending if self.release else self._starts).append(start)

    def end_episode(self) -> None:
        """The episode in progress is complete: with ``release``, it becomes sampleable now."""
        self._starts.extend(self._pending)
        self._pending = []

    def _evict_oldest_episode(self) -> None:
        """Drop the first stored episode, shifting the rest to the front (release FIFO)."""
        n = int(np.argmax(self.episode[: self._row + 1] != self.episode[0]))  # rows of the oldest episode
        keep = slice(n, self._row + 1)
        for name in ("obs", "action", "reward", "episode"):
            arr = getattr(self, name)
            arr[: self._row + 1 - n] = arr[keep].copy()
        self._row -= n
        self._episode_start -= n
        self.num_transitions -= n - 1
        self._starts = [s - n for s in self._starts if s >= n]
        self._pending = [s - n for s in self._pending]

    def _reserve_row(self) -> None:
        """Make room for one more row (each episode's first observation takes a row of its own)."""
        if self._row + 1 >= len(self.obs):
            self._grow_to(len(self.obs) + max(64, len(self.obs) // 4))

    def _grow_to(self, rows: int) -> None:
        for name in ("obs", "action", "reward", "episode"):
            old = getattr(self, name)
            grown = np.full((rows, *old.shape[1:]), -1 if name == "episode" else 0, old.dtype)
            grown[:len(old)] = old
            setattr(self, name, grown)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """Time-major arrays: obs [H+1, B, obs_dim], action [H, B, A], reward [H, B]."""
        if not self._starts:
            raise RuntimeError("replay buffer has no complete sub-trajectory yet")
        starts = np.asarray(self._starts)[self.rng.integers(0, len(self._starts), batch_size)]
        idx = starts[None, :] + np.arange(self.horizon + 1)[:, None]
        return dict(obs=self.obs[idx], action=self.action[idx[:-1]], reward=self.reward[idx[:-1]],
                    episode=self.episode[idx])

    def behaviour_actions(self) -> np.ndarray:
        """All stored actions (for nearest-neighbour drift measures and toy datasets)."""
        rows = np.asarray(self._starts) if self._starts else np.zeros(0, np.int64)
        return self.action[rows]

    # --- persistence (numpy npz, no pickle) -------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        n = self._row + 1
        return dict(obs=self.obs[:n], action=self.action[:n], reward=self.reward[:n],
                    episode=self.episode[:n], starts=np.asarray(self._starts, np.int64),
                    pending=np.asarray(self._pending, np.int64),
                    scalars=np.array([self._row, self._episode_start, self.num_episodes,
                                      self.num_transitions], np.int64))

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        n = len(state["obs"])
        if int(state["scalars"][3]) > self.capacity:
            raise ValueError(f"saved replay holds {int(state['scalars'][3])} transitions, more than this "
                             f"buffer's capacity of {self.capacity}")
        if n > len(self.obs):
            self._grow_to(n)
        self.obs[:n], self.action[:n] = state["obs"], state["action"]
        self.reward[:n], self.episode[:n] = state["reward"], state["episode"]
        self._starts = state["starts"].tolist()
        self._pending = state["pending"].tolist() if "pending" in state else []
        self._row, self._episode_start, self.num_episodes, self.num_transitions = (
            int(v) for v in state["scalars"])
