"""The "save to" folder, button and confirmation of a figure view: a standalone HTML file and a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


class ViewSaver:
    """Controls that save a view; ``save`` is called on a click (the view decides its file name and PNG)."""

    def __init__(self, save: Callable[[], object], width: str = "250px", button_width: str = "250px"):
        import ipywidgets as W

        self.folder = W.Text(value="latent-views", description="save to", layout=W.Layout(width=width),
                             style={"description_width": "70px"})
        self.button = W.Button(description="save HTML + PNG", icon="download", layout=W.Layout(width=button_width),
                               tooltip="this view as a standalone interactive HTML file and a PNG")
        self.button.on_click(lambda _b: save())
        self.saved = W.HTML()

    def write(self, figure, name: str, write_png: Callable[[Path], object],
              folder: str | Path | None = None) -> tuple[Path, Path]:
        """``figure`` as ``name``.html (plotly inlined: it opens offline, for a supplement or a slide) and
        ``write_png(name.png)``; returns both paths."""
        import plotly.graph_objects as go

        folder = Path(folder or self.folder.value or ".")
        folder.mkdir(parents=True, exist_ok=True)
        html_path, png_path = folder / f"{name}.html", folder / f"{name}.png"
        go.Figure(figure).write_html(str(html_path), include_plotlyjs=True, full_html=True)
        write_png(png_path)
        self.saved.value = f"<span style='color:#1b7f3b'>saved {html_path.name} and {png_path.name}</span>"
        return html_path, png_path
