"""Figures shared by the widgets and notebooks; static exports of a latent projection (HTML and PNG)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .latents import LatentRollouts
from .projection import Projection

# Lesson figures hide plotly's toolbar: shown on hover, it covers titles and legends. Dragging still
# zooms, a double-click resets, hovering still reads values.
PLOT_CONFIG = {"displayModeBar": False}


def figure_widget(data=None, **kwargs):
    """A plotly FigureWidget without the toolbar (``PLOT_CONFIG``)."""
    import plotly.graph_objects as go

    fig = go.FigureWidget(data, **kwargs)
    fig._config = dict(PLOT_CONFIG)
    return fig


def path_traces(proj: Projection, rollouts: LatentRollouts, color_by: str = "time", show_imagined: bool = True,
                imagined_stride: int = 10, episodes: list[int] | None = None,
                connect: bool = True) -> list[dict[str, Any]]:
    """Plotly trace dicts: one path per episode, imagined branches (every ``imagined_stride`` steps).

    ``connect=False`` draws points only: long episodes that revisit a region read better as a cloud.
    """
    dims = proj.dims
    episodes = list(range(len(proj.real))) if episodes is None else episodes
    traces: list[dict[str, Any]] = []
    axes = "xyz"[:dims]
    for ep in episodes:
        pts = proj.real[ep]
        if color_by == "reward":
            rew = rollouts.rewards[ep]
            color = np.append(rew, rew[-1] if len(rew) else 0.0)
            cbar = "reward"
        else:
            color = np.arange(len(pts), dtype=float)
            cbar = "time step"
        trace = dict(type="scatter3d" if dims == 3 else "scatter", mode="lines+markers" if connect else "markers",
                     name=f"episode {ep}",
                     line=dict(color="rgba(120,120,120,0.4)", width=1),
                     marker=dict(size=3 if dims == 3 else 5, color=color, colorscale="Viridis",
                                 showscale=ep == episodes[0], colorbar=dict(title=cbar)),
                     hovertext=[f"ep {ep} t={t}" for t in range(len(pts))], hoverinfo="text")
        for i, ax in enumerate(axes):
            trace[ax] = pts[:, i]
        traces.append(trace)
        if show_imagined and len(proj.imagined[ep]):
            seg = branch_segments(proj.imagined[ep], imagined_stride)
            im = dict(type="scatter3d" if dims == 3 else "scatter", mode="lines", name=f"imagined ep {ep}",
                      line=dict(color="rgba(220,60,60,0.7)", width=2), hoverinfo="skip")
            for i, ax in enumerate(axes):
                im[ax] = seg[:, i]
            traces.append(im)
    return traces


def branch_segments(branches: np.ndarray, stride: int) -> np.ndarray:
    """Imagined branches [n, H+1, dims] every ``stride`` steps, joined with NaN breaks: one line trace."""
    if len(branches) == 0:
        return np.zeros((0, branches.shape[-1]))
    return np.concatenate([np.concatenate([b, np.full((1, b.shape[1]), np.nan)]) for b in branches[::stride]])


def draw_path(ax, pts: np.ndarray, branches: np.ndarray, stride: int, size: float = 8):
    """One projected episode on a matplotlib axis: imagined branches in red, the path in grey, its points
    coloured by time; returns the scatter (for a colour bar)."""
    seg = branch_segments(branches, stride)
    if len(seg):
        ax.plot(seg[:, 0], seg[:, 1], color="tab:red", alpha=0.5, lw=1)
    ax.plot(pts[:, 0], pts[:, 1], color="0.6", lw=0.6)
    return ax.scatter(pts[:, 0], pts[:, 1], c=np.arange(len(pts)), cmap="viridis", s=size, zorder=3)


def save_projection_html(proj: Projection, rollouts: LatentRollouts, path: str | Path) -> Path:
    import plotly.graph_objects as go

    fig = go.Figure()
    for trace in path_traces(proj, rollouts):
        fig.add_trace(trace)
    fig.update_layout(title=f"{rollouts.task}: {proj.method.upper()} of latent paths (red: imagined plans)",
                      height=600)
    fig.write_html(str(path), include_plotlyjs=True)  # works offline
    return Path(path)


def save_projection_png(proj: Projection, rollouts: LatentRollouts, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(proj.real)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4.2), squeeze=False)
    for ep, ax in enumerate(axes[0]):
        sc = draw_path(ax, proj.real[ep][:, :2], proj.imagined[ep][..., :2], stride=10)
        ax.set_title(f"episode {ep}: return {rollouts.rewards[ep].sum():.0f}")  # short: panels sit side by side
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{rollouts.task}: {proj.method.upper()} of latent paths (red: imagined plans)")
    fig.colorbar(sc, ax=axes[0].tolist(), label="time step")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def reward_check_figure(check, task: str = ""):
    """Real vs predicted rewards along one episode (top) and the prediction errors (bottom)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    k = check.open_loop_steps
    err = check.errors()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.08,
                        subplot_titles=("reward per agent step", "prediction error (predicted - real)"))
    fig.add_trace(go.Scatter(y=check.real, name="real reward", line=dict(color="#333", width=5), opacity=0.35),
                  row=1, col=1)
    fig.add_trace(go.Scatter(y=check.one_step, name="predicted from the encoded real state",
                             line=dict(color="#1f77b4", width=1.5)), row=1, col=1)
    fig.add_trace(go.Scatter(y=check.open_loop, name=f"predicted after imagining {k} steps",
                             line=dict(color="#ff7f0e", width=1.5, dash="dot")), row=1, col=1)
    fig.add_trace(go.Scatter(y=check.one_step - check.real, name="error, one step", showlegend=False,
                             line=dict(color="#1f77b4", width=1)), row=2, col=1)
    fig.add_trace(go.Scatter(y=check.open_loop - check.real, name=f"error, {k} steps imagined", showlegend=False,
                             line=dict(color="#ff7f0e", width=1, dash="dot")), row=2, col=1)
    fig.update_xaxes(title_text="agent step", row=2, col=1)
    fig.update_layout(height=560, margin=dict(l=55, r=20, t=80, b=90),
                      title=dict(text=f"{task}: the model's rewards along one real episode — mean abs error "
                                      f"{err['one_step_mae']:.4f} (one step), {err['open_loop_mae']:.4f} ({k} imagined)",
                                 font=dict(size=13)),
                      legend=dict(orientation="h", y=-0.14, yanchor="top", x=0))
    fig.update_annotations(font_size=11)
    return fig


def planners_figure(rows: list[dict]):
    """Return (mean ± std) and ms per action of each planner, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [r["planner"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("return per episode", "ms per action (this machine)"))
    fig.add_trace(go.Bar(x=names, y=[r["mean_return"] for r in rows], name="return",
                         error_y=dict(type="data", array=[r["std_return"] for r in rows])), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[r["ms_per_action"] for r in rows], name="ms per action",
                         marker_color="#ff7f0e"), row=1, col=2)
    fig.update_layout(showlegend=False, height=350, margin=dict(l=50, r=20, t=50, b=40))
    return fig
