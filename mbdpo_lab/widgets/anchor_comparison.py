"""AnchorComparison: energy-anchored and unanchored agents side by side.

Reads an `mbdpo_lab.experiments.anchor.AnchorResult` (from `run_paired`, `compare_checkpoints`, or a
directory written by ``mbdpo-lab compare-anchor --out DIR``) and shows: the textual summary, one
rollout video per agent, return curves, any anchoring metric over training (pick it), the eta sweep
on one shared state (pick the quantity) and the final table. It only reads the result; nothing is
re-run, so every control responds at once.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..analysis.anchoring import METRICS
from ..analysis.figures import figure_widget
from ..experiments.anchor import (COLORS, SHOWN_METRICS, SWEEP_QUANTITIES, AnchorResult, available_metrics,
                                  cross_energy_html, final_table_html, metric_traces, returns_figure,
                                  single_evaluation, spread_text, sweep_state_text, sweep_traces)
from ..rendering import frame_png

try:
    import ipywidgets as W
except ImportError as exc:  # pragma: no cover - the notebooks extra is missing
    raise ImportError("AnchorComparison needs ipywidgets: pip install -e '.[notebooks]'") from exc


def summary_html(result: AnchorResult) -> str:
    """Headline lines as a list, the per-metric lines folded under each agent's headline."""
    lines = [ln for ln in result.summary.splitlines() if ln.strip()]
    head, details = [], []
    for ln in lines:
        (details if ln.startswith("  -") else head).append(ln.strip().lstrip("- "))
    items = "".join(f"<li>{html.escape(ln)}</li>" for ln in head)
    more = "".join(f"<li>{html.escape(ln)}</li>" for ln in details)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return (f"<div class='anchor-summary'><b>What the numbers show</b><ul>{items}</ul>"
            + (f"<details><summary>every metric</summary><ul style='font-size:12px'>{more}</ul></details>" if more
               else "")
            + (f"<div style='color:#a15c00'><b>notes</b><ul>{notes}</ul></div>" if notes else "") + "</div>")


class AnchorComparison(W.VBox):
    """The anchor comparison as one widget; build it from a result or a result directory."""

    def __init__(self, result: AnchorResult | str | Path, metric: str = "overestimation",
                 sweep_quantity: str = "model_return", video_width: int = 240):

        super().__init__()
        if not isinstance(result, AnchorResult):
            result = AnchorResult.load(result)
        self.result = result
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(SHOWN_METRICS)}")
        if sweep_quantity not in SWEEP_QUANTITIES:
            raise ValueError(f"unknown sweep quantity {sweep_quantity!r}; choose one of {', '.join(SWEEP_QUANTITIES)}")
        header = W.HTML(f"<h3 style='margin:4px 0'>Anchored vs unanchored: {html.escape(result.task)}</h3>"
                        "<span style='color:#555'>eta weighs the energy anchor in the planner's return; "
                        f"eta = 0 is unanchored. Agents: {', '.join(map(html.escape, result.labels))}.</span>")
        self.summary_w = W.HTML(summary_html(result))

        # --- videos, one column per agent ---------------------------------------------------
        self.videos: dict[str, W.Widget] = {}
        columns = []
        for i, label in enumerate(result.labels):
            color = COLORS[i % len(COLORS)]
            data = result.video_bytes(label)
            if data:
                view = W.Video(value=data, format="mp4", autoplay=False, loop=True, controls=True,
                               layout=W.Layout(width=f"{video_width}px"))
            elif result.frames.get(label) is not None and len(result.frames[label]):
                view = W.Image(value=frame_png(result.frames[label][0]), format="png",
                               layout=W.Layout(width=f"{video_width}px"))
            else:
                view = W.HTML("<i>no video for this agent</i>")
            self.videos[label] = view
            final = result.final_rows().get(label, {})
            caption = W.HTML(f"<b style='color:{color}'>{html.escape(label)}</b> · return "
                             f"{_num(final.get('return'))} · over-estimation {_num(final.get('overestimation'))}")
            columns.append(W.VBox([caption, view], layout=W.Layout(margin="0 16px 0 0")))
        self.videos_box = W.HBox(columns, layout=W.Layout(flex_flow="row wrap"))

        # --- curves -----------------------------------------------------------------------
        self.fig_returns = figure_widget(returns_figure(result))
        measured = available_metrics(result) or list(SHOWN_METRICS)  # offer only what has data
        metric = metric if metric in measured else measured[0]
        self.metric_w = W.Dropdown(options=[(f"{m}: {METRICS[m][0]}", m) for m in measured], value=metric,
                                   description="metric", layout=W.Layout(width="640px"))
        self.metric_note = W.HTML()
        once = single_evaluation(result)
        self.fig_metric = figure_widget(layout=dict(height=340, margin=dict(l=50, r=20, t=50, b=40),
                                                    xaxis_title="agent" if once else "environment steps",
                                                    showlegend=not once, legend=dict(orientation="h", y=-0.25)))
        self.metric_w.observe(lambda change: self.set_metric(change["new"]), names="value")

        self.sweep_w = W.Dropdown(options=[(v, k) for k, v in SWEEP_QUANTITIES.items()], value=sweep_quantity,
                                  description="sweep", layout=W.Layout(width="520px"))
        self.fig_sweep = figure_widget(layout=dict(height=340, margin=dict(l=50, r=20, t=50, b=40),
                                                     xaxis=dict(type="category", title="planning eta"),
                                                     legend=dict(orientation="h", y=-0.25)))
        self.sweep_w.observe(lambda change: self.set_sweep_quantity(change["new"]), names="value")
        sweep_note = W.HTML("<span style='color:#555;font-size:12px'>"
                            f"{html.escape(sweep_state_text(result.sweep_state))}</span>")
        self.table_w = W.HTML(final_table_html(result))
        self.cross_w = W.HTML(cross_energy_html(result))

        self.set_metric(metric)
        self.set_sweep_quantity(sweep_quantity)
        self.children = [
            header, self.summary_w,
            W.HTML("<b>Rollouts (final evaluation)</b>"), self.videos_box,
            self.fig_returns,
            W.HTML(f"<b>Anchoring metrics of the final agents</b> ({spread_text(result)})" if once
                   else "<b>Anchoring metrics over training</b> (mean ± std across evaluation episodes)"),
            self.metric_w, self.metric_note, self.fig_metric,
            W.HTML("<b>Eta sweep on one shared state</b>"), sweep_note, self.sweep_w, self.fig_sweep,
            W.HTML("<b>Final evaluation</b>"), self.table_w,
            W.HTML("<b>Executed actions under one F</b> (every agent's actions scored by each agent's energy "
                   "head: one scale per column)"), self.cross_w,
        ]

    @classmethod
    def from_dir(cls, out: str | Path, **kwargs) -> "AnchorComparison":
        """Open a directory written by ``mbdpo-lab compare-anchor --out DIR``."""
        return cls(AnchorResult.load(out), **kwargs)

    def set_metric(self, metric: str) -> None:
        """Show one metric over training (one line per agent)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        if self.metric_w.value != metric:
            self.metric_w.value = metric  # observer calls back here
            return
        desc, better = METRICS[metric]
        with self.fig_metric.batch_update():
            self.fig_metric.data = []
            for trace in metric_traces(self.result, metric):
                add = self.fig_metric.add_bar if trace["type"] == "bar" else self.fig_metric.add_scatter
                add(**{k: v for k, v in trace.items() if k != "type"})
            self.fig_metric.layout.title = desc
            self.fig_metric.layout.yaxis.title = metric
        hint = {"zero": "closer to 0 is better", "lower": "lower is better for the anchoring claim",
                "higher": "higher is better"}[better]
        self.metric_note.value = f"<span style='color:#555;font-size:12px'>{html.escape(desc)}: {hint}.</span>"

    def set_sweep_quantity(self, quantity: str) -> None:
        """Show one quantity of the eta sweep (one line per agent; per action dimension for 'action')."""
        if quantity not in SWEEP_QUANTITIES:
            raise ValueError(f"unknown sweep quantity {quantity!r}")
        if self.sweep_w.value != quantity:
            self.sweep_w.value = quantity
            return
        with self.fig_sweep.batch_update():
            self.fig_sweep.data = []
            for trace in sweep_traces(self.result, quantity):
                self.fig_sweep.add_scatter(**{k: v for k, v in trace.items() if k != "type"})
            self.fig_sweep.layout.title = SWEEP_QUANTITIES[quantity]


def _num(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.3g}" if np.isfinite(v) else "n/a"


__all__ = ["AnchorComparison", "summary_html"]
