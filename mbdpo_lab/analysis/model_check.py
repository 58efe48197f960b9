"""How good is the world model? Predicted vs real rewards along a real rollout.

For every step t of an episode (acting with the agent's planner, no exploration noise):
``one_step`` is R(h(o_t), a_t), the reward predicted from the encoded real state, and
``open_loop`` is the reward predicted after imagining k steps with the dynamics from h(o_{t-k})
through the real actions a_{t-k..t} (how quickly imagination drifts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..agent import MBDPO
from ..episodes import Episode, run_episode


@dataclass
class RewardCheck:
    real: np.ndarray  # [T]
    one_step: np.ndarray  # [T]
    open_loop: np.ndarray  # [T] (first k entries are one-step predictions)
    open_loop_steps: int
    latents: np.ndarray  # [T+1, L] encoded real states

    def errors(self) -> dict[str, float]:
        return {"one_step_mae": float(np.abs(self.one_step - self.real).mean()),
                "open_loop_mae": float(np.abs(self.open_loop - self.real).mean()),
                "real_return": float(self.real.sum()), "one_step_return": float(self.one_step.sum())}


@torch.no_grad()
def check_episode(agent: MBDPO, episode: Episode, open_loop_steps: int = 3) -> RewardCheck:
    """The model's rewards along a recorded episode: from each encoded real state, and after imagining
    ``open_loop_steps`` steps through the real actions. No planning: milliseconds."""
    actions, rewards = episode.actions, episode.rewards
    wm = agent.wm
    obs_t = torch.as_tensor(episode.obs, device=agent.device)
    act_t = torch.as_tensor(actions, device=agent.device)
    z = wm.encode(obs_t)  # [T+1, L]
    one_step = wm.reward(z[:-1], act_t).squeeze(-1)
    k = open_loop_steps
    open_loop = one_step.clone()
    if len(actions) > k:
        zi = z[: len(actions) - k]  # start k steps earlier
        for j in range(k):
            zi = wm.next(zi, act_t[j: j + len(zi)])
        open_loop[k:] = wm.reward(zi, act_t[k:]).squeeze(-1)
    return RewardCheck(real=np.asarray(rewards, np.float32), one_step=one_step.float().cpu().numpy(),
                       open_loop=open_loop.float().cpu().numpy(), open_loop_steps=k,
                       latents=z.float().cpu().numpy())


def drift(agent: MBDPO, episode: Episode, horizons=(1, 3, 5, 10)) -> dict[int, float]:
    """Mean absolute reward error after imagining k steps, for each k (how fast imagination drifts)."""
    return {k: check_episode(agent, episode, k).errors()["open_loop_mae"] for k in horizons}


@torch.no_grad()
def reward_check(agent: MBDPO, env, steps: int | None = None, open_loop_steps: int = 3,
                 seed: int = 0) -> RewardCheck:
    """Run one noise-free episode with the agent's planner and check the model along it."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    return check_episode(agent, run_episode(agent, env, gen, max_steps=steps), open_loop_steps)
