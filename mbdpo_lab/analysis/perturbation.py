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


def _check(parameter: str, scale: float) -> None:
    if parameter not in PARAMETERS:
        raise ValueError(f"parameter must be one of {', '.join(PARAMETERS)}, got {parameter!r}")
    if not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale}")


def perturb(env, parameter: str, scale: float) -> None:
    """Scale one physical parameter of ``env``'s MuJoCo model in place (lasts until the env is remade)."""
    _check(parameter, scale)
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
    """Run ``agent`` noise-free on its task for ``steps`` steps (`run_episode`, as evaluation acts), scaling
    ``parameter`` after the decision of step ``at_step`` and before the simulator carries it out."""
    from ..envs import make_env
    from ..episodes import run_episode

    cfg, wm = agent.cfg, agent.wm
    if not 0 <= at_step <= steps:
        raise ValueError(f"at_step must be within the episode's {steps} steps, got {at_step}")
    _check(parameter, scale)  # before the episode, not at its middle

    def change(t, obs, result) -> None:
        if t == at_step:
            perturb(env, parameter, scale)

    gen = torch.Generator(device=agent.device).manual_seed(seed)
    with make_env(cfg.task, seed=seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length) as env:
        episode = run_episode(agent, env, gen, max_steps=steps, on_plan=change)
    z = agent.encode_batch(list(episode.obs))  # [T+1, L]
    actions = torch.as_tensor(episode.actions, dtype=torch.float32, device=agent.device)
    predicted_reward = wm.reward(z[:-1], actions).reshape(-1).cpu().numpy()
    latent_error = (wm.next(z[:-1], actions) - z[1:]).abs().mean(-1).cpu().numpy()
    return PerturbedEpisode(label or f"eta={cfg.eta:g}", parameter, float(scale), int(at_step), episode.rewards,
                            np.abs(predicted_reward - episode.rewards), latent_error.astype(np.float64))
