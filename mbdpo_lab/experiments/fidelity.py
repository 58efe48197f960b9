"""What the release's rules do, measured: runs of the two variants on the same tasks and seeds.

`measure_run` reads one run directory (its evaluation curve from ``metrics.csv``; its final agent and
replay) and adds F's separation (`analysis.anchoring.energy_separation`), and the value over-estimation
and action drift (from the run's replay, and from its prior) of compare-anchor
(`analysis.anchoring.evaluation_metrics`), so every variant and every eta is scored the same way.
Rows go to ``docs/data/fidelity.csv``, from which docs/algorithm.md's table is generated.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..analysis.anchoring import BehaviourData, collect_anchor_rollouts, energy_separation, evaluation_metrics
from ..analysis.curves import read_eval_curve
from ..checkpoint import load_checkpoint
from ..envs import MEASURE_SEED_OFFSET, make_env
from ..errors import UsageError
from ..trainer import replay_path

COLUMNS = ["run", "task", "variant", "eta", "seed", "steps", "eval_10k", "eval_20k", "eval_30k", "eval_episodes",
           "f_accuracy", "f_auc_uniform", "f_std_data", "overestimation", "q_overestimation", "measure_return",
           "measure_episodes", "state_nn_distance", "prior_distance"]


def measure_run(run_dir: str | Path, episodes: int = 5, seed: int = 0) -> dict[str, Any]:
    """One row of the fidelity table for a finished (or stopped) training run."""
    run_dir = Path(run_dir)
    agent_file = run_dir / "checkpoints" / "last.safetensors"
    if not agent_file.exists():
        raise UsageError(f"{run_dir} has no checkpoints/last.safetensors; pass a run directory of `mbdpo-lab train`")
    ckpt = load_checkpoint(agent_file, device="cpu")
    agent, cfg = ckpt.agent, ckpt.agent.cfg
    _, steps, means, _ = read_eval_curve(run_dir)
    curve = dict(zip(steps.tolist(), means.tolist()))
    row: dict[str, Any] = dict(run=run_dir.name, task=cfg.task, variant=cfg.variant, eta=cfg.eta, seed=cfg.seed,
                               steps=int(ckpt.meta.get("env_step", max(curve, default=0))),
                               eval_episodes=cfg.eval_episodes, measure_episodes=episodes)
    for k in (10, 20, 30):
        row[f"eval_{k}k"] = curve.get(k * 1000, "")
    behaviour = BehaviourData.load(replay_path(run_dir), max_rows=4096, seed=seed)
    row.update(energy_separation(agent, behaviour, seed))
    with make_env(cfg.task, seed=seed + MEASURE_SEED_OFFSET, action_repeat=cfg.action_repeat,
                  episode_length=cfg.episode_length) as env:
        rollouts = collect_anchor_rollouts(agent, env, episodes=episodes, seed=seed, branch_prior=False)
    metrics = evaluation_metrics(rollouts, behaviour)  # drift: measured against the run's own replay
    row.update(overestimation=metrics["overestimation"], q_overestimation=metrics["q_overestimation"],
               measure_return=metrics["return"], state_nn_distance=metrics["state_nn_distance"],
               prior_distance=metrics["prior_distance"])
    return row


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Merge ``rows`` into the CSV at ``path`` (a row replaces an earlier one of the same run)."""
    path = Path(path)
    kept: dict[str, dict[str, Any]] = {}
    if path.exists():
        with open(path, newline="") as fh:
            kept = {r["run"]: r for r in csv.DictReader(fh)}
    for row in rows:
        kept[row["run"]] = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(kept.values(), key=lambda r: (r["task"], r["variant"], int(r["seed"]))))
