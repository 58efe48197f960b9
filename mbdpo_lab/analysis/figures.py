"""Static exports of a latent projection: a self-contained interactive HTML and a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .latents import LatentRollouts
from .projection import Projection


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
            branches = proj.imagined[ep][::imagined_stride]  # [n, H+1, dims]
            seg = np.concatenate([np.concatenate([b, np.full((1, dims), np.nan)]) for b in branches])
            im = dict(type="scatter3d" if dims == 3 else "scatter", mode="lines", name=f"imagined ep {ep}",
                      line=dict(color="rgba(220,60,60,0.7)", width=2), hoverinfo="skip")
            for i, ax in enumerate(axes):
                im[ax] = seg[:, i]
            traces.append(im)
    return traces


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
        pts = proj.real[ep][:, :2]
        for branch in proj.imagined[ep][::10]:
            ax.plot(branch[:, 0], branch[:, 1], color="tab:red", alpha=0.5, lw=1)
        ax.plot(pts[:, 0], pts[:, 1], color="0.6", lw=0.6)
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=np.arange(len(pts)), cmap="viridis", s=8)
        ax.set_title(f"{rollouts.task} ep {ep} (return {rollouts.rewards[ep].sum():.0f})")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), label="time step")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
