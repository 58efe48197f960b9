"""A button that shows an exercise's worked answer (notebook 07), hidden until the student asks."""
from __future__ import annotations

import html

import ipywidgets as W

from ..experiments.exercises import solution


class SolutionToggle(W.VBox):
    """``SolutionToggle("reverse_step")``: a toggle button, and the answer's code below it when pressed."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.code = W.HTML(f"<pre style='background:#f6f8fa;padding:8px'>{html.escape(solution(name))}</pre>",
                           layout=W.Layout(display="none"))
        self.button = W.ToggleButton(value=False, description="show the solution", icon="eye",
                                     tooltip="try first: the check above tells you what is wrong",
                                     layout=W.Layout(width="190px"))
        self.button.observe(self._toggle, names="value")
        self.children = [self.button, self.code]

    def _toggle(self, change) -> None:
        self.code.layout.display = "" if change["new"] else "none"
        self.button.description = "hide the solution" if change["new"] else "show the solution"
