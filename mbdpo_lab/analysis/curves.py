"""Learning curves of our runs (metrics.csv) drawn against the paper's published curves."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_eval_curve(run_dir: str | Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(task, env steps, mean eval return, std) of a run directory written by the trainer."""
    import json

    run_dir = Path(run_dir)
    task = json.loads((run_dir / "config.json").read_text())["task"]
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r["kind"] == "eval"]
    by_step = {int(r["step"]): (float(r["eval_return"]), float(r["eval_return_std"] or 0)) for r in rows}
    steps = np.array(sorted(by_step))
    return task, steps, np.array([by_step[s][0] for s in steps]), np.array([by_step[s][1] for s in steps])


_LABEL_PARTS = {"eta": lambda v: f"eta={v:g}", "energy_negatives": lambda v: f"{v} rule",
                "seed": lambda v: f"seed {v}"}


def run_labels(configs: list[dict]) -> list[str]:
    """Legend labels for runs sharing a panel: the preset plus whichever of eta, energy rule and seed differ."""
    # configs written before the energy-rule option were trained with the hardest rule
    values = [{"eta": c.get("eta"), "energy_negatives": c.get("energy_negatives", "hardest"),
               "seed": c.get("seed")} for c in configs]
    differing = [k for k in _LABEL_PARTS if len({str(v[k]) for v in values}) > 1]
    labels = []
    for cfg, v in zip(configs, values):
        base = f"mbdpo-lab ({cfg['preset']} preset)" if cfg.get("preset") else "mbdpo-lab"
        labels.append(", ".join([base] + [_LABEL_PARTS[k](v[k]) for k in differing]))
    return labels


def plot_runs(run_dirs: list[str | Path], out: str | Path, max_step: int = 100_000) -> Path:
    """One panel per task: our eval return +- std vs the published MBDPO and TD-MPC2 curves.

    Runs of the same task (e.g. agents that differ only in eta) share a panel, one curve each; the first
    run of a task also draws its training episodes.
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..reference import reference_curves

    configs = {run: json.loads((run / "config.json").read_text()) for run in map(Path, run_dirs)}
    by_task: dict[str, list[Path]] = {}
    for run, cfg in configs.items():
        by_task.setdefault(cfg["task"], []).append(run)
    cols = min(3, len(by_task))  # wrap after three panels so the figure stays readable on a page
    rows = -(-len(by_task) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(by_task):]:
        ax.set_visible(False)
    for ax, (task, runs) in zip(axes.flat, by_task.items()):
        episodes = [r for r in csv.DictReader(open(runs[0] / "metrics.csv")) if r["kind"] == "episode"]
        ax.plot([int(r["step"]) for r in episodes], [float(r["episode_return"]) for r in episodes],
                color="0.7", lw=1, label="training episodes" + (" (first run)" if len(runs) > 1 else ""))
        for method, curve in reference_curves(task).items():
            c = curve.clipped(max_step)  # published every 100k steps: points, not a line
            ax.plot(c.steps, c.mean, linestyle="none", marker="o", markersize=8, label=curve.label)
        colours = ["black", "tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
        for i, (run, label) in enumerate(zip(runs, run_labels([configs[r] for r in runs]))):
            _, steps, mean, std = read_eval_curve(run)
            ax.errorbar(steps, mean, yerr=std, marker="sov^Dp"[i % 6], capsize=3, label=label,
                        color=colours[i % len(colours)])
        ax.set(title=task, xlabel="environment steps", ylabel="eval return (mean ± std)", xlim=(0, max_step),
               ylim=(0, 1000))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
