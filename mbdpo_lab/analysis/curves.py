"""Learning curves of our runs (metrics.csv) drawn against the paper's published curves."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
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


def read_success_curve(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(env steps, success rate of the evaluation episodes) of a goal-directed task's run; None for a task
    without a success signal."""
    rows = [r for r in csv.DictReader(open(Path(run_dir) / "metrics.csv"))
            if r["kind"] == "eval" and r.get("eval_success") not in (None, "")]
    if not rows:
        return None
    by_step = {int(r["step"]): float(r["eval_success"]) for r in rows}
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


_LABEL_PARTS = {"variant": lambda v: f"{v} variant", "eta": lambda v: f"eta={v:g}",
                "energy_negatives": lambda v: f"{v} rule", "num_envs": lambda v: f"{v} envs",
                "updates_per_env_step": lambda v: f"{v:g} updates/step", "seed": lambda v: f"seed {v}"}
_DEFAULTS = {"energy_negatives": "hardest", "variant": "lab", "num_envs": 1, "updates_per_env_step": 1.0}


def run_labels(configs: list[dict]) -> list[str]:
    """Legend labels for runs sharing a panel: the preset plus whichever of eta, energy rule and seed differ."""
    # configs written before the energy-rule option were trained with the hardest rule
    values = [{k: c.get(k, _DEFAULTS.get(k)) for k in _LABEL_PARTS} for c in configs]
    differing = [k for k in _LABEL_PARTS if len({str(v[k]) for v in values}) > 1]
    labels = []
    for cfg, v in zip(configs, values):
        base = f"mbdpo-lab ({cfg['preset']} preset)" if cfg.get("preset") else "mbdpo-lab"
        labels.append(", ".join([base] + [_LABEL_PARTS[k](v[k]) for k in differing]))
    return labels


def seed_groups(configs: list[dict]) -> list[list[int]]:
    """Indices of runs that differ only in their seed (one arm each), in first-seen order."""
    from ..config import Config
    from ..errors import ConfigError

    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        try:  # fields added since a run was written take the value that run had (Config.from_dict knows them)
            cfg = Config.from_dict(cfg).to_dict()
        except (ConfigError, TypeError, ValueError):
            pass
        key = json.dumps({k: v for k, v in cfg.items() if k not in ("seed", "device")}, sort_keys=True)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def seed_curve(run_dirs: list[str | Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, IQM, CI low, CI high) of the eval return over seeds, at the steps every run evaluated."""
    from ..statistics import curve_band

    curves = [read_eval_curve(r) for r in run_dirs]
    steps = sorted(set.intersection(*(set(c[1].tolist()) for c in curves)))
    returns = np.array([[dict(zip(c[1].tolist(), c[2]))[s] for s in steps] for c in curves])
    iqm, low, high = curve_band(returns)
    return np.array(steps), iqm, low, high


@dataclass
class Arm:
    """Runs that differ only in their seed, and their eval-return curve over seeds."""

    label: str
    runs: list[Path]
    steps: np.ndarray
    centre: np.ndarray  # IQM over seeds; one run: its mean over evaluation episodes
    low: np.ndarray  # 95% stratified-bootstrap CI over seeds; one run: mean - std over episodes
    high: np.ndarray

    @property
    def band(self) -> str:
        return (f"IQM of {len(self.runs)} seeds, 95% CI" if len(self.runs) > 1
                else "1 run, ± std over evaluation episodes")

    def final_returns(self) -> np.ndarray:
        """Each run's eval return at the arm's last common step (what improvement compares)."""
        step = self.steps[-1]
        return np.array([dict(zip(*read_eval_curve(r)[1:3]))[step] for r in self.runs])


def run_arms(run_dirs: list[str | Path]) -> list[Arm]:
    """Group runs of one task into arms (`seed_groups`) with their curves; runs without an evaluation are
    left out. Raises ValueError for runs of different tasks (their returns do not compare)."""
    runs = [Path(r) for r in run_dirs if _has_eval(Path(r))]
    configs = [json.loads((r / "config.json").read_text()) for r in runs]
    tasks = sorted({c["task"] for c in configs})
    if len(tasks) > 1:
        raise ValueError(f"the runs are of different tasks ({', '.join(tasks)}); compare runs of one task")
    labels = run_labels(configs)
    arms = []
    for group in seed_groups(configs):
        members = [runs[j] for j in group]
        if len(group) == 1:
            _, steps, mean, std = read_eval_curve(members[0])
            arms.append(Arm(labels[group[0]], members, steps, mean, mean - std, mean + std))
            continue
        steps, iqm, low, high = seed_curve(members)
        if not len(steps):
            continue
        arms.append(Arm(labels[group[0]].split(", seed ")[0], members, steps, iqm, low, high))
    return arms


def _has_eval(run: Path) -> bool:
    try:
        return (run / "config.json").exists() and len(read_eval_curve(run)[1]) > 0
    except (OSError, KeyError, ValueError):
        return False


def plot_runs(run_dirs: list[str | Path], out: str | Path, max_step: int = 100_000) -> Path:
    """`learning_curves_figure` saved as a PNG."""
    import matplotlib.pyplot as plt

    fig = learning_curves_figure(run_dirs, max_step)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def learning_curves_figure(run_dirs: list[str | Path], max_step: int = 100_000):
    """One panel per task: our eval return vs the published MBDPO and TD-MPC2 curves (matplotlib figure).

    Runs of the same task (e.g. agents that differ only in eta) share a panel. Runs that differ only in
    their seed are one arm: its IQM over seeds with a 95% stratified-bootstrap band (rliable); a single
    run shows its mean +- std over evaluation episodes. The first run of a task also draws its training
    episodes. A goal-directed task's success rate has its own axis on the right.
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..envs import natural_episode_length
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
        task_configs = [configs[r] for r in runs]
        labels = run_labels(task_configs)
        for i, group in enumerate(seed_groups(task_configs)):
            colour, marker = colours[i % len(colours)], "sov^Dp"[i % 6]
            if len(group) == 1:
                _, steps, mean, std = read_eval_curve(runs[group[0]])
                ax.errorbar(steps, mean, yerr=std, marker=marker, capsize=3, label=labels[group[0]], color=colour)
                continue
            steps, iqm, low, high = seed_curve([runs[j] for j in group])
            label = labels[group[0]].split(", seed ")[0] + f" (IQM of {len(group)} seeds, 95% CI)"
            ax.plot(steps, iqm, marker=marker, color=colour, label=label)
            ax.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0)
        best = natural_episode_length(task, action_repeat=1)  # control steps: at most 1 reward each
        ax.set(title=task, xlabel="environment steps", ylabel="eval return", xlim=(0, max_step), ylim=(0, best))
        ax.grid(alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        success = [(r, read_success_curve(r)) for r in runs]
        if any(c is not None for _, c in success):  # a goal-directed task: success rate on its own axis
            twin = ax.twinx()
            for i, (run, curve) in enumerate(success):
                if curve is not None:
                    twin.plot(*curve, linestyle="--", color="tab:blue", alpha=0.5 + 0.5 / (i + 1),
                              label="success rate" + (f" ({run.name})" if len(runs) > 1 else ""))
            twin.set(ylim=(0, 1.05), ylabel="success rate")
            more, more_names = twin.get_legend_handles_labels()
            handles, names = handles + more, names + more_names
        ax.legend(handles, names, fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
