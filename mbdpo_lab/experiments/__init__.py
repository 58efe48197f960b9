"""Experiments that train or load several agents and report on them (CSV + self-contained HTML).

``anchor``: energy-anchored vs unanchored agents (``mbdpo-lab compare-anchor --help``).
Names are imported lazily, so importing the package loads nothing heavy.
"""
from __future__ import annotations

from typing import Any

__all__ = ["AnchorMetricsCallback", "AnchorResult", "compare_checkpoints",
           "config_diff", "paired_configs", "run_compare_anchor", "run_paired", "summarise", "write_report",
           "markdown_table"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import anchor

        return getattr(anchor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
