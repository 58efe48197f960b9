"""Static exports of a latent projection: a self-contained interactive HTML and a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .latents import LatentRollouts
from .projection import Projection


def save_projection_html(proj: Projection, rollouts: LatentRollouts, path: str | Path) -> Path:
    import plotly.graph_objects as go

    from ..widgets.latent_explorer import path_traces

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
