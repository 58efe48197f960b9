"""Change the physics mid-episode and watch the world model's surprise and the planner's fate.

At step ``at_step`` one physical parameter of the simulator is scaled (gravity, the masses of the
bodies, or the actuators' gain) and the episode goes on. At every step the model is asked what it
expected: the reward head's prediction for the executed action against the reward that came, and the
dynamics' next latent against the encoding of the observation that came (mean absolute difference of
the SimNorm latents). Before the change both errors are what the model learned to live with; after it,
they show how surprised the model is, and the return after the change shows whether the planner copes.
Run for two agents that differ only in eta, it asks whether the anchor to familiar actions helps or
hurts when the familiar no longer works.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PARAMETERS = {
    "gravity": "gravity (all three components)",
    "mass": "mass of every body",
    "actuator_gain": "actuator gain (force per unit action)",
}


def perturb(env, parameter: str, scale: float) -> None:
    """Scale one physical parameter of ``env``'s MuJoCo model in place (lasts until the env is remade)."""
    if parameter not in PARAMETERS:
        raise ValueError(f"parameter must be one of {', '.join(PARAMETERS)}, got {parameter!r}")
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale}")
    model = env._env.physics.model
    if parameter == "gravity":
        model.opt.gravity[:] = model.opt.gravity * scale
    elif parameter == "mass":
        model.body_mass[1:] = model.body_mass[1:] * scale  # body 0 is the world
    else:
        model.actuator_gear[:, 0] = model.actuator_gear[:, 0] * scale


@dataclass
class PerturbedEpisode:
    """One episode with a change of physics at ``at_step`` (T steps)."""

    label: str
    parameter: str
    scale: float
    at_step: int
    rewards: np.ndarray  # [T]
    reward_error: np.ndarray  # [T] |predicted reward - real reward| of the executed action
    latent_error: np.ndarray  # [T] mean |next(z_t, a_t) - encode(o_{t+1})|

    def split(self, values: np.ndarray) -> tuple[float, float]:
        """Mean of ``values`` before and after the change."""
        before, after = values[:self.at_step], values[self.at_step:]
        return (float(before.mean()) if len(before) else float("nan"),
                float(after.mean()) if len(after) else float("nan"))

    @property
    def return_after(self) -> float:
        return float(self.rewards[self.at_step:].sum())


@torch.no_grad()
def run_perturbed(agent, parameter: str, scale: float, at_step: int, steps: int, seed: int = 0,
                  label: str = "") -> PerturbedEpisode:
    """Run ``agent`` noise-free on its task for ``steps`` steps, scaling ``parameter`` at ``at_step``."""
    from ..envs import make_env

    cfg, wm = agent.cfg, agent.wm
    if not 0 <= at_step <= steps:
        raise ValueError(f"at_step must be within the episode's {steps} steps, got {at_step}")
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    rewards, reward_err, latent_err = [], [], []
    with make_env(cfg.task, seed=seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length) as env, \
            agent.scoped_warm_start():
        obs = env.reset()
        for t in range(steps):
            if t == at_step:
                perturb(env, parameter, scale)
            action = agent.plan(obs, t0=t == 0, generator=gen).action.clamp(-1, 1)
            z = agent.encode(obs).reshape(1, -1)
            a = action.reshape(1, -1).float()
            predicted_reward = float(wm.reward(z, a).reshape(-1)[0])
            predicted_next = wm.next(z, a)
            obs, reward, done = env.step(action.cpu().numpy())
            rewards.append(reward)
            reward_err.append(abs(predicted_reward - reward))
            latent_err.append(float((predicted_next - agent.encode(obs).reshape(1, -1)).abs().mean()))
            if done:
                break
    return PerturbedEpisode(label or f"eta={cfg.eta:g}", parameter, float(scale), int(at_step),
                            np.asarray(rewards), np.asarray(reward_err), np.asarray(latent_err))
