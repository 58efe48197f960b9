"""Change the physics mid-episode: the world model's surprise over time and the planner's return, for
agents that differ only in eta (`analysis.perturbation`)."""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
from plotly.subplots import make_subplots

from ..analysis.figures import figure_widget
from ..analysis.perturbation import PARAMETERS, PerturbedEpisode, run_perturbed

COLOURS = ["#d62728", "#1f77b4", "#2ca02c"]


def summary_html(runs: list[PerturbedEpisode]) -> str:
    """Per agent: reward per step and the model's errors before and after the change."""
    rows = []
    for run in runs:
        cells = [run.split(run.rewards), run.split(run.reward_error), run.split(run.latent_error)]
        rows.append(f"<tr><td>{html.escape(run.label)}</td>"
                    + "".join(f"<td>{b:.3g} → <b>{a:.3g}</b></td>" for b, a in cells) + "</tr>")
    return ("<table style='border-collapse:collapse' cellpadding='4'><tr><th>agent</th>"
            "<th>reward per step</th><th>reward prediction error</th><th>latent prediction error</th></tr>"
            + "".join(rows) + "</table><span style='color:#555;font-size:90%'>mean before → after the change; "
            "one episode per agent, from the same start state</span>")


class PerturbationLab(W.VBox):
    """Pick a parameter, a scale and the step of the change; Run plays one episode per agent."""

    def __init__(self, agents: dict[str, Any], parameter: str = "mass", scale: float = 2.0, at_step: int = 100,
                 steps: int = 200, seed: int = 0):
        super().__init__()
        from ..analysis.denoising import resolve_agent

        self.agents = {label: resolve_agent(a) for label, a in agents.items()}
        self.runs: list[PerturbedEpisode] = []
        style = {"description_width": "initial"}
        self.parameter = W.Dropdown(options=[(text, key) for key, text in PARAMETERS.items()], value=parameter,
                                    description="change", style=style)
        self.scale = W.FloatLogSlider(value=scale, base=2, min=-2, max=2, step=0.25, description="× scale",
                                      style=style, continuous_update=False)
        self.at_step = W.IntSlider(value=at_step, min=0, max=steps, description="at step", style=style,
                                   continuous_update=False)
        self.steps = steps
        self.seed = seed
        self.button = W.Button(description="run the episodes", icon="play", layout=W.Layout(width="170px"))
        self.button.on_click(lambda _b: self.run())
        self.message = W.HTML(f"<i>one episode of {steps} steps per agent; the change happens at the marked step</i>")
        fig = figure_widget(make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                                          subplot_titles=("reward per step", "reward prediction error",
                                                          "latent prediction error")))
        for i, label in enumerate(self.agents):
            for row, key in enumerate(("rewards", "reward_error", "latent_error"), 1):
                fig.add_scatter(mode="lines", name=label, legendgroup=label, showlegend=row == 1,
                                line=dict(color=COLOURS[i % len(COLOURS)], width=1.6), meta=dict(agent=label, key=key),
                                row=row, col=1)
        fig.update_xaxes(title_text="step", row=3, col=1)
        fig.update_layout(height=560, width=820, margin=dict(l=50, r=10, t=40, b=40),
                          legend=dict(orientation="h", y=1.08))
        self.figure = fig
        self.table = W.HTML()
        self.results = W.VBox([])  # filled by the first run: no empty figure in the page before it
        self.children = [W.HBox([self.parameter, self.scale, self.at_step, self.button],
                                layout=W.Layout(flex_flow="row wrap", align_items="center")),
                         self.message, self.results]

    def run(self) -> list[PerturbedEpisode]:
        """One episode per agent with the chosen change; redraws the panels."""
        self.message.value = "<i>running…</i>"
        self.runs = [run_perturbed(agent, self.parameter.value, self.scale.value, self.at_step.value, self.steps,
                                   seed=self.seed, label=label) for label, agent in self.agents.items()]
        with self.figure.batch_update():
            for trace in self.figure.data:
                run = next(r for r in self.runs if r.label == trace.meta["agent"])
                trace.x, trace.y = list(range(len(run.rewards))), getattr(run, trace.meta["key"]).round(4).tolist()
            at = self.at_step.value
            self.figure.layout.shapes = [dict(type="line", x0=at, x1=at, y0=0, y1=1, xref=f"x{suffix}",
                                              yref=f"y{suffix} domain", line=dict(color="#555", dash="dash"))
                                         for suffix in ("", "2", "3")]
        self.table.value = summary_html(self.runs)
        self.results.children = (self.figure, self.table)
        self.message.value = (f"{html.escape(PARAMETERS[self.parameter.value])} × {self.scale.value:g} at step "
                              f"{self.at_step.value} (dashed line)")
        return self.runs
