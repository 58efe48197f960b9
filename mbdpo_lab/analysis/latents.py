"""Collect the latent path of evaluation episodes: z_t = h(o_t), and the imagined branch of every plan.

The branch at step t is the planner's final plan rolled through the learned dynamics from z_t
(H+1 latents), i.e. what the agent expected to happen. Saved as a plain npz (no pickle).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..agent import MBDPO
from ..episodes import run_episode


@dataclass
class LatentRollouts:
    """Per episode: latents [T+1, L], imagined [T, H+1, L], rewards [T], actions [T, A], frames [T+1, h, w, 3]."""

    task: str
    latents: list[np.ndarray]
    imagined: list[np.ndarray]
    rewards: list[np.ndarray]
    actions: list[np.ndarray]
    frames: list[np.ndarray] = field(default_factory=list)

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
        arrays: dict[str, np.ndarray] = {"task": np.array(self.task)}
        for i in range(self.num_episodes):
            arrays[f"latents_{i}"] = self.latents[i]
            arrays[f"imagined_{i}"] = self.imagined[i]
            arrays[f"rewards_{i}"] = self.rewards[i]
            arrays[f"actions_{i}"] = self.actions[i]
            if self.frames:
                arrays[f"frames_{i}"] = self.frames[i]
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatentRollouts":
        with np.load(path, allow_pickle=False) as data:
            n = sum(1 for k in data.files if k.startswith("latents_"))
            get = lambda key: [data[f"{key}_{i}"] for i in range(n)]  # noqa: E731
            frames = get("frames") if "frames_0" in data.files else []
            return cls(task=str(data["task"]), latents=get("latents"), imagined=get("imagined"),
                       rewards=get("rewards"), actions=get("actions"), frames=frames)


@torch.no_grad()
def collect_latents(agent: MBDPO, env, episodes: int = 2, frames: bool = False, frame_size: int = 96,
                    max_steps: int | None = None, seed: int = 0) -> LatentRollouts:
    """Run noise-free episodes with the agent's planner, recording real and imagined latents."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    out = LatentRollouts(task=getattr(env, "name", agent.cfg.task), latents=[], imagined=[], rewards=[],
                         actions=[])
    for _ in range(episodes):
        zs, branches = [], []

        def record(t: int, obs: np.ndarray, result) -> None:
            z0 = agent.encode(obs)
            branch = agent.return_model(z0, generator=gen).rollout(result.plan[None])["latents"][0]
            zs.append(z0.float().cpu().numpy())
            branches.append(branch.cpu().numpy())

        ep = run_episode(agent, env, gen, max_steps=max_steps, on_plan=record,
                         frame_size=frame_size if frames else None, final_frame=True)
        zs.append(agent.encode(ep.obs[-1]).float().cpu().numpy())
        if frames:
            out.frames.append(ep.frames)
        out.latents.append(np.asarray(zs, np.float32))
        out.imagined.append(np.asarray(branches, np.float32))
        out.rewards.append(ep.rewards.astype(np.float32))
        out.actions.append(ep.actions)
    return out
