"""One multi-task model, all its tasks in one map: the latent paths of every task in a shared projection.

A multi-task world model encodes every task into the same latent space (its task embedding enters the
encoder, not the latent itself: the analyses keep only the state latent, `WorldModel.latent`). One
projection fitted on all tasks' real latents shows whether tasks share regions (similar dynamics) or
keep apart, and each task's own cycles or paths within its region.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..agent import MBDPO
from .latents import LatentRollouts, collect_latents
from .projection import Projection, project


@contextmanager
def acting_for(agent: MBDPO, task: str):
    """Bind a multi-task agent to ``task`` for the block (its own binding restored after)."""
    before = agent.bound_task
    agent.bound_task = agent.task_index(task)
    try:
        yield agent
    finally:
        agent.bound_task = before


def task_latents(agent: MBDPO, tasks: list[str] | None = None, episodes: int = 1, max_steps: int | None = None,
                 seed: int = 0) -> dict[str, LatentRollouts]:
    """task -> noise-free episodes' latent paths of a multi-task agent (default: every task it knows)."""
    from ..envs import LATENTS_SEED_OFFSET, make_env

    if not agent.tasks:
        raise ValueError("a single-task agent has one task; use collect_latents")
    cfg, out = agent.cfg, {}
    for name in tasks or [t.name for t in agent.tasks]:
        with acting_for(agent, name), make_env(name, seed=seed + LATENTS_SEED_OFFSET, action_repeat=cfg.action_repeat,
                                               episode_length=cfg.episode_length) as env:
            out[name] = collect_latents(agent, env, episodes, max_steps=max_steps, seed=seed)
    return out


def pooled(rollouts: dict[str, LatentRollouts]) -> tuple[LatentRollouts, list[str]]:
    """All tasks' episodes as one `LatentRollouts` (for one shared fit) and each episode's task."""
    joint = LatentRollouts(task="+".join(rollouts), latents=[], imagined=[], rewards=[], actions=[])
    labels = []
    for task, ro in rollouts.items():
        joint.latents += ro.latents
        joint.imagined += ro.imagined
        joint.rewards += ro.rewards
        joint.actions += [np.zeros((len(r), 0), np.float32) for r in ro.rewards]  # action sizes differ by task
        labels += [task] * ro.num_episodes
    return joint, labels


def task_projection(rollouts: dict[str, LatentRollouts], method: str = "umap", seed: int = 0,
                    progress: bool = False) -> tuple[Projection, list[str]]:
    """One projection fitted on every task's real latents (cached as `project`); each episode's task."""
    joint, labels = pooled(rollouts)
    return project(joint, method=method, dims=2, seed=seed, progress=progress), labels


def task_map_figure(projection: Projection, labels: list[str], returns: list[float] | None = None,
                    title: str = "One multi-task model, every task in one projection"):
    """Plotly: each episode's path in the shared projection, one colour per task, start circled."""
    import plotly.express as px
    import plotly.graph_objects as go

    colours = {t: px.colors.qualitative.D3[i % 10] for i, t in enumerate(dict.fromkeys(labels))}
    fig, shown = go.Figure(), set()
    for ep, (pts, task) in enumerate(zip(projection.real, labels)):
        name = task + (f" (return {returns[ep]:.0f})" if returns else "")
        fig.add_scatter(x=pts[:, 0], y=pts[:, 1], mode="lines+markers", name=name, legendgroup=task,
                        showlegend=task not in shown, line=dict(color=colours[task], width=1),
                        marker=dict(size=4, color=colours[task]), opacity=0.8,
                        hovertext=[f"{task} ep {ep} step {t}" for t in range(len(pts))], hoverinfo="text")
        fig.add_scatter(x=pts[:1, 0], y=pts[:1, 1], mode="markers", showlegend=False, legendgroup=task,
                        marker=dict(symbol="circle-open", size=12, color=colours[task], line=dict(width=2)),
                        hoverinfo="skip")
        shown.add(task)
    fig.update_layout(title=title, height=520, width=760, template="plotly_white",
                      xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False),
                      legend=dict(title="task (circle: start)"))
    return fig


def save_task_map_png(projection: Projection, labels: list[str], path):
    """The same map as a static PNG (matplotlib)."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5.5))
    colours = {t: f"C{i % 10}" for i, t in enumerate(dict.fromkeys(labels))}
    for pts, task in zip(projection.real, labels):
        ax.plot(pts[:, 0], pts[:, 1], "-o", ms=2, lw=0.8, color=colours[task], alpha=0.8)
        ax.scatter(*pts[0], s=80, facecolors="none", edgecolors=colours[task], lw=1.5)
    for task, colour in colours.items():
        ax.plot([], [], "-o", color=colour, label=task)
    ax.legend(fontsize=8, title="task (circle: start)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"One multi-task model, every task in one {projection.method.upper()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
