"""What the denoising widgets show, as plain functions of a `DenoiseTrace` and of an agent's rollout.

`level_view` and friends read one level of a trace; `collect_rollout` runs a noise-free rollout to pick
states from; `plan_trace` re-plans one state with chosen planner knobs and the same seed, so a change
of one knob is a controlled comparison. The widgets in `mbdpo_lab.widgets.denoising` only draw these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..episodes import run_episode
from ..planner import DenoiseTrace, DiffusionPlanner


# Opacity of candidate lines: bin 0 = not an elite, bins 1-4 = elites by weight / max weight.
OPACITY_BINS = (0.06, 0.25, 0.45, 0.7, 0.95)


PLANNER_KNOBS = ("eta", "temperature", "num_samples", "num_elites", "num_levels", "num_pi_trajs")


def candidate_subset(trace: DenoiseTrace, k: int, max_candidates: int = 48) -> np.ndarray:
    """Candidate indices drawn at row k: the heaviest elites (up to half the budget), then
    non-elites evenly spaced over the rest, so the cloud's spread stays visible."""
    n = trace.candidates.shape[1]
    if max_candidates >= n:
        return np.arange(n)
    w = trace.weights[k]
    elites = trace.elite_idx[k][np.argsort(-w[trace.elite_idx[k]], kind="stable")]
    elites = elites[: max(1, max_candidates // 2)]
    rest = np.setdiff1d(np.arange(n), elites)
    take = max_candidates - len(elites)
    others = rest[np.linspace(0, len(rest) - 1, take).round().astype(int)] if take > 0 and len(rest) else rest[:0]
    return np.concatenate([elites, others]).astype(int)


def opacity_bin(weight: float, max_weight: float) -> int:
    """0 for zero weight (not an elite); 1..4 for elites by weight / max weight."""
    if weight <= 0 or max_weight <= 0:
        return 0
    return 1 + min(3, int(4 * weight / max_weight))


def candidate_lines(trace: DenoiseTrace, k: int, dim: int, subset: np.ndarray) -> list[dict[str, Any]]:
    """One line group per opacity bin for action dimension ``dim`` at row k.

    Each group holds plotly-ready x (horizon step), y (action) and customdata (candidate index),
    lines separated by None, so the figure needs only len(OPACITY_BINS) traces per dimension.
    """
    horizon = trace.candidates.shape[2]
    w = trace.weights[k]
    wmax = float(w.max())
    groups = [dict(x=[], y=[], customdata=[], opacity=o) for o in OPACITY_BINS]
    for i in subset:
        g = groups[opacity_bin(float(w[i]), wmax)]
        g["x"] += [*range(horizon), None]
        g["y"] += [*map(float, trace.candidates[k, i, :, dim]), None]
        g["customdata"] += [int(i)] * horizon + [None]
    return groups


def level_view(trace: DenoiseTrace, k: int, max_candidates: int = 48) -> dict[str, Any]:
    """Everything the panels show at trace row k (noise level tau = trace.levels[k])."""
    tau = int(trace.levels[k])
    abar, abar_prev = float(trace.alpha_bar[tau]), float(trace.alpha_bar[tau - 1])
    w = trace.weights[k]
    elites = trace.elite_idx[k]
    rhs = math.sqrt(abar_prev) * trace.weighted_mean[k]
    return dict(
        k=k, tau=tau, abar=abar, abar_prev=abar_prev, spread=float(trace.spread[k]),
        noisy_mean=trace.x[k] / math.sqrt(abar), x=trace.x[k], weighted_mean=trace.weighted_mean[k],
        x_next=trace.x_next[k], score=trace.score[k], identity_rhs=rhs,
        identity_error=float(np.abs(trace.x_next[k] - rhs).max()), plan=trace.plan,
        subset=candidate_subset(trace, k, max_candidates), weights=w, elite_idx=elites,
        elite_weights_sorted=np.sort(w[elites])[::-1], ess=float(1.0 / np.square(w).sum()),
        model_return=trace.model_return[k], energy=trace.energy[k], total=trace.total_return[k],
        is_prior=trace.is_prior, candidates=trace.candidates[k])


@dataclass
class Rollout:
    """States of one noise-free episode prefix, with what the planner needs to re-plan there."""

    obs: np.ndarray  # [T, obs_dim]
    actions: np.ndarray  # [T, A] executed
    rewards: np.ndarray  # [T]
    warm_plans: list[np.ndarray | None]  # previous plan at each step (None at the episode start)
    frames: np.ndarray | None  # [T, h, w, 3] uint8, None when rendering is unavailable
    render_error: str = ""

    def __len__(self) -> int:
        return len(self.obs)


def collect_rollout(agent, env, steps: int = 40, seed: int = 0,
                    render_size: tuple[int, int] | None = (192, 256)) -> Rollout:
    """Run the agent's planner (no exploration noise) for up to ``steps`` steps from a reset."""
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    ep = run_episode(agent, env, gen, max_steps=steps, frame_size=render_size or None,
                     tolerate_render_errors=True, record_warm_starts=True)
    return Rollout(ep.obs[:-1], ep.actions, ep.rewards.astype(np.float32), ep.warm_starts, ep.frames,
                   ep.render_error)


def planner_config(cfg: Config, knobs: dict[str, Any]) -> Config:
    """``cfg`` with the planner knobs changed, validated (raises ConfigError with the reason)."""
    return cfg.replace(**{k: v for k, v in knobs.items() if k in PLANNER_KNOBS or k in ("beta_start", "beta_end")})


def plan_trace(agent, obs: np.ndarray, warm_plan: np.ndarray | None, knobs: dict[str, Any],
               seed: int = 0) -> DenoiseTrace:
    """One traced decision of ``agent`` at ``obs`` with the given warm start and planner knobs."""
    cfg = planner_config(agent.cfg, knobs)
    planner = DiffusionPlanner.from_config(cfg)
    with agent.scoped_warm_start(warm_plan):
        gen = torch.Generator(device=agent.device).manual_seed(int(seed))
        result = agent.plan(obs, t0=warm_plan is None, planner="diffusion", trace=True, generator=gen,
                            update_warm_start=False, planner_obj=planner, eta=cfg.eta)
    return result.trace


def resolve_agent(agent):
    """An MBDPO agent from an agent, a Checkpoint, a pretrained name or a .safetensors path."""
    if hasattr(agent, "plan") and hasattr(agent, "cfg"):
        return agent
    if hasattr(agent, "agent"):  # a Checkpoint
        return agent.agent
    if isinstance(agent, (str, Path)):
        from ..checkpoint import load_any

        return load_any(agent).agent
    raise TypeError(f"expected an MBDPO agent, a Checkpoint, a pretrained name or a path, got {type(agent).__name__}")
