"""The paper's latent picture at a glance: gait agents beside goal-directed ones, one panel each.

Whole episodes hide the structure: a gait revisits its loop dozens of times (hundreds of crossing
lines) and a reach spends most of its episode jittering at the goal. So each panel shows the part of
every episode that carries the structure, and says which part:

- a **cyclic** task (a gait) from the end of its start-up transient for a few periods (its measured
  period, or a fixed span when the path has no cycle);
- a **goal** task (a reach, a manipulation) from the start to the first step that earns nearly full
  reward, plus a few steps (the whole episode when it never gets there);
- any other task, the whole episode.

One projection per agent, fitted on its windows' real latents; imagined branches placed with it. The
metrics printed beside each panel are those of the *whole* episodes, in the full latent space
(`structure.py`), as mean and standard deviation over episodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .figures import branch_segments, draw_path
from .latents import LatentRollouts
from .projection import Projection, project
from .structure import CYCLIC, latent_structure_per_episode

CYCLIC_TASKS = {"walk", "run", "hop", "trot", "swim"}  # the task part of a gait's name (walker-walk, cheetah-run)
GOAL_DOMAINS = {"reacher", "jaco", "finger", "manipulator", "point-mass", "fish"}
SETTLE_STEPS = 100  # a gait's start-up transient (standing up, first strides), skipped
PERIODS = 4  # periods of a gait shown
NO_CYCLE_SPAN = 40  # steps shown of a gait-task path without a measured cycle
# the goal tasks pay 1 per control step exactly at the goal (inside the target) and less elsewhere: an agent
# step has reached the goal when every one of its control steps earned this (a shaped reward such as
# jaco-reach-site-shaped's pays 0.5 per control step far from the target, so a sum over the step cannot tell)
GOAL_REWARD = 1.0 - 1e-4
AFTER_GOAL = 10  # steps shown after the goal is first reached
SHOWN_EPISODES = 3  # episodes drawn per panel (more read as clutter); the metrics use every episode


def task_kind(task: str) -> str:
    """'cyclic', 'goal' or 'other', from the task's name (``domain-task``)."""
    domain, _, name = task.rpartition("-")
    if not domain:
        return "other"
    if name in CYCLIC_TASKS:
        return "cyclic"
    if domain.split("-")[0] in GOAL_DOMAINS or domain in GOAL_DOMAINS:
        return "goal"
    return "other"


def structure_window(kind: str, rewards: np.ndarray, length: int, period: float | None = None,
                     action_repeat: int = 1) -> tuple[int, int, str]:
    """(start, stop, why) of the latents [start:stop] that carry an episode's structure (``length`` latents;
    ``rewards`` per agent step, each the sum of ``action_repeat`` control steps')."""
    if kind == "cyclic":
        start = min(SETTLE_STEPS, length // 2)
        span = int(round(PERIODS * period)) + 1 if period else NO_CYCLE_SPAN
        stop = min(length, start + span)
        what = f"{PERIODS} periods of {period:.0f} steps" if period else f"{NO_CYCLE_SPAN} steps (no cycle measured)"
        return start, stop, f"steps {start}-{stop - 1}: {what} after the first {start}"
    if kind == "goal":
        reached = np.nonzero(np.asarray(rewards) >= GOAL_REWARD * action_repeat)[0]
        if len(reached) == 0:
            return 0, length, "the whole episode: the goal was never reached"
        stop = min(length, int(reached[0]) + 1 + AFTER_GOAL)
        return 0, stop, f"steps 0-{stop - 1}: from the start to the goal (step {reached[0]}) and {AFTER_GOAL} more"
    return 0, length, "the whole episode"


def window_rollouts(rollouts: LatentRollouts, windows: list[tuple[int, int]]) -> LatentRollouts:
    """The same episodes cut to their windows (imagined branches of the steps inside them)."""
    cut = LatentRollouts(task=rollouts.task, latents=[], imagined=[], rewards=[], actions=[],
                         action_repeat=rollouts.action_repeat)
    for i, (a, b) in enumerate(windows):
        steps = slice(a, max(a, min(b, len(rollouts.rewards[i]))))  # latents have one more entry than steps
        cut.latents.append(rollouts.latents[i][a:b])
        cut.imagined.append(rollouts.imagined[i][steps])
        cut.rewards.append(rollouts.rewards[i][steps])
        cut.actions.append(rollouts.actions[i][steps])
    return cut


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) over episodes."""
    arr = np.asarray(values, np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


@dataclass
class ContrastPanel:
    """One agent's panel: its windows, their projection, and the whole episodes' metrics."""

    name: str
    kind: str
    rollouts: LatentRollouts  # cut to the windows
    windows: list[tuple[int, int]]
    why: list[str]  # per episode, which steps are shown and why
    projection: Projection
    metrics: list[dict[str, float]]  # per whole episode (structure.latent_structure_per_episode)

    def summary(self, key: str) -> tuple[float, float]:
        """Mean and standard deviation over episodes of one metric."""
        return mean_std([m[key] for m in self.metrics])

    def caption(self, sep: str = " · ") -> str:
        (c, cs), (g, gs) = self.summary("cyclicity"), self.summary("goal_directedness")
        return f"cyclicity {c:.2f} ± {cs:.2f}{sep}goal-directedness {g:.2f} ± {gs:.2f} (n={len(self.metrics)})"


def contrast_agents(rollouts: dict[str, LatentRollouts]) -> list[str]:
    """The agents the contrast shows by default: the cyclic ones, then the goal-directed ones (all when
    there are not both kinds)."""
    kinds = {name: task_kind(r.task) for name, r in rollouts.items()}
    chosen = [n for n in rollouts if kinds[n] == "cyclic"] + [n for n in rollouts if kinds[n] == "goal"]
    return chosen if {"cyclic", "goal"} <= set(kinds.values()) else list(rollouts)


def contrast_cut(rollouts: LatentRollouts) -> tuple[str, LatentRollouts, list[tuple[int, int]], list[str],
                                                     list[dict[str, float]]]:
    """(kind, the first `SHOWN_EPISODES` episodes cut to their windows, the windows, why each, and the
    metrics of every whole episode)."""
    kind = task_kind(rollouts.task)
    metrics = latent_structure_per_episode(rollouts)
    periods = [m["period"] for m in metrics if m["cyclicity"] > CYCLIC and m["period"] == m["period"]]
    period = float(np.median(periods)) if periods else None
    shown = zip(rollouts.latents[:SHOWN_EPISODES], rollouts.rewards[:SHOWN_EPISODES])
    cuts = [structure_window(kind, r, len(z), period, rollouts.action_repeat) for z, r in shown]
    windows = [(a, b) for a, b, _ in cuts]
    return kind, window_rollouts(rollouts, windows), windows, [w for _, _, w in cuts], metrics


def contrast_panel(name: str, rollouts: LatentRollouts, method: str = "umap", seed: int = 0,
                   progress: bool = False) -> ContrastPanel:
    """One agent's panel: its episodes cut to their windows and projected (cached, as `project`)."""
    kind, cut, windows, why, metrics = contrast_cut(rollouts)
    return ContrastPanel(name, kind, cut, windows, why, project(cut, method=method, dims=2, seed=seed,
                                                                  progress=progress), metrics)


def contrast_panels(rollouts: dict[str, LatentRollouts], agents: list[str] | None = None, method: str = "umap",
                    seed: int = 0, progress: bool = False) -> list[ContrastPanel]:
    """One panel per agent (default: `contrast_agents`), each with its own projection of its windows."""
    return [contrast_panel(name, rollouts[name], method, seed, progress) for name in agents or contrast_agents(rollouts)]


def panel_grid(count: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` panels: one row up to three, so a notebook's output width (about 780 px)
    never cuts a panel off; four as two gaits over two reaches; never more than three across."""
    if count <= 3:
        return 1, max(1, count)
    cols = min(3, -(-count // 2))  # ceil(count / 2), at most three
    return -(-count // cols), cols


def contrast_figure(panels: list[ContrastPanel], show_imagined: bool = True, imagined_stride: int = 6,
                    panel_width: int = 300, row_height: int = 360):
    """Plotly figure of the panels in a grid (`panel_grid`): per panel every episode's window coloured by time
    (start: circle, end: star), imagined branches in red, the whole episodes' metrics under the title."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = panel_grid(len(panels))
    titles = [f"<b>{p.name}</b> ({p.kind})<br><span style='font-size:11px'>{p.caption('<br>')}</span>" for p in panels]
    height = 110 + rows * row_height
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.05,
                        vertical_spacing=min(0.5, 100 / height) if rows > 1 else 0.0)
    for i, panel in enumerate(panels):
        row, col = i // cols + 1, i % cols + 1
        proj = panel.projection
        for ep, pts in enumerate(proj.real):
            a = panel.windows[ep][0]
            steps = np.arange(a, a + len(pts))
            fig.add_trace(go.Scatter(
                x=pts[:, 0], y=pts[:, 1], mode="lines+markers", name=f"{panel.name} episode {ep}",
                line=dict(color="rgba(110,110,110,0.55)", width=1.5),
                marker=dict(size=6, color=np.arange(len(pts)), colorscale="Viridis", showscale=False),
                hovertext=[f"{panel.name} ep {ep} step {t}" for t in steps], hoverinfo="text", showlegend=False),
                row=row, col=col)
            ends = go.Scatter(x=pts[[0, -1], 0], y=pts[[0, -1], 1], mode="markers", showlegend=False,
                              marker=dict(symbol=["circle-open", "star"], size=[13, 15], color="black",
                                          line=dict(width=2)),
                              hovertext=[f"ep {ep} start (step {steps[0]})", f"ep {ep} end (step {steps[-1]})"],
                              hoverinfo="text")
            fig.add_trace(ends, row=row, col=col)
            if show_imagined:
                seg = branch_segments(proj.imagined[ep], imagined_stride)
                if len(seg):
                    fig.add_trace(go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines", hoverinfo="skip",
                                             line=dict(color="rgba(220,60,60,0.45)", width=1), showlegend=False),
                                  row=row, col=col)
        fig.update_xaxes(showticklabels=False, row=row, col=col)
        fig.update_yaxes(showticklabels=False, row=row, col=col)
    method = panels[0].projection.method.upper() if panels else ""
    fig.update_layout(height=height, width=panel_width * cols + 40, margin=dict(l=10, r=10, t=110, b=20),
                      title=dict(text=f"Latent paths, {method} per agent: circle = start, star = end, "
                                      f"colour = time, red = imagined plans", font=dict(size=13)))
    for ann in fig.layout.annotations:
        ann.font.size = 12
    return fig


def save_contrast_png(panels: list[ContrastPanel], path, show_imagined: bool = True, imagined_stride: int = 6):
    """The same view as a static PNG (matplotlib), for a paper or a slide."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = panel_grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 5 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        for ep, pts in enumerate(panel.projection.real):
            branches = panel.projection.imagined[ep] if show_imagined else panel.projection.imagined[ep][:0]
            draw_path(ax, pts, branches, imagined_stride, size=12)
            ax.scatter(*pts[0], s=90, facecolors="none", edgecolors="k", zorder=4)
            ax.scatter(*pts[-1], s=140, marker="*", color="k", zorder=4)
        ax.set_title(f"{panel.name} ({panel.kind})\n{panel.caption(chr(10))}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Latent paths ({panels[0].projection.method.upper() if panels else ''} per agent): "
                 "circle start, star end, colour time, red imagined plans", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
