"""One way to run a noise-free episode: reset, plan, act, step, and record what the caller asks for.

Training steps through `Trainer.step` (exploration noise, replay, updates). Everything else that runs
an agent in an environment (evaluation, videos, the widgets' rollouts, the latent, model and anchoring
analyses) calls `run_episode`, so they all act exactly as evaluation does. The agent's warm start is
scoped: a run leaves it as it found it. A caller that needs more per step (the imagined plan, the
prior's action) passes ``on_plan``, which sees each decision before the environment steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
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

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def total_return(self) -> float:
        return float(sum(self.rewards.tolist()))  # left to right, as the step loop adds them


def run_episode(agent, env, generator: torch.Generator | None = None, *, planner: str | None = None,
                trace: bool = False, max_steps: int | None = None,
                frame_size: int | tuple[int, int] | None = None, final_frame: bool = False,
                tolerate_render_errors: bool = False, record_warm_starts: bool = False,
                on_plan: PlanHook | None = None, should_stop: Callable[[], bool] | None = None) -> Episode:
    """Reset ``env`` and act with ``agent``'s planner, without exploration noise, until the episode ends.

    ``generator`` is the only source of randomness (the global torch RNG is not touched).
    ``frame_size`` renders a frame before every step (and after the last with ``final_frame``).
    ``should_stop()`` is asked before every step; when it turns true the episode ends with ``stopped``.
    """
    size = (frame_size, frame_size) if isinstance(frame_size, int) else frame_size
    obs_l, act_l, rew_l, ms_l, frames, warm = [], [], [], [], [], []
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
            start = time.perf_counter()
            result = agent.plan(obs, t0=(t == 0), planner=planner, trace=trace, generator=generator)
            ms_l.append(1000 * (time.perf_counter() - start))
            if on_plan is not None:
                on_plan(t, obs, result)
            action = result.action.clamp(-1, 1).float().cpu().numpy()
            obs_l.append(np.asarray(obs, np.float32))
            act_l.append(action)
            obs, reward, done = env.step(action)
            rew_l.append(reward)
            t += 1
        obs_l.append(np.asarray(obs, np.float32))
        if final_frame and not stopped:
            render()
    act_dim = getattr(agent, "act_dim", 0)
    return Episode(obs=np.asarray(obs_l, np.float32),
                   actions=np.asarray(act_l, np.float32).reshape(len(act_l), act_dim),
                   rewards=np.asarray(rew_l, np.float64), plan_ms=np.asarray(ms_l, np.float64),
                   frames=np.asarray(frames, np.uint8) if frames and not render_error else None,
                   warm_starts=warm, render_error=render_error, stopped=stopped)
