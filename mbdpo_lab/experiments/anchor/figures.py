"""Plotly figures of a comparison, shared by the HTML report and the notebook widget."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .result import COLORS, SHOWN_METRICS, AnchorResult


def single_evaluation(result: AnchorResult) -> bool:
    """True when every agent was measured once and has no training curve (shipped checkpoints): a
    line over environment steps would be one point, so figures show bars per agent instead."""
    return (all(len(result.series(label, "return")[0]) <= 1 for label in result.labels)
            and not any(r.get("kind") in ("episode", "eval") for r in result.history))


def available_metrics(result: AnchorResult, metrics: Sequence[str] = tuple(SHOWN_METRICS)) -> list[str]:
    """The metrics measured for at least one agent (replay distances need the run's replay)."""
    return [m for m in metrics
            if any(np.isfinite(result.series(label, m)[1]).any() for label in result.labels)]


def _bars(result: AnchorResult, metric: str) -> list[dict[str, Any]]:
    """One bar per agent, its final evaluation: +- std across episodes, or the 95% CI over seeds of an arm."""
    traces = []
    for i, label in enumerate(result.labels):
        _, mean, std = result.series(label, metric)
        if not len(mean):
            continue
        ci = result.interval(label, metric)
        error = (dict(type="data", symmetric=False, array=[np.nan_to_num(ci[1] - mean[-1])],
                      arrayminus=[np.nan_to_num(mean[-1] - ci[0])], visible=True) if ci is not None
                 else dict(type="data", array=np.nan_to_num(std[-1:]), visible=True))
        traces.append(dict(type="bar", x=[label], y=[mean[-1]], name=label, marker_color=COLORS[i % len(COLORS)],
                           error_y=error))
    return traces


def spread_text(result: AnchorResult) -> str:
    """What the error bars are, for titles."""
    return "IQM and 95% CI over seeds" if result.over_seeds else "mean ± std over the measured episodes"


def returns_figure(result: AnchorResult):
    """Training episode returns (faint) and evaluation returns (+- std) of every agent; bars of the
    final evaluation when the agents were measured once (see `single_evaluation`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if single_evaluation(result):
        for trace in _bars(result, "return"):
            fig.add_bar(**{k: v for k, v in trace.items() if k != "type"})
        fig.update_layout(title=f"return of each agent ({spread_text(result)})",
                          yaxis_title="episode return", height=320, showlegend=False,
                          margin=dict(l=50, r=20, t=50, b=40))
        return fig
    for i, label in enumerate(result.labels):
        color = COLORS[i % len(COLORS)]
        ep = [r for r in result.history if r["agent"] == label and r.get("kind") == "episode"
              and r.get("episode_return") is not None]
        if ep:
            fig.add_scatter(x=[r["step"] for r in ep], y=[r["episode_return"] for r in ep], mode="lines",
                            name=f"{label} training episodes", line=dict(color=color, width=1), opacity=0.35)
        steps, mean, std = result.series(label, "return")
        if result.mode == "train" and not len(steps):
            continue
        ev = [r for r in result.history if r["agent"] == label and r.get("kind") == "eval"]
        if result.mode == "checkpoints" and ev:
            fig.add_scatter(x=[r["step"] for r in ev], y=[r["eval_return"] for r in ev], mode="lines+markers",
                            name=f"{label} eval (training run)", line=dict(color=color, dash="dot"))
        fig.add_scatter(x=steps, y=mean, mode="lines+markers", name=f"{label} evaluation",
                        line=dict(color=color, width=2.5), marker=dict(size=8),
                        error_y=dict(type="data", array=np.nan_to_num(std), visible=True))
    fig.update_layout(title="return vs environment steps", xaxis_title="environment steps",
                      yaxis_title="episode return", height=360, margin=dict(l=50, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def metric_traces(result: AnchorResult, metric: str) -> list[dict[str, Any]]:
    """Plotly trace dicts: one line (+- std across episodes) per agent for one metric (bars when the
    agents were measured once)."""
    if single_evaluation(result):
        return _bars(result, metric)
    traces = []
    for i, label in enumerate(result.labels):
        steps, mean, std = result.series(label, metric)
        traces.append(dict(type="scatter", x=steps, y=mean, mode="lines+markers", name=label,
                           line=dict(color=COLORS[i % len(COLORS)], width=2),
                           error_y=dict(type="data", array=np.nan_to_num(std), visible=True)))
    return traces


def metrics_figure(result: AnchorResult, metrics: Sequence[str] = tuple(SHOWN_METRICS[1:])):
    """A grid of small plots: each metric over training, one line per agent."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_short(m) for m in metrics],
                        horizontal_spacing=0.08, vertical_spacing=0.12)
    for k, metric in enumerate(metrics):
        for trace in metric_traces(result, metric):
            trace["showlegend"] = k == 0
            trace["legendgroup"] = trace["name"]
            kind = go.Bar if trace.pop("type") == "bar" else go.Scatter
            fig.add_trace(kind(**trace), row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(height=230 * rows + 80, margin=dict(l=40, r=20, t=60, b=30),
                      title=f"anchoring metrics at each evaluation ({spread_text(result)})")
    fig.update_annotations(font_size=11)
    return fig


def _short(metric: str) -> str:
    return {"overestimation": "plan over-estimation", "q_overestimation": "Q over-estimation",
            "horizon_gap": "reward gap (H steps)", "prior_distance": "distance from prior",
            "energy": "energy of actions (high=data-like)", "energy_gap": "energy gap (prior - actions)",
            "nn_distance": "NN distance to replay actions", "state_nn_distance": "NN distance (similar states)",
            "td_plan_abs": "|TD| planner actions", "td_prior_abs": "|TD| prior actions",
            "cross_td_gap": "cross-TD gap", "return": "return"}.get(metric, metric)


SWEEP_QUANTITIES = {
    "model_return": "model return of the chosen plan (no energy)",
    "energy": "energy term of the chosen plan (discounted, before eta)",
    "total": "total J = model return + eta * energy",
    "prior_distance": "distance of the first action from the prior's mean",
    "plan_shift": "distance of the plan from the first eta's plan",
    "action": "first action (solid a[0], dashed a[1], dotted a[2], ...)",
}


def sweep_traces(result: AnchorResult, quantity: str) -> list[dict[str, Any]]:
    traces = []
    for i, label in enumerate(result.labels):
        rows = result.sweeps.get(label, [])
        if not rows:
            continue
        x = [f"{r['eta']:g}" for r in rows]
        color = COLORS[i % len(COLORS)]
        if quantity == "action":
            acts = np.array([np.asarray(r["plan"])[0] for r in rows])
            for d in range(acts.shape[1]):
                traces.append(dict(type="scatter", x=x, y=acts[:, d], mode="lines+markers",
                                   name=f"{label} a[{d}]", line=dict(color=color, dash=["solid", "dash", "dot",
                                                                                       "dashdot"][d % 4])))
        else:
            traces.append(dict(type="scatter", x=x, y=[r[quantity] for r in rows], mode="lines+markers",
                               name=label, line=dict(color=color, width=2)))
    return traces


def sweep_figure(result: AnchorResult, quantities: Sequence[str] = ("model_return", "energy", "action")):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(quantities), subplot_titles=[SWEEP_QUANTITIES[q] for q in quantities],
                        horizontal_spacing=0.08)
    for k, q in enumerate(quantities):
        for trace in sweep_traces(result, q):
            trace["showlegend"] = k == 0
            fig.add_trace(go.Scatter(**trace), row=1, col=k + 1)
        fig.update_xaxes(type="category", title_text="planning eta", row=1, col=k + 1)
    fig.update_layout(height=360, margin=dict(l=40, r=20, t=70, b=40),
                      title="eta sweep on one shared state (same random numbers for every eta)")
    fig.update_annotations(font_size=11)
    return fig
