"""The self-contained HTML report (plotly inlined, videos embedded) and the markdown table of a comparison."""
from __future__ import annotations

import base64
import html
import math
import json
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Iterable, Sequence

from ...analysis.anchoring import METRICS
from .figures import metrics_figure, returns_figure, sweep_figure
from .result import SHOWN_METRICS, AnchorResult, as_float
from .run import config_diff, sweep_state_text
from .verdicts import fmt_number

# The page around the parts; $names are filled by `write_report`.
TEMPLATE = Template(files(__package__).joinpath("report_template.html").read_text())


def final_table_html(result: AnchorResult) -> str:
    """The final evaluation, one row per metric; metrics nobody measured are named under the table
    instead of filling it with n/a."""
    finals = result.final_rows()
    head = "".join(f"<th>{html.escape(label)}</th>" for label in finals)
    body, missing = "", []
    for m in ["eval_return"] + SHOWN_METRICS:
        name = "evaluation return (trainer)" if m == "eval_return" else METRICS[m][0]
        std_key = "eval_return_std" if m == "eval_return" else f"{m}_std"
        values = [as_float(r.get(m)) for r in finals.values()]
        if not any(math.isfinite(v) for v in values):
            missing.append(m)
            continue
        cells = "".join(f"<td>{fmt_number(as_float(r.get(m)))}{_spread(r, m, std_key)}</td>" for r in finals.values())
        body += f"<tr><td>{html.escape(name)}</td>{cells}</tr>"
    note = (f"<p style='font-size:12px;color:#555'>not measured here: {', '.join(missing)} "
            "(the replay distances need the replay saved beside a run's checkpoint)</p>" if missing else "")
    if result.over_seeds:
        note += ("<p style='font-size:12px;color:#555'>arms of seeds: IQM over seeds [95% bootstrap CI over "
                 "seeds]; the evaluation return is the measured one</p>")
    return f"<table><tr><th>metric (final evaluation)</th>{head}</tr>{body}</table>{note}"


def _pm(std: float) -> str:
    return f" ± {fmt_number(std)}" if math.isfinite(std) else ""


def _spread(row: dict, metric: str, std_key: str) -> str:
    """`` [low, high]`` for an arm of seeds, else `` ± std`` across episodes."""
    key = "return" if metric == "eval_return" else metric
    if as_float(row.get("seeds")) >= 2 and math.isfinite(as_float(row.get(f"{key}_low"))):
        return f" [{fmt_number(as_float(row.get(f'{key}_low')))}, {fmt_number(as_float(row.get(f'{key}_high')))}]"
    return _pm(as_float(row.get(std_key)))


def cross_energy_html(result: AnchorResult) -> str:
    """Rows: whose actions; columns: whose F scores them (mean ± std across episodes)."""
    if not result.cross_energy:
        return "<p><i>not measured</i></p>"
    table = {(r["referee"], r["actor"]): r for r in result.cross_energy}
    referees = [lb for lb in result.labels if any(k[0] == lb for k in table)]
    head = "".join(f"<th>under {html.escape(lb)}'s F</th>" for lb in referees)
    body = ""

    def cell(key) -> str:
        r = table.get(key)
        return f"<td>{fmt_number(as_float(r['energy']))} ± {fmt_number(as_float(r['energy_std']))}</td>" if r else "<td>n/a</td>"

    for actor in result.labels:
        cells = "".join(cell((ref, actor)) for ref in referees)
        body += f"<tr><td>actions of {html.escape(actor)}</td>{cells}</tr>"
    return f"<table><tr><th>standardised energy</th>{head}</tr>{body}</table>"


def _config_html(result: AnchorResult) -> str:
    labels = result.labels
    parts = []
    for label in labels[1:]:
        diff = config_diff(result.configs[labels[0]], result.configs[label], ignore=("device",))
        items = ", ".join(f"<code>{k}</code>: {html.escape(repr(a))} → {html.escape(repr(b))}"
                          for k, (a, b) in diff.items()) or "none"
        parts.append(f"<li>{html.escape(label)} vs {html.escape(labels[0])}: {items}</li>")
    full = json.dumps(result.configs[labels[0]], indent=1, sort_keys=True)
    return (f"<ul>{''.join(parts)}</ul><details><summary>full config of {html.escape(labels[0])}</summary>"
            f"<pre>{html.escape(full)}</pre></details>")


def _videos_html(result: AnchorResult) -> str:
    cells = []
    for label in result.labels:
        data = result.video_bytes(label)
        if data:
            src = "data:video/mp4;base64," + base64.b64encode(data).decode()
            cells.append(f"<div class='vid'><b>{html.escape(label)}</b><br><video controls loop muted "
                         f"width='240' src='{src}'></video></div>")
        else:
            cells.append(f"<div class='vid'><b>{html.escape(label)}</b><br><i>no video</i></div>")
    return "<div class='row'>" + "".join(cells) + "</div>"


def summary_list_html(summary: str) -> str:
    """The summary as HTML list items; per-metric lines nest under their agent's headline."""
    items: list[tuple[str, list[str]]] = []
    for line in summary.splitlines():
        if not line.strip():
            continue
        if line.startswith("  ") and items:
            text = line.strip()
            items[-1][1].append(text[2:] if text.startswith("- ") else f"<b>{html.escape(text)}</b>")
        else:
            items.append((line.strip(), []))
    out = ""
    for head, subs in items:
        nested = "".join(f"<li>{s if s.startswith('<b>') else html.escape(s)}</li>" for s in subs)
        out += f"<li>{html.escape(head)}" + (f"<ul>{nested}</ul>" if nested else "") + "</li>"
    return out


def write_report(result: AnchorResult, path: str | Path) -> Path:
    """A self-contained HTML report: summary, final table, figures (plotly inlined), videos, config."""
    path = Path(path)
    figs = [("Returns", returns_figure(result)), ("Metrics over training", metrics_figure(result)),
            ("Eta sweep on one shared state", sweep_figure(result))]
    fig_html = ""
    for i, (title, fig) in enumerate(figs):
        fig_html += f"<h2>{title}</h2>" + fig.to_html(full_html=False, include_plotlyjs=(i == 0))
    summary = summary_list_html(result.summary)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    defs = "".join(f"<li><code>{k}</code>: {html.escape(v[0])} (better: {v[1]})</li>" for k, v in METRICS.items())
    doc = TEMPLATE.substitute(
        task=html.escape(result.task), agents=", ".join(html.escape(lb) for lb in result.labels),
        origin="trained as a pair" if result.mode == "train" else "loaded from checkpoints",
        summary=summary, notes=f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "",
        final_table=final_table_html(result), cross_energy=cross_energy_html(result), figures=fig_html,
        sweep_state=html.escape(sweep_state_text(result.sweep_state)), videos=_videos_html(result),
        config=_config_html(result), definitions=defs)
    path.write_text(doc)
    return path


TABLE_METRICS = ["return", "overestimation", "q_overestimation", "prior_distance", "state_nn_distance", "energy",
                 "td_plan_abs", "cross_td_gap"]


def markdown_table(out_dirs: Iterable[str | Path], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """One markdown row per agent per comparison directory: final-evaluation mean ± std of each metric.

    ``mbdpo-lab anchor-table runs/anchor/*`` prints it.
    """
    head = "| task | seed | steps | agent | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (4 + len(metrics))]
    for out in out_dirs:
        result = AnchorResult.load(out)
        for label, row in result.final_rows().items():
            seed = result.configs.get(label, {}).get("seed", "")
            cells = [f"{fmt_number(as_float(row.get(m)))} ± {fmt_number(as_float(row.get(f'{m}_std')))}" for m in metrics]
            lines.append(f"| {result.task} | {seed} | {row['step']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
