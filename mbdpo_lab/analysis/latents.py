"""Collect the latent path of evaluation episodes: z_t = h(o_t), and the imagined branch of every plan.

The branch at step t is the planner's final plan rolled through the learned dynamics from z_t
(H+1 latents), i.e. what the agent expected to happen. Episodes are recorded once (plans and simulator
states) and their latents computed from the recording, so a shipped recording gives the same picture
without planning. Saved as a plain npz (no pickle).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..agent import MBDPO
from ..episodes import Episode, StateFrames, run_episode


@dataclass
class LatentRollouts:
    """Per episode: latents [T+1, L], imagined [T, H+1, L], rewards [T], actions [T, A], frames [T+1, h, w, 3]."""

    task: str
    latents: list[np.ndarray]
    imagined: list[np.ndarray]
    rewards: list[np.ndarray]
    actions: list[np.ndarray]
    frames: list[np.ndarray] = field(default_factory=list)
    action_repeat: int = 1  # control steps per agent step: each of ``rewards`` sums that many

    @property
    def num_episodes(self) -> int:
        return len(self.latents)

    @property
    def num_points(self) -> int:
        return int(sum(len(z) for z in self.latents))

    def returns(self) -> list[float]:
        return [float(r.sum()) for r in self.rewards]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"task": np.array(self.task), "action_repeat": np.array(self.action_repeat)}
        for i in range(self.num_episodes):
            arrays[f"latents_{i}"] = self.latents[i]
            arrays[f"imagined_{i}"] = self.imagined[i]
            arrays[f"rewards_{i}"] = self.rewards[i]
            arrays[f"actions_{i}"] = self.actions[i]
            if self.frames:
                arrays[f"frames_{i}"] = np.asarray(self.frames[i], np.uint8)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatentRollouts":
        with np.load(path, allow_pickle=False) as data:
            n = sum(1 for k in data.files if k.startswith("latents_"))
            get = lambda key: [data[f"{key}_{i}"] for i in range(n)]  # noqa: E731
            frames = get("frames") if "frames_0" in data.files else []
            repeat = int(data["action_repeat"]) if "action_repeat" in data.files else 1
            return cls(task=str(data["task"]), latents=get("latents"), imagined=get("imagined"),
                       rewards=get("rewards"), actions=get("actions"), frames=frames, action_repeat=repeat)


@torch.no_grad()
def latents_of(agent: MBDPO, task: str, episodes: list[Episode], frame_size: int | None = 96) -> LatentRollouts:
    """The latent path of recorded episodes (``run_episode(record=True)``), in one batched pass: z_t = h(o_t)
    and every final plan rolled through the dynamics from z_t. Frames render on demand from the
    recorded simulator states (``frame_size`` None: no frames)."""
    out = LatentRollouts(task=task, latents=[], imagined=[], rewards=[], actions=[],
                         action_repeat=agent.cfg.action_repeat)
    for ep in episodes:
        if ep.plans is None:
            raise ValueError("the episode was run without record=True: it holds no plans to imagine from")
        z = agent.encode_observations(ep.obs)
        plans = torch.as_tensor(ep.plans, device=agent.device)
        branch = [z[:-1]]
        for h in range(plans.shape[1]):
            branch.append(agent.wm.next(branch[-1], plans[:, h]))
        branches = torch.stack(branch, 1)  # [T, H+1, L]
        # the state latent only: a multi-task latent carries its task context after it, the same at every step
        out.latents.append(agent.wm.latent(z).float().cpu().numpy())
        out.imagined.append(agent.wm.latent(branches).float().cpu().numpy())
        out.rewards.append(np.asarray(ep.rewards, np.float32))
        out.actions.append(np.asarray(ep.actions, np.float32))
        if frame_size and ep.states is not None:
            out.frames.append(StateFrames(task, ep.states, frame_size))
    return out


@torch.no_grad()
def record_episodes(agent: MBDPO, env, episodes: int = 2, max_steps: int | None = None,
                    seed: int = 0) -> list[Episode]:
    """Noise-free episodes with every plan and simulator state recorded (one generator for all)."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    return [run_episode(agent, env, gen, max_steps=max_steps, record=True) for _ in range(episodes)]


def collect_latents(agent: MBDPO, env, episodes: int = 2, frames: bool = False, frame_size: int = 96,
                    max_steps: int | None = None, seed: int = 0) -> LatentRollouts:
    """Run noise-free episodes with the agent's planner, recording real and imagined latents."""
    recorded = record_episodes(agent, env, episodes, max_steps=max_steps, seed=seed)
    return latents_of(agent, getattr(env, "name", agent.cfg.task), recorded, frame_size if frames else None)
