"""LatentContrast: gait agents beside goal-directed ones, one projection each, the paper's picture at a glance.

What it shows needs no control (`mbdpo_lab.analysis.contrast` picks the agents and the part of each
episode that carries the structure); the controls switch UMAP/PCA, hide the imagined branches and save
the view as a standalone HTML file and a PNG.
"""
from __future__ import annotations

from pathlib import Path

from ..analysis import LatentRollouts
from ..analysis.contrast import ContrastPanel, contrast_figure, contrast_panels, save_contrast_png
from ..analysis.figures import PLOT_CONFIG
from .view_saver import ViewSaver


class LatentContrast:
    def __init__(self, rollouts: dict[str, LatentRollouts], agents: list[str] | None = None, method: str = "umap",
                 seed: int = 0):
        import ipywidgets as W
        import plotly.graph_objects as go

        self.rollouts, self.agents, self.seed = rollouts, agents, seed
        self._panels: dict[str, list[ContrastPanel]] = {}
        self.method = W.ToggleButtons(options=["umap", "pca"], value=method, description="projection")
        self.show_imagined = W.Checkbox(value=True, description="imagined branches")
        self.saver = ViewSaver(self.export, width="260px", button_width="170px")
        self.save_dir, self.save_button, self.saved = self.saver.folder, self.saver.button, self.saver.saved
        self.status = W.HTML()
        self.windows = W.HTML()
        self.figure = go.FigureWidget()
        self.figure._config = dict(PLOT_CONFIG)
        for w in (self.method, self.show_imagined):
            w.observe(self._redraw, names="value")
        self.widget = W.VBox([self.figure, W.HBox([self.method, self.show_imagined]),
                              W.HBox([self.save_dir, self.save_button, self.saved]), self.status, self.windows])
        self._redraw()

    def panels(self, progress: bool = False) -> list[ContrastPanel]:
        """The current projection's panels, made once (hiding branches or switching back costs nothing)."""
        method = self.method.value
        if method not in self._panels:
            self._panels[method] = contrast_panels(self.rollouts, self.agents, method=method, seed=self.seed,
                                                   progress=progress)
        return self._panels[method]

    def _redraw(self, change=None) -> None:
        self.status.value = f"<i>projecting each agent with {self.method.value}...</i>"
        panels = self.panels(progress=change is None)
        fig = contrast_figure(panels, show_imagined=self.show_imagined.value)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.layout = fig.layout
            self.figure.add_traces(list(fig.data))
        self.status.value = ""
        items = "".join(f"<li><b>{p.name}</b>: " + "; ".join(f"episode {i}, {w}" for i, w in enumerate(p.why))
                        + "</li>" for p in panels)
        self.windows.value = ("<div style='font-size:12px;color:#444'>Shown of each episode (the metrics are of the "
                              f"whole episodes, in the full latent space):<ul style='margin:2px 0'>{items}</ul></div>")

    def export(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """The view as a standalone interactive HTML file (plotly inlined, opens offline) and a PNG."""
        return self.saver.write(self.figure, f"contrast-{self.method.value}",
                                lambda png: save_contrast_png(self.panels(), png, show_imagined=self.show_imagined.value),
                                folder)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
