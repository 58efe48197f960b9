"""Offline datasets of whole episodes: chunk files (safetensors, no pickle) and a JSON card.

A dataset is a folder. ``card.json`` says what it holds (tasks with their observation and action sizes,
episode and transition counts), how it was collected, and the sha256 of every chunk. Each chunk
``chunk-NNNNN.safetensors`` holds up to ``chunk_episodes`` episodes of one task: ``obs`` [E, T+1, O],
``action`` [E, T, A], ``reward`` [E, T] and ``length`` [E] (episodes shorter than the chunk's longest are
zero-padded; ``length`` says how many steps are real).

`EpisodeDataset` reads it with bounded memory: a pool of ``pool_chunks`` chunks is in memory at a time,
batches are sampled from the pool, and one chunk is swapped for another every ``swap_every`` batches,
so memory stays the size of the pool however large the dataset grows. Across tasks of different sizes
a batch is zero-padded to the largest observation and action, with ``task`` telling which is which
(the multi-task model masks the padded action entries).

Ways to make one: `DatasetWriter` directly, `write_replay` (a run's replay, what ``train --save-replay``
keeps: TD-MPC2's datasets are exactly the replays of single-task agents), ``mbdpo-lab collect`` (episodes
of a trained agent with exploration noise) and `convert_tdmpc2` (TD-MPC2's mt30 / mt80 chunk files,
pickles: only behind an explicit flag).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import UsageError

FORMAT = "mbdpo-lab episodes 1"
CARD = "card.json"


class DatasetError(UsageError):
    """A dataset folder that cannot be read as one (missing card, changed chunk, unknown format)."""


@dataclass
class TaskInfo:
    name: str
    obs_dim: int
    act_dim: int
    episodes: int = 0
    transitions: int = 0


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DatasetWriter:
    """Collects episodes per task and writes them as chunks; `close` writes the card (use as a context)."""

    def __init__(self, out: str | Path, how: str, command: str = "", chunk_episodes: int = 50):
        self.out = Path(out)
        if (self.out / CARD).exists():
            raise DatasetError(f"{self.out} already holds a dataset; choose another folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self.how, self.command, self.chunk_episodes = how, command, int(chunk_episodes)
        self.tasks: dict[str, TaskInfo] = {}
        self.chunks: list[dict] = []
        self._pending: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def add(self, task: str, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """One episode: obs [T+1, O], actions [T, A], rewards [T]."""
        obs, actions = np.asarray(obs, np.float32), np.asarray(actions, np.float32)
        rewards = np.asarray(rewards, np.float32).reshape(-1)
        if not (len(obs) == len(actions) + 1 == len(rewards) + 1) or obs.ndim != 2 or actions.ndim != 2:
            raise ValueError(f"an episode needs obs [T+1, O], actions [T, A] and rewards [T]; got "
                             f"{obs.shape}, {actions.shape}, {rewards.shape}")
        info = self.tasks.setdefault(task, TaskInfo(task, obs.shape[1], actions.shape[1]))
        if (info.obs_dim, info.act_dim) != (obs.shape[1], actions.shape[1]):
            raise ValueError(f"{task}: episodes with {obs.shape[1]} / {actions.shape[1]} observation / action "
                             f"entries, earlier ones had {info.obs_dim} / {info.act_dim}")
        info.episodes += 1
        info.transitions += len(actions)
        self._pending.setdefault(task, []).append((obs, actions, rewards))
        if len(self._pending[task]) >= self.chunk_episodes:
            self._write_chunk(task)

    def _write_chunk(self, task: str) -> None:
        from safetensors.numpy import save_file

        episodes = self._pending.pop(task, [])
        if not episodes:
            return
        longest = max(len(a) for _, a, _ in episodes)
        info = self.tasks[task]
        obs = np.zeros((len(episodes), longest + 1, info.obs_dim), np.float32)
        action = np.zeros((len(episodes), longest, info.act_dim), np.float32)
        reward = np.zeros((len(episodes), longest), np.float32)
        for i, (o, a, r) in enumerate(episodes):
            obs[i, :len(o)], action[i, :len(a)], reward[i, :len(r)] = o, a, r
        name = f"chunk-{len(self.chunks):05d}.safetensors"
        path = self.out / name
        save_file(dict(obs=obs, action=action, reward=reward, length=np.array([len(a) for _, a, _ in episodes])),
                  str(path), metadata={"task": task})
        self.chunks.append(dict(file=name, task=task, episodes=len(episodes),
                                transitions=int(sum(len(a) for _, a, _ in episodes)), sha256=sha256(path)))

    def close(self) -> Path:
        for task in list(self._pending):
            self._write_chunk(task)
        card = dict(format=FORMAT, tasks=[asdict(t) for t in self.tasks.values()],
                    obs_dim=max((t.obs_dim for t in self.tasks.values()), default=0),
                    act_dim=max((t.act_dim for t in self.tasks.values()), default=0),
                    episodes=sum(t.episodes for t in self.tasks.values()),
                    transitions=sum(t.transitions for t in self.tasks.values()),
                    collected=dict(how=self.how, command=self.command,
                                   date=time.strftime("%Y-%m-%d", time.gmtime())),
                    chunks=self.chunks)
        (self.out / CARD).write_text(json.dumps(card, indent=2))
        return self.out

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def write_replay(state: dict[str, np.ndarray], task: str, out: str | Path, how: str, command: str = "",
                 chunk_episodes: int = 50) -> Path:
    """A run's replay (`ReplayBuffer.state_dict` or `ParallelReplay.state_dict`, or a saved replay npz) as
    a dataset: every stored episode with at least one transition, in the order it was collected."""
    episode = np.asarray(state["episode"])
    with DatasetWriter(out, how, command, chunk_episodes) as writer:
        for ep in _episode_runs(episode):
            rows = np.arange(ep[0], ep[1])
            if len(rows) < 2:
                continue
            writer.add(task, state["obs"][rows], state["action"][rows[:-1]], state["reward"][rows[:-1]])
    return Path(out)


def _episode_runs(episode: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) row ranges of consecutive rows with one episode id (>= 0)."""
    if not len(episode):
        return []
    cuts = np.flatnonzero(np.diff(episode)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(episode)]
    return [(int(s), int(e)) for s, e in zip(starts, ends) if episode[s] >= 0]


class EpisodeDataset:
    """A dataset folder, read with bounded memory (see the module docstring)."""

    def __init__(self, path: str | Path, pool_chunks: int = 4, swap_every: int = 50, seed: int = 0,
                 verify: bool = True):
        self.path = Path(path)
        card_path = self.path / CARD
        if not card_path.exists():
            raise DatasetError(f"{self.path} has no {CARD}: not a dataset folder (make one with `mbdpo-lab "
                               "collect`, `train --save-replay` or `convert-tdmpc2`)")
        self.card = json.loads(card_path.read_text())
        if self.card.get("format") != FORMAT:
            raise DatasetError(f"{card_path} is format {self.card.get('format')!r}; this version reads {FORMAT!r}")
        self.tasks = [TaskInfo(**t) for t in self.card["tasks"]]
        self.task_index = {t.name: i for i, t in enumerate(self.tasks)}
        self.obs_dim, self.act_dim = int(self.card["obs_dim"]), int(self.card["act_dim"])
        self.chunks = self.card["chunks"]
        if not self.chunks:
            raise DatasetError(f"{self.path} holds no episodes")
        self.verify = verify
        self._verified: set[str] = set()
        self.rng = np.random.default_rng(seed)
        self.pool_chunks, self.swap_every = max(1, int(pool_chunks)), max(1, int(swap_every))
        self._pool: dict[int, dict[str, np.ndarray]] = {}
        self._draws = 0
        self.loads = 0  # chunks read from disk so far

    def __len__(self) -> int:
        return int(self.card["transitions"])

    def _read(self, k: int) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        chunk = self.chunks[k]
        path = self.path / chunk["file"]
        if not path.exists():
            raise DatasetError(f"{path} is missing; the dataset is incomplete")
        if self.verify and chunk["file"] not in self._verified:
            if sha256(path) != chunk["sha256"]:
                raise DatasetError(f"{path} does not match the sha256 in {CARD}: the file changed or is damaged")
            self._verified.add(chunk["file"])
        self.loads += 1
        return load_file(str(path))

    def episodes(self, task: str | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """Every episode (task, obs [T+1, O], actions [T, A], rewards [T]), one chunk in memory at a time."""
        for k, chunk in enumerate(self.chunks):
            if task is not None and chunk["task"] != task:
                continue
            data = self._read(k)
            for i, T in enumerate(data["length"].tolist()):
                yield chunk["task"], data["obs"][i, :T + 1], data["action"][i, :T], data["reward"][i, :T]

    def _fill_pool(self) -> None:
        weights = np.array([c["transitions"] for c in self.chunks], np.float64)
        while len(self._pool) < min(self.pool_chunks, len(self.chunks)):
            free = [k for k in range(len(self.chunks)) if k not in self._pool]
            p = weights[free] / weights[free].sum()
            k = int(self.rng.choice(free, p=p))
            self._pool[k] = self._read(k)

    def sample(self, batch_size: int, horizon: int) -> dict[str, np.ndarray]:
        """Sub-trajectories of H+1 observations from the pool, time-major like `ReplayBuffer.sample`, zero-padded
        to the dataset's largest observation and action, and ``task`` [B] (index into `tasks`)."""
        if self._draws and self._draws % self.swap_every == 0 and len(self.chunks) > self.pool_chunks:
            self._pool.pop(int(self.rng.choice(list(self._pool))))
        self._fill_pool()
        self._draws += 1
        keys = list(self._pool)
        sizes = np.array([self._starts(self._pool[k], horizon).sum() for k in keys], np.float64)
        if sizes.sum() == 0:
            raise DatasetError(f"no episode in the sampled chunks is longer than the horizon ({horizon})")
        picks = self.rng.choice(len(keys), batch_size, p=sizes / sizes.sum())
        out = dict(obs=np.zeros((horizon + 1, batch_size, self.obs_dim), np.float32),
                   action=np.zeros((horizon, batch_size, self.act_dim), np.float32),
                   reward=np.zeros((horizon, batch_size), np.float32), task=np.zeros(batch_size, np.int64))
        for b, j in enumerate(picks):
            data = self._pool[keys[j]]
            starts = self._starts(data, horizon)
            episode = int(self.rng.choice(len(starts), p=starts / starts.sum()))
            t = int(self.rng.integers(0, starts[episode]))
            obs = data["obs"][episode, t:t + horizon + 1]
            act = data["action"][episode, t:t + horizon]
            out["obs"][:, b, :obs.shape[1]] = obs
            out["action"][:, b, :act.shape[1]] = act
            out["reward"][:, b] = data["reward"][episode, t:t + horizon]
            out["task"][b] = self.task_index[self.chunks[keys[j]]["task"]]
        return out

    @staticmethod
    def _starts(data: dict[str, np.ndarray], horizon: int) -> np.ndarray:
        """Valid start steps of each episode of a chunk: T - H + 1 (0 when shorter than H)."""
        return np.maximum(data["length"] - horizon + 1, 0).astype(np.float64)

    @property
    def pool_bytes(self) -> int:
        return sum(v.nbytes for data in self._pool.values() for v in data.values())


# TD-MPC2's multi-task sets, in the order its chunk files number their tasks (`task` holds the index).
TDMPC2_TASK_SETS = {
    "mt30": ["walker-stand", "walker-walk", "walker-run", "cheetah-run", "reacher-easy", "reacher-hard",
             "acrobot-swingup", "pendulum-swingup", "cartpole-balance", "cartpole-balance-sparse", "cartpole-swingup",
             "cartpole-swingup-sparse", "cup-catch", "finger-spin", "finger-turn-easy", "finger-turn-hard",
             "fish-swim", "hopper-stand", "hopper-hop", "walker-walk-backwards", "walker-run-backwards",
             "cheetah-run-backwards", "cheetah-run-front", "cheetah-run-back", "cheetah-jump", "hopper-hop-backwards",
             "reacher-three-easy", "reacher-three-hard", "cup-spin", "pendulum-spin"],
}
TDMPC2_TASK_SETS["mt80"] = TDMPC2_TASK_SETS["mt30"] + [f"mw-{name}" for name in (
    "assembly basketball button-press-topdown button-press-topdown-wall button-press button-press-wall "
    "coffee-button coffee-pull coffee-push dial-turn disassemble door-open door-close drawer-close drawer-open "
    "faucet-open faucet-close hammer handle-press-side handle-press handle-pull-side handle-pull lever-pull "
    "peg-insert-side peg-unplug-side pick-out-of-hole pick-place pick-place-wall plate-slide plate-slide-side "
    "plate-slide-back plate-slide-back-side push-back push push-wall reach reach-wall shelf-place soccer "
    "stick-push stick-pull sweep-into sweep window-open window-close bin-picking box-close door-lock door-unlock "
    "hand-insert").split()]


def _task_dims(task: str, obs_dim: int, act_dim: int) -> tuple[int, int]:
    """The task's own sizes when our environment layer knows it, else the padded ones of the file."""
    from .envs import make_env

    try:
        with make_env(task) as env:
            return min(env.obs_dim, obs_dim), min(env.act_dim, act_dim)
    except Exception:  # noqa: BLE001 - custom or MetaWorld tasks: keep the file's padded sizes
        return obs_dim, act_dim


def convert_tdmpc2(files: list[str | Path], task_set: str, out: str | Path, trust_pickle: bool = False,
                   chunk_episodes: int = 50) -> Path:
    """TD-MPC2 mt30 / mt80 chunk files (pickled TensorDicts) into a dataset of ours.

    Reading a pickle runs whatever code it names, so it happens only with ``trust_pickle`` (the CLI's
    ``--trust-pickle``), once: the result is safetensors and JSON. A TensorDict of shape [E, T+1] holds
    ``obs`` [E, T+1, O], ``action`` and ``reward`` whose step t+1 is the transition from obs t (step 0 is
    NaN), and ``task`` [E, T+1], the index of each episode's task in the set.
    """
    if task_set not in TDMPC2_TASK_SETS:
        raise DatasetError(f"task set must be one of {', '.join(TDMPC2_TASK_SETS)}, got {task_set!r}")
    if not trust_pickle:
        raise DatasetError("TD-MPC2's chunk files are pickles, which run code when read; convert only files you "
                           "trust, with --trust-pickle (they are read once and written as safetensors)")
    import torch

    names = TDMPC2_TASK_SETS[task_set]
    dims: dict[str, tuple[int, int]] = {}
    with DatasetWriter(out, how=f"converted from TD-MPC2 {task_set} chunk files",
                       command=f"mbdpo-lab convert-tdmpc2 {' '.join(Path(f).name for f in files)} --task-set "
                               f"{task_set} --trust-pickle", chunk_episodes=chunk_episodes) as writer:
        for path in files:
            td = torch.load(path, weights_only=False, map_location="cpu")
            obs, action, reward, task = (td[k].float().numpy() if k != "task" else td[k].numpy()
                                         for k in ("obs", "action", "reward", "task"))
            for e in range(obs.shape[0]):
                index = int(task[e, 0])
                if not 0 <= index < len(names):
                    raise DatasetError(f"{path}: task index {index} is outside {task_set} ({len(names)} tasks)")
                name = names[index]
                if name not in dims:
                    dims[name] = _task_dims(name, obs.shape[-1], action.shape[-1])
                o_dim, a_dim = dims[name]
                writer.add(name, obs[e, :, :o_dim], action[e, 1:, :a_dim], reward[e, 1:])
    return Path(out)
