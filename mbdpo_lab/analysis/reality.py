"""The planner checked against physics: what each level's plan was imagined to earn, and what it earns.

For a traced decision at step t of a recorded rollout, the environment is brought back to that
instant (same seed, the rollout's actions replayed: exact, task details such as a target's place
included) and each level's plan (its weighted mean of elites), every elite and the final plan are
executed for the H steps of the horizon from a saved simulator state, which is restored after each.
Imagined and real are put on the same footing: the discounted H-step rewards (predicted by the reward
head along the imagined latents vs returned by the simulator), and the same plus gamma^H times the
model's value V(z) = mean over Q heads of Q(z, pi's mean action) at the last latent (imagined) or at
the encoding of the real last observation. Their difference is the optimism that does not survive
reality: the over-estimation the paper is about, decision by decision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..planner import DenoiseTrace


@dataclass
class RealityCheck:
    """Imagined vs real outcome of one traced decision, level by level (L levels, E elites)."""

    t: int
    levels: np.ndarray  # [L] noise level of each row
    imagined_rewards: np.ndarray  # [L] discounted H-step predicted rewards of each level's plan
    real_rewards: np.ndarray  # [L] the same actions in the simulator
    imagined_return: np.ndarray  # [L] + gamma^H V(last imagined latent)
    real_return: np.ndarray  # [L] + gamma^H V(encoding of the real last observation)
    elite_imagined: np.ndarray  # [L, E] imagined return of every elite
    elite_real: np.ndarray  # [L, E] real return of every elite
    plan_imagined: float  # the final plan
    plan_real: float
    frames: np.ndarray | None  # [H+1, h, w, 3] the final plan executed, first frame the state at t

    @property
    def optimism(self) -> np.ndarray:
        """[L] imagined minus real return of each level's plan (> 0: the model promised more)."""
        return self.imagined_return - self.real_return


@torch.no_grad()
def _value(agent, z: torch.Tensor) -> torch.Tensor:
    """V(z) = mean over all Q heads of Q(z, pi's mean action): one deterministic number per row."""
    wm = agent.wm
    a = wm.pi(z).mean
    values = wm.two_hot.decode(wm.q_logits(z, a, list(range(agent.cfg.num_q))))
    return values.mean(0)


@torch.no_grad()
def imagined_outcome(agent, obs: np.ndarray, plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(discounted predicted rewards [N], + gamma^H V(z_H) [N]) of action sequences plans [N, H, A] from obs."""
    wm, gamma = agent.wm, agent.gamma
    actions = torch.as_tensor(np.clip(plans, -1, 1), dtype=torch.float32, device=agent.device)
    z = agent.encode(obs).expand(len(actions), -1)
    rewards = torch.zeros(len(actions), device=agent.device)
    for h in range(actions.shape[1]):
        rewards += gamma ** h * wm.reward(z, actions[:, h]).reshape(-1)
        z = wm.next(z, actions[:, h])
    total = rewards + gamma ** actions.shape[1] * _value(agent, z)
    return rewards.cpu().numpy().astype(np.float64), total.cpu().numpy().astype(np.float64)


@torch.no_grad()
def real_outcome(agent, env, plans: np.ndarray, frame_size: tuple[int, int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """The same numbers from the simulator: each plan executed from ``env``'s current state (restored after);
    frames of the last plan with ``frame_size``."""
    gamma = agent.gamma
    rewards, last_obs, frames = [], [], []
    clipped = np.clip(plans, -1, 1)
    for i, plan in enumerate(clipped):
        obs, r, fr = env.branch(plan, frame_size=frame_size if i == len(clipped) - 1 else None)
        rewards.append(float((gamma ** np.arange(len(r)) * r).sum()))
        last_obs.append(obs[-1])
        frames.append(fr)
    z = agent.encode_batch(list(last_obs))
    totals = np.asarray(rewards) + gamma ** plans.shape[1] * _value(agent, z).cpu().numpy()
    return np.asarray(rewards, np.float64), totals.astype(np.float64), frames


def reality_check(agent, env, trace: DenoiseTrace, obs: np.ndarray, t: int, frame_size: tuple[int, int] | None = None
                  ) -> RealityCheck:
    """Check ``trace`` (decided at ``obs``, ``env`` standing at that state) against the simulator."""
    L, E = trace.elite_idx.shape
    level_plans = trace.weighted_mean
    elites = np.stack([trace.candidates[k][trace.elite_idx[k]] for k in range(L)])  # [L, E, H, A]
    plans = np.concatenate([level_plans, elites.reshape(L * E, *elites.shape[2:]), trace.plan[None]])
    imagined_r, imagined = imagined_outcome(agent, obs, plans)
    real_r, real, frames = real_outcome(agent, env, plans, frame_size)
    return RealityCheck(t=t, levels=trace.levels.copy(), imagined_rewards=imagined_r[:L], real_rewards=real_r[:L],
                        imagined_return=imagined[:L], real_return=real[:L],
                        elite_imagined=imagined[L:L + L * E].reshape(L, E), elite_real=real[L:L + L * E].reshape(L, E),
                        plan_imagined=float(imagined[-1]), plan_real=float(real[-1]), frames=frames[-1])


def env_at(agent, task: str, seed: int, actions: np.ndarray):
    """A fresh environment of ``task`` seeded ``seed``, reset and stepped through ``actions``: the state a
    recorded rollout (made with that seed) was in after those steps."""
    from ..envs import make_env

    cfg = agent.cfg
    env = make_env(task, seed=seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length)
    env.reset()
    for a in actions:
        env.step(a)
    return env
