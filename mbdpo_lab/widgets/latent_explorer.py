"""LatentExplorer: UMAP/PCA views of real and imagined latent paths, with frames and metrics.

With several agents it opens on their contrast (`LatentContrast`: gaits beside goal-directed tasks, the
paper's picture, no control needed); below it one agent in detail. Reads `LatentRollouts` (from
`mbdpo_lab.analysis.collect_latents` or a saved npz) and a cached `Projection`; changing colour,
episode or time never refits the projection.
"""
from __future__ import annotations

from pathlib import Path

from ..analysis import LatentRollouts, Projection, project
from ..analysis.figures import figure_widget, path_traces
from ..analysis.structure import CYCLIC, latent_structure_per_episode, period_text
from ..rendering import frame_png
from .view_saver import ViewSaver


METRIC_NOTES = {
    "cyclicity": "0: never comes back; 1: returns exactly to earlier states (a gait)",
    "period": f"steps between returns, shown only when cyclicity > {CYCLIC}",
    "recurrence": "share of state pairs, far apart in time, that nearly coincide",
    "goal_directedness": "1: a straight run from start to end; 0: a closed loop",
    "approach": "share of coarse steps that get closer to the final state",
}


def _cell(row: dict, col: str) -> str:
    value = row[col]
    if col == "period":
        return period_text(row) or "—"
    if col == "return":
        return f"{value:.1f}"
    return f"{value:.2f}"


def metrics_html(per_task: dict[str, list[dict[str, float]]]) -> str:
    """The structure metrics per task and episode, each column explained under the table."""
    cols = ["return", "cyclicity", "period", "recurrence", "goal_directedness", "approach"]
    cell = "padding:2px 10px;border-bottom:1px solid #ddd;text-align:right"
    head = "".join(f"<th style='{cell}'>{c.replace('_', '-')}</th>" for c in ["agent", "episode"] + cols)
    body = ""
    for task, rows in per_task.items():
        for r in rows:
            cells = "".join(f"<td style='{cell}'>{_cell(r, c)}</td>" for c in cols)
            body += f"<tr><td style='{cell};text-align:left'>{task}</td><td style='{cell}'>{r['episode']}</td>{cells}</tr>"
    notes = "".join(f"<li><b>{k.replace('_', '-')}</b>: {v}</li>" for k, v in METRIC_NOTES.items())
    return (f"<table style='font-size:12px;border-collapse:collapse'><tr>{head}</tr>{body}</table>"
            f"<ul style='font-size:11px;color:#555;margin:4px 0'>{notes}<li>all computed in the full latent "
            "space, not in the projection (mbdpo_lab.analysis.structure)</li></ul>")


class LatentExplorer:
    """Interactive explorer over one or several tasks' rollouts (dict task -> LatentRollouts)."""

    def __init__(self, rollouts: LatentRollouts | dict[str, LatentRollouts], method: str = "umap",
                 dims: int = 2, seed: int = 0, contrast: bool | None = None):
        """``contrast``: show `LatentContrast` on top (default: when there are several agents)."""
        import ipywidgets as W

        from .latent_contrast import LatentContrast

        self.rollouts = rollouts if isinstance(rollouts, dict) else {rollouts.task: rollouts}
        self.seed = seed
        tasks = list(self.rollouts)
        self.task_picker = W.Dropdown(options=tasks, value=tasks[0], description="task")
        self.method = W.ToggleButtons(options=["umap", "pca"], value=method, description="projection")
        self.dims = W.ToggleButtons(options=[2, 3], value=dims, description="dims")
        self.color_by = W.ToggleButtons(options=["time", "reward"], value="time", description="colour")
        self.show_imagined = W.Checkbox(value=True, description="imagined branches")
        self.connect = W.Checkbox(value=True, description="connect steps")
        self.episode = W.Dropdown(description="episode")
        self.time = W.IntSlider(description="time step", min=0, max=1, continuous_update=True)
        self.frame = W.Image(format="png", width=220, height=220)
        self.metrics = W.HTML()
        self.status = W.HTML()
        self.figure = figure_widget(layout=dict(height=480, width=640, margin=dict(l=10, r=10, t=30, b=10),
                                                  legend=dict(orientation="h")))
        self.metric_rows = {t: latent_structure_per_episode(r) for t, r in self.rollouts.items()}
        self.metrics.value = metrics_html(self.metric_rows)
        for w in (self.task_picker, self.method, self.dims, self.color_by, self.show_imagined, self.connect):
            w.observe(self._redraw, names="value")
        self.episode.observe(self._episode_changed, names="value")
        self.time.observe(self._move_marker, names="value")
        for w in (self.task_picker, self.episode):  # fit the column, never cut at its right edge
            w.layout = W.Layout(width="250px")
            w.style = {"description_width": "70px"}
        self.time.layout = W.Layout(width="640px")  # one pixel a step or so: 500 steps need room
        self.time.style = {"description_width": "70px"}
        controls = W.VBox([self.task_picker, self.method, self.dims, self.color_by, self.show_imagined,
                           self.connect, self.episode, self.frame],
                          layout=W.Layout(width="260px", flex="0 0 260px"))
        self.saver = ViewSaver(self.export)
        self.save_dir, self.save_button, self.saved = self.saver.folder, self.saver.button, self.saver.saved
        controls.children = (*controls.children, self.save_dir, self.save_button, self.saved)
        detail = [W.HBox([W.VBox([self.figure, self.time]), controls]), self.status, self.metrics]
        show_contrast = len(self.rollouts) > 1 if contrast is None else contrast
        self.contrast = LatentContrast(self.rollouts, method=method, seed=seed) if show_contrast else None
        if self.contrast is not None:
            heading = "<h4 style='margin:14px 0 4px'>{}</h4>"
            detail = [W.HTML(heading.format("All agents at a glance")), self.contrast.widget,
                      W.HTML(heading.format("One agent in detail: every step, every imagined branch")), *detail]
        self.widget = W.VBox(detail)
        self._set_episodes()
        self._redraw()

    # --- state -----------------------------------------------------------------------------
    @property
    def current(self) -> LatentRollouts:
        return self.rollouts[self.task_picker.value]

    def projection(self, progress: bool = False) -> Projection:
        """The current view's projection (cached). A progress bar only while the cell runs: from a
        control's callback it would land in JupyterLab's log console, so the status line says it instead."""
        return project(self.current, method=self.method.value, dims=self.dims.value, seed=self.seed,
                       progress=progress)

    def _set_episodes(self) -> None:
        self.episode.options = list(range(self.current.num_episodes))
        self.episode.value = 0
        self.time.max = len(self.current.latents[0]) - 1

    # --- events ----------------------------------------------------------------------------
    def _redraw(self, change=None) -> None:
        if change is not None and change.owner is self.task_picker:
            self._set_episodes()
        self.status.value = (f"<i>projecting with {self.method.value}"
                             + (" (the first UMAP fit compiles numba: about 10 s more)..." if self.method.value == "umap"
                                else "...") + "</i>")
        proj = self.projection(progress=change is None)
        traces = path_traces(proj, self.current, self.color_by.value, self.show_imagined.value,
                             connect=self.connect.value)
        marker = dict(type="scatter3d" if proj.dims == 3 else "scatter", mode="markers", name="now",
                      marker=dict(size=8 if proj.dims == 3 else 14, color="red", symbol="x"))
        with self.figure.batch_update():
            self.figure.data = []
            for t in traces + [marker]:
                self.figure.add_trace(t)
            how = "precomputed" if proj.precomputed else f"fit {proj.fit_seconds:.1f} s"
            self.figure.layout.title = (f"{self.task_picker.value}: {proj.method.upper()}, "
                                        f"{self.current.num_points} real latents ({how})")
        self.status.value = ""
        self._move_marker()

    def _episode_changed(self, change=None) -> None:
        self.time.max = len(self.current.latents[self.episode.value]) - 1
        self._move_marker()

    def _move_marker(self, change=None) -> None:
        ep, t = self.episode.value, self.time.value
        if ep is None or not self.figure.data:
            return
        proj = self.projection()  # cached
        pt = proj.real[ep][min(t, len(proj.real[ep]) - 1)]
        marker = self.figure.data[-1]
        with self.figure.batch_update():
            marker.x, marker.y = [pt[0]], [pt[1]]
            if proj.dims == 3:
                marker.z = [pt[2]]
        frames = self.current.frames
        if frames:
            self.frame.value = frame_png(frames[ep][min(t, len(frames[ep]) - 1)])

    def export(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """The current view as a standalone interactive HTML file (plotly inlined: it opens offline) and a PNG."""
        from ..analysis.figures import save_projection_png

        return self.saver.write(self.figure, f"{self.task_picker.value}-{self.method.value}-{self.dims.value}d",
                                lambda png: save_projection_png(self.projection(), self.current, png), folder)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
