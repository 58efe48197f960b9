"""The scaling study: multi-task offline pretraining at several model sizes, the same updates for each.

The paper reports the normalised score growing with capacity (1.7M to 340M parameters). Here the same
experiment runs at sizes a 2-core CPU trains in hours (``xs``, ``s``, ``m`` and the paper's smallest, ``1``),
while the paper's larger keys (5, 19, 48, 317) are configured and their memory estimated for a GPU
(`model_sizes`). Each size is a normal pretraining run directory (resumable); the final evaluation of every size lands in one CSV with a
row per task, and `scaling_figure` draws the normalised score against parameters with per-task points.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import data_dir
from ..model_sizes import size_config

COLUMNS = ["size", "parameters", "updates", "task", "eval_return", "eval_return_std", "normalised_score"]
# the measured study that ships with the package (docs/results.md, notebook 08): a copy of its scaling.csv
SHIPPED = data_dir("results") / "scaling.csv"


def run_sizes(data_dir: str | Path, sizes: list[str], updates: int, out: str | Path, episodes: int = 10,
              seed: int = 1, base: str = "cpu", device: str | None = None,
              report: Callable[[str], None] = print, overrides: dict[str, Any] | None = None) -> Path:
    """Pretrain every size for ``updates`` updates (resuming what a previous call began), evaluate each at
    the end, and write ``out/scaling.csv``."""
    from ..pretrain import Pretrainer

    out = Path(out)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        run_dir = out / f"size-{size}"
        values = dict(steps=updates, eval_every=0, eval_episodes=episodes, checkpoint_every=max(1, updates // 10),
                      seed=seed, **({"device": device} if device else {}), **(overrides or {}))
        if (run_dir / "checkpoints" / "last.safetensors").exists():
            trainer = Pretrainer.resume_from(run_dir, data_dir, updates=updates)
        else:
            if run_dir.exists():  # stopped before its first checkpoint: its rows describe nothing kept
                shutil.rmtree(run_dir)
            trainer = Pretrainer(size_config(size, base, values), data_dir, run_dir)
        params = trainer.agent.wm.num_params()
        report(f"size {size}: {params:,} parameters, {trainer.updates}/{updates} updates done")
        trainer.run()
        result = trainer.last_eval or trainer.evaluate()
        for task, (mean, std) in result["tasks"].items():
            rows.append(dict(size=size, parameters=params, updates=trainer.updates, task=task, eval_return=mean,
                             eval_return_std=std, normalised_score=mean / 10))
        rows.append(dict(size=size, parameters=params, updates=trainer.updates, task="all",
                         normalised_score=result["normalised_score"]))
        report(f"size {size}: normalised score {result['normalised_score']:.1f}")
    path = out / "scaling.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def is_monotonic(rows: list[dict[str, str]]) -> bool:
    """Does the mean normalised score rise with every step up in parameters?"""
    mean = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == "all")
    return all(b[1] > a[1] for a, b in zip(mean, mean[1:]))


def scaling_figure(rows: list[dict[str, str]]):
    """Plotly: normalised score against parameters (log axis), the mean over tasks and each task's point."""
    import plotly.graph_objects as go

    fig = go.Figure()
    tasks = sorted({r["task"] for r in rows} - {"all"})
    for task in tasks:
        pts = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == task)
        fig.add_scatter(x=[p for p, _ in pts], y=[s for _, s in pts], mode="markers", name=task, opacity=0.6)
    mean = sorted((int(r["parameters"]), float(r["normalised_score"]), r["size"]) for r in rows if r["task"] == "all")
    fig.add_scatter(x=[p for p, _, _ in mean], y=[s for _, s, _ in mean], mode="lines+markers+text",
                    text=[size for _, _, size in mean], textposition="top center", name="mean over tasks",
                    line=dict(color="black", width=3))
    fig.update_layout(title="Multi-task offline pretraining: normalised score against model size",
                      xaxis=dict(title="parameters", type="log"), yaxis=dict(title="normalised score (return / 10)"),
                      template="plotly_white", width=800, height=480)
    return fig


def save_scaling_png(rows: list[dict[str, str]], path: str | Path) -> Path:
    """The figure as a PNG (matplotlib), for the docs and slides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for task in sorted({r["task"] for r in rows} - {"all"}):
        pts = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == task)
        ax.scatter([p for p, _ in pts], [s for _, s in pts], s=18, alpha=0.6, label=task)
    mean = sorted((int(r["parameters"]), float(r["normalised_score"]), r["size"]) for r in rows if r["task"] == "all")
    ax.plot([p for p, _, _ in mean], [s for _, s, _ in mean], "k-o", lw=2.5, label="mean over tasks")
    for p, s, size in mean:
        ax.annotate(size, (p, s), textcoords="offset points", xytext=(0, 7), ha="center")
    ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="normalised score (return / 10)",
           title="Multi-task offline pretraining: score against model size")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def summary(rows: list[dict[str, str]]) -> dict[str, Any]:
    mean = sorted((int(r["parameters"]), float(r["normalised_score"])) for r in rows if r["task"] == "all")
    return dict(points=mean, monotonic=is_monotonic(rows), spread=float(np.ptp([s for _, s in mean])) if mean else 0.0)


def verdict(rows: list[dict[str, str]]) -> str:
    """One sentence from the numbers: is the mean score monotonic in size, with each size's score in order."""
    mean = sorted((int(r["parameters"]), float(r["normalised_score"]), r["size"], r["updates"])
                  for r in rows if r["task"] == "all")
    chain = "".join(f"{size} {score:.1f}" + ("" if i == len(mean) - 1 else (" < " if mean[i + 1][1] > score else " >= "))
                    for i, (_, score, size, _) in enumerate(mean))
    updates = ", ".join(f"{u:,}" for u in sorted({int(u) for *_, u in mean}))
    kind = "monotonic" if is_monotonic(rows) else "not monotonic"
    return f"Normalised score by size, smallest first: {chain} ({updates} updates each): {kind} at this scale."
