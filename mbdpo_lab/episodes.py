"""One way to run a noise-free episode: reset, plan, act, step, and record what the caller asks for.

Training steps through `Trainer.step` (exploration noise, replay, updates). Everything else that runs
an agent in an environment (evaluation, videos, the widgets' rollouts, the latent, model and anchoring
analyses) calls `run_episode`, so they all act exactly as evaluation does. The agent's warm start is
scoped: a run leaves it as it found it. A caller that needs more per step (the imagined plan, the
prior's action) passes ``on_plan``, which sees each decision before the environment steps.

`run_episodes` runs several episodes in lock-step, one environment each, with one batched planner call
per step (`MBDPO.plan_batch`): each episode gets exactly the actions `run_episode` would give it with
the same environment seed and generator (a test holds it to that), in a fraction of the time.

``record=True`` keeps what lets an episode be looked at again without re-planning: every final plan
and MuJoCo's state at every step. Saved (`save_episodes`, npz, no pickle), it is a few tens of KB; its
latents, imagined branches and model checks are recomputed in milliseconds and its frames rendered on
demand (`StateFrames`): the lessons ship such recordings instead of planning for minutes in class.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .planner import PlanResult

# on_plan(t, obs, result): called after the planner decided at step t, before the environment steps
PlanHook = Callable[[int, np.ndarray, PlanResult], None]


@dataclass
class Episode:
    """What one run recorded; ``T`` steps were taken."""

    obs: np.ndarray  # [T+1, obs_dim]: every observation, the last one after the final step
    actions: np.ndarray  # [T, A] executed (clipped) actions
    rewards: np.ndarray  # [T]
    plan_ms: np.ndarray  # [T] wall time of each decision
    frames: np.ndarray | None = None  # [T (+1 with final_frame), height, width, 3]
    warm_starts: list[np.ndarray | None] = field(default_factory=list)  # the plan step t started from
    render_error: str = ""  # why frames are missing, when rendering failed and was tolerated
    stopped: bool = False  # should_stop() ended the episode early
    success: bool | None = None  # a goal-directed task's: at the goal when the episode ended (else None)
    plans: np.ndarray | None = None  # [T, H, A] the final plan of every decision (``record``)
    states: np.ndarray | None = None  # [T+1, S] MuJoCo physical state before every step and after the last

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def total_return(self) -> float:
        return float(sum(self.rewards.tolist()))  # left to right, as the step loop adds them


_RECORDED = ("obs", "actions", "rewards", "plan_ms", "plans", "states")


def save_episodes(path: str | Path, episodes: list[Episode], **meta) -> Path:
    """One npz of recorded episodes (no frames: `StateFrames` renders them again from ``states``) with
    ``meta`` (task, seed, ...) as JSON text; nothing in it needs pickle to read."""
    import json

    arrays = {f"ep{i}_{k}": getattr(ep, k) for i, ep in enumerate(episodes) for k in _RECORDED
              if getattr(ep, k) is not None}
    meta = dict(meta, episodes=len(episodes))
    if any(ep.success is not None for ep in episodes):  # a goal-directed task's ends, kept with its episodes
        meta["success"] = [ep.success for ep in episodes]
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return Path(path)


def load_episodes(path: str | Path) -> tuple[list[Episode], dict]:
    """(episodes, meta) from `save_episodes`' file."""
    import json

    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        success = meta.pop("success", [None] * meta["episodes"])
        episodes = [Episode(**{k: data[f"ep{i}_{k}"] for k in _RECORDED if f"ep{i}_{k}" in data.files},
                            success=success[i]) for i in range(meta["episodes"])]
    return episodes, meta


# One rendering env per (thread, task), kept for the process: an env owns an OpenGL context bound to
# the thread that made it, and one collected later on another thread fails to free it (EGL errors).
_RENDER_ENVS: dict[tuple[int, str], object] = {}


def _render_env(task: str):
    import threading

    key = (threading.get_ident(), task)
    if key not in _RENDER_ENVS:
        from .envs import make_env

        _RENDER_ENVS[key] = make_env(task)
    return _RENDER_ENVS[key]


class StateFrames(Sequence):
    """The frames of a recorded episode, rendered when asked for (a slider shows one at a time)."""

    def __init__(self, task: str, states: np.ndarray, size: int = 96):
        self.task, self.states, self.size = task, states, size

    def __len__(self) -> int:
        return len(self.states)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.states), self.size, self.size, 3)

    def __getitem__(self, t):
        if isinstance(t, slice):
            return np.stack([self[i] for i in range(*t.indices(len(self)))])
        return _render_env(self.task).render_state(self.states[t], self.size, self.size)

    def __array__(self, dtype=None, copy=None):
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype)


def _action_size(agent, task=None) -> int:
    """The action entries the environment takes (a multi-task model plans padded actions)."""
    return agent.action_size(task) if hasattr(agent, "action_size") else getattr(agent, "act_dim", 0)


def run_episode(agent, env, generator: torch.Generator | None = None, *, planner: str | None = None,
                trace: bool = False, max_steps: int | None = None,
                frame_size: int | tuple[int, int] | None = None, final_frame: bool = False,
                tolerate_render_errors: bool = False, record_warm_starts: bool = False,
                on_plan: PlanHook | None = None, should_stop: Callable[[], bool] | None = None,
                record: bool = False) -> Episode:
    """Reset ``env`` and act with ``agent``'s planner, without exploration noise, until the episode ends.

    ``generator`` is the only source of randomness (the global torch RNG is not touched).
    ``frame_size`` renders a frame before every step (and after the last with ``final_frame``).
    ``should_stop()`` is asked before every step; when it turns true the episode ends with ``stopped``.
    ``record`` keeps every final plan and the simulator state (see the module's docstring).
    """
    size = (frame_size, frame_size) if isinstance(frame_size, int) else frame_size
    act_dim = _action_size(agent)
    obs_l, act_l, rew_l, ms_l, frames, warm, plans, states = [], [], [], [], [], [], [], []
    render_error, stopped = "", False

    def render() -> None:
        nonlocal render_error
        if not size or render_error:
            return
        try:
            frames.append(env.render(*size))
        except Exception as exc:  # noqa: BLE001 - the caller shows the hint instead of failing
            if not tolerate_render_errors:
                raise
            render_error = str(exc)

    with agent.scoped_warm_start():
        obs, done, t = env.reset(), False, 0
        while not done and (max_steps is None or t < max_steps):
            if should_stop is not None and should_stop():
                stopped = True
                break
            if record_warm_starts:
                prev = agent.prev_plan
                warm.append(None if t == 0 or prev is None else prev.float().cpu().numpy().copy())
            render()
            if record:
                states.append(env.physics_state())
            start = time.perf_counter()
            result = agent.plan(obs, t0=(t == 0), planner=planner, trace=trace, generator=generator)
            ms_l.append(1000 * (time.perf_counter() - start))
            if on_plan is not None:
                on_plan(t, obs, result)
            action = result.action[:act_dim].clamp(-1, 1).float().cpu().numpy()  # the task's entries
            if record:
                plans.append(result.plan.float().cpu().numpy())
            obs_l.append(np.asarray(obs, np.float32))
            act_l.append(action)
            obs, reward, done = env.step(action)
            rew_l.append(reward)
            t += 1
        obs_l.append(np.asarray(obs, np.float32))
        if record:
            states.append(env.physics_state())
        if final_frame and not stopped:
            render()
    return Episode(obs=np.asarray(obs_l, np.float32),
                   actions=np.asarray(act_l, np.float32).reshape(len(act_l), act_dim),
                   rewards=np.asarray(rew_l, np.float64), plan_ms=np.asarray(ms_l, np.float64),
                   frames=np.asarray(frames, np.uint8) if frames and not render_error else None,
                   warm_starts=warm, render_error=render_error, stopped=stopped,
                   success=getattr(env, "success", None),
                   plans=np.asarray(plans, np.float32) if record else None,
                   states=np.asarray(states, np.float64) if record else None)


def episode_seeds(seed: int, episodes: int) -> list[tuple[int, int]]:
    """(environment seed, planner seed) of each episode: independent streams from one seed, so an episode
    is the same whether it runs alone or in lock-step with others."""
    children = np.random.SeedSequence(seed).spawn(episodes)
    return [tuple(int(v) for v in child.generate_state(2)) for child in children]


def collect_episodes(agent, episodes: int, noise_std: float, seed: int = 0, lockstep: int = 10):
    """Yield ``episodes`` episodes of the agent's task, acting with N(0, noise_std^2) on every planned
    action, ``lockstep`` at a time; episode i is seeded by `episode_seeds`' i-th pair (reproducible)."""
    from .envs import make_env

    cfg = agent.cfg
    seeds = episode_seeds(seed, episodes)
    for first in range(0, episodes, lockstep):
        group = seeds[first:first + lockstep]
        envs = [make_env(cfg.task, seed=env_seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
                for env_seed, _ in group]
        gens = [torch.Generator(device=agent.device).manual_seed(torch_seed) for _, torch_seed in group]
        try:
            yield from run_episodes(agent, envs, gens, noise_std=noise_std)
        finally:
            for env in envs:
                env.close()


def run_episodes(agent, envs: list, generators: list, *, planner: str | None = None,
                 frame_size: int | tuple[int, int] | None = None,
                 should_stop: Callable[[], bool] | None = None, noise_std: float = 0.0,
                 task: int | str | None = None) -> list[Episode]:
    """Reset every env and run one episode in each, in lock-step (see the module docstring).

    ``generators[i]`` is episode i's only source of randomness; ``frame_size`` renders the first
    episode's frames. An episode's ``plan_ms`` is its share of each batched call (ms per action).
    ``noise_std`` > 0 adds N(0, noise_std^2) to every action (from the episode's generator), as data
    collection does; the default is evaluation's noise-free acting. A multi-task agent acts for ``task``
    (every env is of that task), and each env gets that task's action entries.
    """
    size = (frame_size, frame_size) if isinstance(frame_size, int) else frame_size
    n = len(envs)
    act_dim = _action_size(agent, task)
    obs = [env.reset() for env in envs]
    previous: list[torch.Tensor | None] = [None] * n
    obs_l, act_l, rew_l, ms_l = ([[] for _ in range(n)] for _ in range(4))
    frames: list[np.ndarray] = []
    active, stopped = list(range(n)), False
    while active:
        if should_stop is not None and should_stop():
            stopped = True
            break
        if size and active[0] == 0:
            frames.append(envs[0].render(*size))
        start = time.perf_counter()
        results = agent.plan_batch([obs[i] for i in active], [previous[i] for i in active],
                                   [generators[i] for i in active], planner=planner,
                                   tasks=None if task is None else [task] * len(active))
        share = 1000 * (time.perf_counter() - start) / len(active)
        still = []
        for i, result in zip(active, results):
            action = result.action
            if noise_std > 0:
                action = action + noise_std * torch.randn(action.shape, generator=generators[i], device=action.device)
            action = action[:act_dim].clamp(-1, 1).float().cpu().numpy()  # a padded model's: the task's entries
            previous[i] = result.plan
            obs_l[i].append(np.asarray(obs[i], np.float32))
            act_l[i].append(action)
            ms_l[i].append(share)
            obs[i], reward, done = envs[i].step(action)
            rew_l[i].append(reward)
            if not done:
                still.append(i)
        active = still
    return [Episode(obs=np.asarray(obs_l[i] + [np.asarray(obs[i], np.float32)], np.float32),
                    actions=np.asarray(act_l[i], np.float32).reshape(len(act_l[i]), act_dim),
                    rewards=np.asarray(rew_l[i], np.float64), plan_ms=np.asarray(ms_l[i], np.float64),
                    frames=np.asarray(frames, np.uint8) if i == 0 and frames else None, stopped=stopped,
                    success=getattr(envs[i], "success", None))
            for i in range(n)]
