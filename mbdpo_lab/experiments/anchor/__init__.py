"""Anchored vs unanchored: a paired experiment that differs only in eta.

Two or three agents share one config and one seed; only the planner's energy weight eta differs
(0 = unanchored, the preset's default 0.01, and optionally a larger value). Each is trained with the
core `Trainer`; at every evaluation an `AnchorMetricsCallback` measures the anchoring metrics of
`mbdpo_lab.analysis.anchoring` on extra noise-free episodes and appends one row. Because the seed is
shared, the agents see the same seed-phase data, start from the same weights and are evaluated from
the same initial states. Alternatively `compare_checkpoints` loads two or three trained agents, or the
seeds of two or three arms (a sweep's runs): then every metric is an IQM over seeds with a 95% CI over
seeds, and a difference counts only when the intervals do not overlap.

Outputs (`AnchorResult.save`): ``anchor_metrics.csv`` (one row per evaluation per agent),
``anchor_sweep.csv`` (the eta sweep on one shared state), ``anchor_history.csv`` (training return
curves), ``anchor_summary.json`` and ``anchor_report.html`` (self-contained: plotly is inlined and
the videos are embedded, so it opens offline).

One module per job: `run` (train or load, and measure), `result` (the rows and their files),
`verdicts` (what the numbers say), `figures` (plotly, shared with the widget) and `report` (the HTML
page, from ``report_template.html``, and a markdown table).
"""

from .figures import (SWEEP_QUANTITIES, available_metrics, metric_traces, metrics_figure, returns_figure,
                      single_evaluation, spread_text, sweep_figure, sweep_traces)
from .report import cross_energy_html, final_table_html, markdown_table, summary_list_html, write_report
from .result import COLORS, CSV_COLUMNS, SHOWN_METRICS, AnchorResult, dirname_for, label_for, make_row
from .run import (
                      AnchorMetricsCallback,
                      compare_checkpoints,
                      config_diff,
                      paired_configs,
                      run_compare_anchor,
                      run_paired,
                      sweep_agents,
                      sweep_state_text,
)
from .verdicts import (
                      attach_cross_energy,
                      compare_metric,
                      cross_energy_rows,
                      result_from_rows,
                      summarise,
                      summarise_cross_energy,
)

__all__ = ["AnchorMetricsCallback", "AnchorResult", "COLORS", "CSV_COLUMNS", "SHOWN_METRICS", "SWEEP_QUANTITIES",
           "attach_cross_energy", "available_metrics", "compare_checkpoints", "compare_metric", "config_diff", "cross_energy_html",
           "cross_energy_rows", "dirname_for", "final_table_html", "label_for", "make_row", "markdown_table",
           "metric_traces", "metrics_figure", "paired_configs", "result_from_rows", "returns_figure",
           "run_compare_anchor", "run_paired", "single_evaluation", "spread_text", "summarise", "summarise_cross_energy", "summary_list_html",
           "sweep_agents", "sweep_figure", "sweep_state_text", "sweep_traces", "write_report"]
