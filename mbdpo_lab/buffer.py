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

    def start_episode(self, obs: np.ndarray, stream: int = 0) -> None:
        """Open a new episode with its first observation (``stream``: see `ParallelReplay`; one here)."""
        self._reserve_row()
        self._row += 1
        self._episode_start = self._row
        self.obs[self._row] = obs
        self.episode[self._row] = self.num_episodes
        self.num_episodes += 1

    def add(self, action: np.ndarray, reward: float, next_obs: np.ndarray, stream: int = 0) -> None:
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

    def end_episode(self, stream: int = 0) -> None:
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
        if len(state.get("stream_rows", ())) > 1:
            raise ValueError(f"the saved replay holds {len(state['stream_rows'])} environment streams, this run has "
                             f"num_envs=1; resume with num_envs={len(state['stream_rows'])}")
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


class ParallelReplay:
    """The replay of ``streams`` environments that run at once (``num_envs``): one `ReplayBuffer` per
    environment, so each keeps its episode in progress contiguous, and samples drawn uniformly over the
    valid starts of all of them (a sub-trajectory never mixes environments).

    Its saved form is that of one buffer (``obs``, ``action``, ``reward``, ``episode`` rows, the
    streams one after another, episode ids made unique across streams) plus how to split it again, so
    the analyses that read a run's replay read this one unchanged.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, horizon: int, streams: int, seed: int = 0,
                 initial_rows: int | None = None, release: bool = False):
        per_stream = -(-int(capacity) // streams)  # ceil: the streams together hold at least `capacity`
        rows = None if initial_rows is None else -(-int(initial_rows) // streams) + 2
        self.streams = [ReplayBuffer(obs_dim, act_dim, per_stream, horizon, seed=seed, initial_rows=rows,
                                     release=release) for _ in range(streams)]
        self.capacity, self.horizon = int(capacity), horizon
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.num_transitions

    @property
    def num_transitions(self) -> int:
        return sum(b.num_transitions for b in self.streams)

    @property
    def num_episodes(self) -> int:
        return sum(b.num_episodes for b in self.streams)

    @property
    def num_starts(self) -> int:
        return sum(b.num_starts for b in self.streams)

    def start_episode(self, obs: np.ndarray, stream: int = 0) -> None:
        self.streams[stream].start_episode(obs)

    def add(self, action: np.ndarray, reward: float, next_obs: np.ndarray, stream: int = 0) -> None:
        self.streams[stream].add(action, reward, next_obs)

    def end_episode(self, stream: int = 0) -> None:
        self.streams[stream].end_episode()

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """As `ReplayBuffer.sample`, each start drawn uniformly from all streams' valid starts."""
        counts = np.array([b.num_starts for b in self.streams])
        if counts.sum() == 0:
            raise RuntimeError("replay buffer has no complete sub-trajectory yet")
        pick = self.rng.integers(0, counts.sum(), batch_size)
        ends = np.cumsum(counts)
        which = np.searchsorted(ends, pick, side="right")
        local = pick - (ends - counts)[which]
        out = {k: np.zeros((self.horizon + (k in ("obs", "episode")), batch_size, *shape), dtype)
               for k, shape, dtype in (("obs", (self.streams[0].obs_dim,), np.float32),
                                       ("action", (self.streams[0].act_dim,), np.float32),
                                       ("reward", (), np.float32), ("episode", (), np.int64))}
        for s, buf in enumerate(self.streams):
            cols = np.nonzero(which == s)[0]
            if not cols.size:
                continue
            idx = np.asarray(buf._starts)[local[cols]][None, :] + np.arange(self.horizon + 1)[:, None]
            out["obs"][:, cols] = buf.obs[idx]
            out["action"][:, cols] = buf.action[idx[:-1]]
            out["reward"][:, cols] = buf.reward[idx[:-1]]
            out["episode"][:, cols] = buf.episode[idx] * len(self.streams) + s
        return out

    def behaviour_actions(self) -> np.ndarray:
        return np.concatenate([b.behaviour_actions() for b in self.streams])

    def state_dict(self) -> dict[str, np.ndarray]:
        parts = [b.state_dict() for b in self.streams]
        n = len(self.streams)
        episode = [np.where(p["episode"] >= 0, p["episode"] * n + s, -1) for s, p in enumerate(parts)]
        return dict(obs=np.concatenate([p["obs"] for p in parts]),
                    action=np.concatenate([p["action"] for p in parts]),
                    reward=np.concatenate([p["reward"] for p in parts]),
                    episode=np.concatenate(episode),
                    starts=np.concatenate([p["starts"] for p in parts]),
                    pending=np.concatenate([p["pending"] for p in parts]),
                    scalars=np.stack([p["scalars"] for p in parts]),
                    stream_rows=np.array([len(p["obs"]) for p in parts], np.int64),
                    stream_starts=np.array([len(p["starts"]) for p in parts], np.int64),
                    stream_pending=np.array([len(p["pending"]) for p in parts], np.int64))

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        n = len(self.streams)
        saved = len(state["stream_rows"]) if "stream_rows" in state else 1
        if saved != n:
            raise ValueError(f"the saved replay holds {saved} environment stream(s), this run has num_envs={n}; "
                             f"resume with num_envs={saved}")
        cut = {key: np.cumsum(state[f"stream_{key}"])[:-1] for key in ("rows", "starts", "pending")}
        rows = {k: np.split(state[k], cut["rows"]) for k in ("obs", "action", "reward", "episode")}
        starts, pending = np.split(state["starts"], cut["starts"]), np.split(state["pending"], cut["pending"])
        for s, buf in enumerate(self.streams):
            episode = np.where(rows["episode"][s] >= 0, (rows["episode"][s] - s) // n, -1)
            buf.load_state_dict(dict(obs=rows["obs"][s], action=rows["action"][s], reward=rows["reward"][s],
                                     episode=episode, starts=starts[s], pending=pending[s],
                                     scalars=state["scalars"][s]))
