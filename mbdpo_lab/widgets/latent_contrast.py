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


class LatentContrast:
    def __init__(self, rollouts: dict[str, LatentRollouts], agents: list[str] | None = None, method: str = "umap",
                 seed: int = 0):
        import ipywidgets as W
        import plotly.graph_objects as go

        self.rollouts, self.agents, self.seed = rollouts, agents, seed
        self.method = W.ToggleButtons(options=["umap", "pca"], value=method, description="projection")
        self.show_imagined = W.Checkbox(value=True, description="imagined branches")
        self.save_dir = W.Text(value="latent-views", description="save to", layout=W.Layout(width="260px"),
                               style={"description_width": "60px"})
        self.save_button = W.Button(description="save HTML + PNG", icon="download", layout=W.Layout(width="170px"),
                                    tooltip="this view as a standalone interactive HTML file and a PNG")
        self.save_button.on_click(lambda _b: self.export())
        self.saved = W.HTML()
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
        """The current panels (projections cached: switching back costs nothing)."""
        return contrast_panels(self.rollouts, self.agents, method=self.method.value, seed=self.seed,
                               progress=progress)

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
        import plotly.graph_objects as go

        folder = Path(folder or self.save_dir.value or ".")
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"contrast-{self.method.value}"
        html_path, png_path = stem.with_suffix(".html"), stem.with_suffix(".png")
        go.Figure(self.figure).write_html(str(html_path), include_plotlyjs=True, full_html=True)
        save_contrast_png(self.panels(), png_path, show_imagined=self.show_imagined.value)
        self.saved.value = f"<span style='color:#1b7f3b'>saved {html_path.name} and {png_path.name}</span>"
        return html_path, png_path

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
