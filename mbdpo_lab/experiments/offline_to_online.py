"""The paper's third claim, measured: fine-tuning a pretrained generalist against training from scratch.

For each seed, two normal run directories at the same online step budget: ``finetune-sN`` (`finetune`:
the pretrained model, a new task embedding, no random seed phase) and ``scratch-sN`` (the same config,
single-task, randomly initialised, with the usual random seed phase). The fine-tuned curve starts at step
0: the pretrained model's evaluation before any online step (what fine-tuning begins from, and keeps or
loses). Running it again resumes what is unfinished. ``curves.csv`` holds each arm's evaluation return
over seeds (IQM and 95% interval at every evaluated step) for the figure and the docs.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

from ..data import data_dir

ARMS = ("finetune", "scratch")
# the measured comparisons that ship with the package (docs/results.md, notebook 08): copies of their
# curves.csv, one per held-out task, named offline_to_online-<task>.csv
SHIPPED_PREFIX = "offline_to_online-"


def shipped_curves(directory: Path | None = None) -> dict[str, Path]:
    """Held-out task -> its shipped ``curves.csv`` (in task order)."""
    directory = data_dir("results") if directory is None else Path(directory)
    return {p.stem[len(SHIPPED_PREFIX):]: p for p in sorted(directory.glob(f"{SHIPPED_PREFIX}*.csv"))}


def _done(run_dir: Path, steps: int) -> bool:
    from ..checkpoint import read_header

    ckpt = run_dir / "checkpoints" / "last.safetensors"
    return ckpt.exists() and int(read_header(ckpt)[1].get("agent_step", 0)) >= steps


def _run(run_dir: Path, steps: int, build: Callable[[], Any], report: Callable[[str], None]) -> None:
    from ..trainer import Trainer

    if _done(run_dir, steps):
        report(f"{run_dir.name}: done")
        return
    if (run_dir / "checkpoints" / "last.safetensors").exists():
        trainer = Trainer.resume_from(run_dir, steps=steps)
        report(f"{run_dir.name}: resuming at step {trainer.env_step}")
    else:
        trainer = build()
        report(f"{run_dir.name}: starting")
    trainer.complete()


def _zero_shot(run_dir: Path, build: Callable[[], tuple[Any, Any]], report: Callable[[str], None]) -> None:
    """Record the fine-tuned arm's step-0 evaluation in its metrics.csv, once (a run that began without it
    gets it from the same starting point): the prepared model, evaluated as the trainer would at step 0."""
    from ..envs import EVAL_SEED_OFFSET, make_env
    from ..trainer import CSV_COLUMNS, append_row, evaluate

    metrics = run_dir / "metrics.csv"
    with open(metrics, newline="") as fh:
        if any(r["kind"] == "eval" and int(r["step"]) == 0 for r in csv.DictReader(fh)):
            return
    cfg, agent = build()
    env = make_env(cfg.task, seed=cfg.seed + EVAL_SEED_OFFSET, action_repeat=cfg.action_repeat,
                   episode_length=cfg.episode_length)
    try:
        result = evaluate(agent, env, cfg.eval_episodes, seed=cfg.seed)
    finally:
        env.close()
    append_row(metrics, dict(step=0, sim_step=0, episode=0, kind="eval", eval_return=result["mean_return"],
                             eval_return_std=result["std_return"], eval_success=result["success_rate"],
                             planner_ms=result["planner_ms"], wall_time=0.0), CSV_COLUMNS)
    report(f"{run_dir.name}: before any online step, eval return {result['mean_return']:.1f}")


def run_comparison(checkpoint: str | Path, task: str, steps: int, seeds: list[int], out: str | Path,
                   source: str | None = None, overrides: list[str] | None = None,
                   report: Callable[[str], None] = print) -> Path:
    """Both arms for every seed (see the module docstring); returns the path of ``curves.csv``."""
    from ..config import Config
    from ..finetune import prepare
    from ..trainer import Trainer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        def finetuned(seed=seed):
            cfg, agent, src = prepare(checkpoint, task, source, overrides)
            cfg.seed, cfg.steps = seed, steps
            report(f"  {task} starts from {src}'s task embedding")
            return Trainer(cfg, out / f"finetune-s{seed}", agent=agent)

        def starting_point(seed=seed):
            cfg, agent, _ = prepare(checkpoint, task, source, overrides)
            cfg.seed = seed
            return cfg, agent

        def scratch(seed=seed):
            cfg, _, _ = prepare(checkpoint, task, source, overrides)  # the same settings, nothing pretrained kept
            values = {**cfg.to_dict(), "seed": seed, "steps": steps, "seed_actions": "random"}
            return Trainer(Config.from_dict(values), out / f"scratch-s{seed}")

        _run(out / f"finetune-s{seed}", steps, finetuned, report)
        _zero_shot(out / f"finetune-s{seed}", starting_point, report)
        _run(out / f"scratch-s{seed}", steps, scratch, report)
    return write_curves(out, seeds)


def write_curves(out: str | Path, seeds: list[int]) -> Path:
    """``curves.csv``: arm, step, IQM, CI low, CI high, seeds (at the steps every seed of the arm evaluated)."""
    from ..analysis.curves import seed_curve

    out = Path(out)
    path = out / "curves.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arm", "step", "eval_return_iqm", "low", "high", "seeds"])
        for arm in ARMS:
            steps, iqm, low, high = seed_curve([out / f"{arm}-s{s}" for s in seeds])
            for row in zip(steps, iqm, low, high):
                writer.writerow([arm, int(row[0]), *(round(float(v), 2) for v in row[1:]), len(seeds)])
    (out / "comparison.json").write_text(json.dumps({"seeds": seeds, "arms": list(ARMS)}))
    return path


def curves_figure(path: str | Path, task: str | None = None):
    """Plotly: each arm's IQM return with its 95% band against online steps (``task`` names it in the title)."""
    import plotly.graph_objects as go

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig = go.Figure()
    colours = {"finetune": "#1f77b4", "scratch": "#d62728"}
    for arm in ARMS:
        pts = [r for r in rows if r["arm"] == arm]
        x = [int(r["step"]) for r in pts]
        fig.add_scatter(x=x + x[::-1], y=[float(r["high"]) for r in pts] + [float(r["low"]) for r in pts][::-1],
                        fill="toself", line=dict(width=0), fillcolor=colours[arm], opacity=0.2, showlegend=False,
                        hoverinfo="skip")
        fig.add_scatter(x=x, y=[float(r["eval_return_iqm"]) for r in pts], mode="lines+markers",
                        name=f"{arm} (IQM, 95% CI)", line=dict(color=colours[arm]))
    fig.update_layout(title="Offline-to-online: fine-tuned vs from scratch" + (f" on {task}" if task else ""),
                      xaxis_title="online environment steps",
                      yaxis_title="evaluation return", template="plotly_white", width=800, height=450)
    return fig


def read_curves(path: str | Path) -> dict[str, list[dict[str, float]]]:
    """arm -> rows of ``curves.csv`` (step, eval_return_iqm, low, high, seeds as numbers), in step order."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {arm: sorted(({k: float(v) for k, v in r.items() if k != "arm"} for r in rows if r["arm"] == arm),
                        key=lambda r: r["step"]) for arm in ARMS}


def verdict(path: str | Path) -> str:
    """One sentence from the numbers: the two arms at the last step both evaluated, IQM and 95% CI over seeds."""
    curves = read_curves(path)
    common = set.intersection(*({r["step"] for r in curves[arm]} for arm in ARMS))
    if not common:
        return "The two arms have no evaluated step in common yet."
    step = max(common)
    at = {arm: next(r for r in curves[arm] if r["step"] == step) for arm in ARMS}
    ft, sc = at["finetune"], at["scratch"]
    seeds = int(min(ft["seeds"], sc["seeds"]))
    ahead = "fine-tuned ahead" if ft["eval_return_iqm"] > sc["eval_return_iqm"] else "from scratch ahead"
    apart = ft["low"] > sc["high"] or sc["low"] > ft["high"]
    return (f"At {int(step):,} online steps ({seeds} seed{'s' if seeds != 1 else ''}): fine-tuned "
            f"{ft['eval_return_iqm']:.1f} [{ft['low']:.1f}, {ft['high']:.1f}], from scratch {sc['eval_return_iqm']:.1f} "
            f"[{sc['low']:.1f}, {sc['high']:.1f}] (IQM, 95% CI): {ahead}, "
            + ("the intervals apart." if apart else "the intervals overlap."))
