"""Diffusion vs MPPI vs policy-prior acting on the same world model: returns and ms per action."""
from __future__ import annotations

from ..agent import MBDPO
from ..trainer import evaluate


def compare_planners(agent: MBDPO, env, episodes: int = 3, planners=("diffusion", "mppi", "policy"),
                     seed: int = 0) -> list[dict[str, float]]:
    """One row per planner: mean/std return over ``episodes`` and median planner ms per action."""
    rows = []
    for name in planners:
        result = evaluate(agent, env, episodes, planner=name, seed=seed)
        rows.append(dict(planner=name, mean_return=result["mean_return"], std_return=result["std_return"],
                         ms_per_action=result["planner_ms"], episodes=episodes))
    return rows
