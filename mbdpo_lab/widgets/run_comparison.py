"""Compare finished (or running) runs: eval-return curves per arm, IQM over seeds with a 95% band.

Runs that differ only in their seed form one arm (`analysis.curves.run_arms`); the table beside the
plot gives each arm's final return with its confidence interval over seeds and the probability that a
run of the arm beats a run of the first arm (rliable), so a difference is read with its uncertainty.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import ipywidgets as W
import plotly.graph_objects as go

from ..analysis.curves import Arm, run_arms
from ..analysis.figures import figure_widget
from ..statistics import aggregate, probability_of_improvement

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Run directories (a config.json and a metrics.csv) under ``root``, at most ``depth`` levels down."""
    root = Path(root)
    found, frontier = [], [root]
    for _ in range(depth + 1):
        nxt = []
        for d in frontier:
            if (d / "config.json").exists() and (d / "metrics.csv").exists():
                found.append(d)
            elif d.is_dir():
                nxt.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
        frontier = nxt
    return sorted(found)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def arm_traces(arms: Sequence[Arm]) -> list[go.Scatter]:
    """For each arm its band (upper edge, then lower edge filled to it) and its centre line."""
    traces = []
    for i, arm in enumerate(arms):
        colour = COLOURS[i % len(COLOURS)]
        x = arm.steps.tolist()
        traces.append(go.Scatter(x=x, y=arm.high.round(1).tolist(), mode="lines", line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=arm.label))
        traces.append(go.Scatter(x=x, y=arm.low.round(1).tolist(), mode="lines", line=dict(width=0),
                                 fill="tonexty", fillcolor=_rgba(colour, 0.2), hoverinfo="skip",
                                 showlegend=False, legendgroup=arm.label))
        traces.append(go.Scatter(x=x, y=arm.centre.round(1).tolist(), mode="lines+markers", name=arm.label,
                                 line=dict(color=colour, width=2.5), legendgroup=arm.label,
                                 hovertemplate=f"{html.escape(arm.label)}<br>%{{x:,}} steps: %{{y:.0f}} "
                                               f"({arm.band})<extra></extra>"))
    return traces


def arms_table_html(arms: Sequence[Arm]) -> str:
    """Final return of each arm with its CI, and P(a run of this arm beats a run of the first arm)."""
    if not arms:
        return "<i>select runs with at least one evaluation</i>"
    finals = {arm.label: arm.final_returns() for arm in arms}
    estimates = aggregate(finals)
    head = ("<tr><th>arm</th><th>seeds</th><th>at step</th><th>final return, IQM [95% CI]</th>"
            f"<th>P(beats {html.escape(arms[0].label)})</th></tr>")
    rows = []
    for arm in arms:
        est = estimates[arm.label]["IQM"]
        if arm is arms[0]:
            p_text = "—"
        else:
            p = probability_of_improvement(finals[arm.label], finals[arms[0].label])
            p_text = p.text(2) if p.runs >= 2 else f"{p.point:.2f} (too few seeds for a CI)"
        rows.append(f"<tr><td>{html.escape(arm.label)}</td><td>{len(arm.runs)}</td><td>{int(arm.steps[-1]):,}</td>"
                    f"<td>{est.text()}</td><td>{p_text}</td></tr>")
    return ("<table style='border-collapse:collapse' cellpadding='4'>" + head + "".join(rows) + "</table>"
            "<span style='color:#555;font-size:90%'>An interval over seeds needs two or more seeds per arm; "
            "with one run the band is the spread over its evaluation episodes, which says nothing about "
            "another seed.</span>")


class RunComparison(W.VBox):
    """Pick run directories; see their arms' curves with bands over seeds and the final-return table."""

    def __init__(self, root: str | Path = "runs", selected: Sequence[str | Path] = ()):
        super().__init__()
        self.root = Path(root)
        self.picker = W.SelectMultiple(options=[], rows=6, description="runs",
                                       layout=W.Layout(width="520px"))
        self.refresh_button = W.Button(description="Rescan", icon="refresh", tooltip=f"look for runs under {root}")
        self.refresh_button.on_click(lambda _b: self.rescan())
        self.figure = figure_widget(layout=dict(
            title=dict(text="eval return per arm (runs that differ only in their seed form one arm)", font_size=13),
            xaxis_title="environment steps", yaxis_title="eval return", height=340,
            margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.25)))
        self.table = W.HTML()
        self.message = W.HTML()
        self.picker.observe(lambda _c: self.compare(self.picker.value), names="value")
        self.results = W.VBox([])  # the figure joins the page with the first arm: an empty plot looks broken
        self.children = [W.HBox([self.picker, self.refresh_button]), self.message, self.results]
        self.rescan()
        if selected:
            self.select(selected)

    def rescan(self) -> None:
        runs = find_runs(self.root)
        keep = [v for v in self.picker.value if v in map(str, runs)]
        self.picker.options = [str(r) for r in runs]
        self.picker.value = tuple(keep)
        if not runs:
            self.message.value = f"<i>no run directories under {html.escape(str(self.root))} yet</i>"

    def select(self, runs: Sequence[str | Path]) -> None:
        wanted = [str(Path(r)) for r in runs]
        missing = [r for r in wanted if r not in self.picker.options]
        if missing:
            self.picker.options = list(self.picker.options) + missing
        self.picker.value = tuple(wanted)

    def compare(self, runs: Sequence[str | Path]) -> list[Arm]:
        """Draw the arms of ``runs``; a selection across tasks is refused with a message."""
        try:
            arms = run_arms(list(runs))
            self.message.value = ""
        except ValueError as exc:
            arms = []
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
        with self.figure.batch_update():
            self.figure.data = ()
            for trace in arm_traces(arms):
                self.figure.add_trace(trace)
        self.table.value = arms_table_html(arms) if runs else ""
        self.results.children = (self.figure, self.table) if arms else ()
        return arms
